// Helpers shared by the C ABI tests: status unwrapping, rows and queries, and
// the two databases the fixtures open (pomai_open's u64 rows, pomai_db_open_ex's
// keyspace).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "pomai/pomai.h"
#include "support/temp_dir.h"

namespace pomai::testing {

// Takes ownership of a status and returns its code; frees it.
inline int Code(pomai_status_t* s) {
  int c = pomai_status_code(s);
  pomai_status_free(s);
  return c;
}

// Takes ownership of a status and returns its message; frees it.
inline std::string Message(pomai_status_t* s) {
  std::string m = pomai_status_message(s);
  pomai_status_free(s);
  return m;
}

inline const uint8_t* B(const char* s) { return reinterpret_cast<const uint8_t*>(s); }

// A row (id, the `dim` floats at v) for pomai_put and pomai_put_batch.
inline pomai_upsert_t MakeUpsert(uint64_t id, const float* v, uint32_t dim) {
  pomai_upsert_t u{};
  u.struct_size = sizeof(u);
  u.id = id;
  u.vector = v;
  u.dim = dim;
  return u;
}

// A query (the `dim` floats at v, topk) for pomai_search and pomai_search_batch.
inline pomai_query_t MakeQuery(const float* v, uint32_t dim, uint32_t topk) {
  pomai_query_t q{};
  q.struct_size = sizeof(q);
  q.vector = v;
  q.dim = dim;
  q.topk = topk;
  return q;
}

// A database opened with pomai_open: dim 4, 2 shards, inner product (and
// what Configure changes).
class U64DbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pomai_options_init(&opts_);
    opts_.path = dir_.path().c_str();
    opts_.dim = 4;
    opts_.shards = 2;
    opts_.metric = POMAI_METRIC_IP;
    Configure(opts_);
    ASSERT_EQ(Code(pomai_open(&opts_, &db_)), 0);
  }
  void TearDown() override { pomai_status_free(pomai_close(db_)); }
  virtual void Configure(pomai_options_t&) {}

  pomai_upsert_t Upsert(uint64_t id, const float* v) const { return MakeUpsert(id, v, 4); }
  pomai_query_t Query(const float* v, uint32_t k) const { return MakeQuery(v, 4, k); }
  void Reopen() {
    ASSERT_EQ(Code(pomai_close(db_)), 0);
    ASSERT_EQ(Code(pomai_open(&opts_, &db_)), 0);
  }

  TempDir dir_;
  pomai_options_t opts_;
  pomai_db_t* db_ = nullptr;
};

// A keyspace database opened with pomai_db_open_ex, on disk (parameter true)
// or in memory (false).
class DbExTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    pomai_db_options_ex_init(&opts_);
    opts_.storage_mode = GetParam() ? POMAI_STORAGE_DISK : POMAI_STORAGE_IN_MEMORY;
    opts_.path = GetParam() ? dir_.path().c_str() : nullptr;
    ASSERT_EQ(Code(pomai_db_open_ex(&opts_, &db_)), 0);
  }
  void TearDown() override { pomai_status_free(pomai_close(db_)); }

  pomai_txn_t* Begin(uint32_t mode = POMAI_TXN_READ_WRITE) {
    pomai_txn_t* t = nullptr;
    EXPECT_EQ(Code(pomai_txn_begin(db_, mode, &t)), 0);
    return t;
  }

  TempDir dir_;
  pomai_db_options_ex_t opts_;
  pomai_db_t* db_ = nullptr;
};

inline std::string StorageModeName(const ::testing::TestParamInfo<bool>& info) {
  return info.param ? "Disk" : "InMemory";
}

}  // namespace pomai::testing
