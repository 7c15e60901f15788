// Helpers shared by the C ABI tests (capi_test.cc, txn_capi_test.cc,
// bad_input_test.cc): status unwrapping and a keyspace database fixture.
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
