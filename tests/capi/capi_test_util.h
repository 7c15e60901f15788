// Helpers shared by the C ABI tests: status unwrapping, rows and queries,
// calls that check a refused call's output, the lists of every function that
// takes a handle (for the bad-handle rows and the fork tests), and the two
// databases the fixtures open (pomai_open's u64 rows, pomai_db_open_ex's
// keyspace).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

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

// A pointer made of `token`: a handle the library never issued, or an output preset to garbage.
template <typename H>
H* Garbage(uint64_t token) {
  return reinterpret_cast<H*>(static_cast<uintptr_t>(token));
}

// Takes the status of a call given `out`'s address: a refused call must leave
// `out` NULL; a success's `out` is released with `release`. (Callers preset
// `out` to garbage where the call must set it: the keyspace functions always,
// the u64-id ones once the handle is accepted.)
template <typename T, typename Release>
pomai_status_t* Settled(pomai_status_t* s, T* out, Release release) {
  if (s != nullptr) {
    EXPECT_EQ(out, nullptr) << "a refused call left its output set";
  } else {
    release(out);
  }
  return s;
}

inline void Close(pomai_db_t* db) { pomai_status_free(pomai_close(db)); }

// pomai_verify of `db`; a report it returns is freed.
inline pomai_status_t* Verify(pomai_db_t* db) {
  char* json = Garbage<char>(1);
  pomai_status_t* s = pomai_verify(db, &json);
  return Settled(s, json, pomai_free);
}

// pomai_txn_begin on `db`; a transaction it begins is rolled back.
inline pomai_status_t* TxnBegin(pomai_db_t* db, uint32_t mode) {
  pomai_txn_t* t = Garbage<pomai_txn_t>(1);
  pomai_status_t* s = pomai_txn_begin(db, mode, &t);
  return Settled(s, t, [](pomai_txn_t* txn) { pomai_status_free(pomai_txn_rollback(txn)); });
}

// pomai_get of `id` on `db`, the output preset to `rec`; a record it returns is freed.
inline pomai_status_t* Get(pomai_db_t* db, uint64_t id, pomai_record_t* rec = nullptr) {
  pomai_status_t* s = pomai_get(db, id, &rec);
  return Settled(s, rec, pomai_record_free);
}

// pomai_search of `q` on `db`, the output preset to `r`; results of a success are freed.
inline pomai_status_t* Search(pomai_db_t* db, const pomai_query_t* q, pomai_search_results_t* r = nullptr) {
  pomai_status_t* s = pomai_search(db, q, &r);
  return Settled(s, r, pomai_search_results_free);
}

// pomai_search_batch of `n` queries on `db`; results of a success are freed.
inline pomai_status_t* SearchBatch(pomai_db_t* db, const pomai_query_t* queries, size_t n) {
  pomai_search_results_t* r = nullptr;
  pomai_status_t* s = pomai_search_batch(db, queries, n, &r);
  return Settled(s, r, [n](pomai_search_results_t* r) { pomai_search_batch_free(r, n); });
}

// The outputs SearchArray passes as NULL.
enum NullOut : unsigned { kNoIds = 1, kNoScores = 2, kNoCounts = 4 };

// pomai_search_array with room for two results (and two counts).
inline pomai_status_t* SearchArray(pomai_db_t* db, const float* queries, size_t n, uint32_t dim, uint32_t topk,
                                   unsigned null_outs = 0) {
  uint64_t ids[2];
  float scores[2];
  uint32_t counts[2];
  return pomai_search_array(db, queries, n, dim, topk, 0, null_outs & kNoIds ? nullptr : ids,
                            null_outs & kNoScores ? nullptr : scores, null_outs & kNoCounts ? nullptr : counts);
}

// Every function that takes a u64-id database handle, called on `db` (of dim
// 4) with otherwise valid arguments: it puts id 100, reads and deletes id 1.
inline std::vector<std::pair<std::string, std::function<pomai_status_t*(pomai_db_t*)>>> U64DbCalls() {
  static const float v[4] = {1, 2, 3, 4};
  static const uint64_t id = 100;
  static const pomai_upsert_t row = MakeUpsert(id, v, 4);
  static const pomai_query_t query = MakeQuery(v, 4, 1);
  static const int64_t year = 2020;
  static const pomai_column_t column = {sizeof(pomai_column_t), POMAI_ATTR_INT64, "year", nullptr, &year, nullptr,
                                        nullptr};
  static const pomai_rows_t rows = {sizeof(pomai_rows_t), 4, 1, &id, v, nullptr, nullptr, &column, 1};
  static const pomai_filter_t filter = {sizeof(pomai_filter_t), "year = 2020", nullptr, 0};
  return {
      {"Put", [](pomai_db_t* db) { return pomai_put(db, &row); }},
      {"PutBatch", [](pomai_db_t* db) { return pomai_put_batch(db, &row, 1); }},
      {"PutBatchEmpty", [](pomai_db_t* db) { return pomai_put_batch(db, nullptr, 0); }},
      {"PutArray", [](pomai_db_t* db) { return pomai_put_array(db, &id, v, 1, 4); }},
      {"Delete", [](pomai_db_t* db) { return pomai_delete(db, 1); }},
      {"DeleteBatch", [](pomai_db_t* db) { uint64_t one = 1; return pomai_delete_batch(db, &one, 1); }},
      {"Freeze", [](pomai_db_t* db) { return pomai_freeze(db); }},
      {"Compact", [](pomai_db_t* db) { return pomai_compact(db); }},
      {"FreezeWithProgress", [](pomai_db_t* db) { return pomai_freeze_with_progress(db, nullptr, nullptr); }},
      {"CompactWithProgress", [](pomai_db_t* db) { return pomai_compact_with_progress(db, nullptr, nullptr); }},
      {"StatsJson",
       [](pomai_db_t* db) {
         char* json = Garbage<char>(1);
         pomai_status_t* s = pomai_stats_json(db, &json);
         if (s != nullptr && json != Garbage<char>(1)) {
           EXPECT_EQ(json, nullptr);
         }
         return s;
       }},
      {"Exists", [](pomai_db_t* db) { bool b; return pomai_exists(db, 1, &b); }},
      {"Get", [](pomai_db_t* db) { return Get(db, 1); }},
      {"Count", [](pomai_db_t* db) { uint64_t n; return pomai_count(db, &n); }},
      {"Search", [](pomai_db_t* db) { return Search(db, &query); }},
      {"SearchBatch", [](pomai_db_t* db) { return SearchBatch(db, &query, 1); }},
      {"SearchArray", [](pomai_db_t* db) { return SearchArray(db, v, 1, 4, 1); }},
      {"Verify", [](pomai_db_t* db) { return Verify(db); }},
      {"PutRows", [](pomai_db_t* db) { return pomai_put_rows(db, &rows); }},
      {"UpdateAttributes",
       [](pomai_db_t* db) { return pomai_update_attributes(db, &id, 1, &column, 1); }},
      {"SchemaJson",
       [](pomai_db_t* db) {
         char* json = Garbage<char>(1);
         pomai_status_t* s = pomai_schema_json(db, &json);
         if (s == nullptr) {
           pomai_free(json);
         } else {
           EXPECT_EQ(json, nullptr);
         }
         return s;
       }},
      {"CountWhere", [](pomai_db_t* db) { uint64_t n; return pomai_count_where(db, &filter, &n); }},
      {"DeleteWhere", [](pomai_db_t* db) { uint64_t n; return pomai_delete_where(db, &filter, &n); }},
      {"SearchArrayFiltered",
       [](pomai_db_t* db) {
         uint64_t ids[1];
         float scores[1];
         uint32_t counts[1];
         return pomai_search_array_filtered(db, v, 1, 4, 1, 0, &filter, ids, scores, counts);
       }},
      {"Scan",
       [](pomai_db_t* db) {
         ArrowArrayStream stream;
         stream.release = reinterpret_cast<void (*)(ArrowArrayStream*)>(Garbage<char>(1));
         pomai_status_t* s = pomai_scan(db, nullptr, &stream);
         if (s == nullptr) {
           stream.release(&stream);
         } else {
           EXPECT_EQ(stream.release, nullptr);
         }
         return s;
       }},
      // The keyspace functions refuse a closed or garbage handle the same way.
      {"DbFlush", [](pomai_db_t* db) { return pomai_db_flush(db); }},
      {"TxnBegin", [](pomai_db_t* db) { return TxnBegin(db, POMAI_TXN_READ_WRITE); }},
  };
}

// pomai_txn_search_similar, filtered when `filter`; hits of a success are freed.
inline pomai_status_t* Similar(pomai_txn_t* t, const float* q, uint32_t dim, uint32_t metric = 0, bool filter = false,
                               const uint8_t* const* keys = nullptr, const size_t* lens = nullptr, size_t n = 0) {
  pomai_kv_hits_t* h = Garbage<pomai_kv_hits_t>(1);
  pomai_status_t* s = pomai_txn_search_similar(t, q, dim, metric, 1, filter, keys, lens, n, false, &h);
  return Settled(s, h, pomai_kv_hits_free);
}

// pomai_txn_scan of [lo, hi) (hi NULL: no bound); a batch of a success is freed.
inline pomai_status_t* Scan(pomai_txn_t* t, const uint8_t* lo, size_t lo_len, const uint8_t* hi, size_t hi_len,
                            size_t max_entries = 16, size_t max_bytes = 0) {
  pomai_kv_scan_batch_t* b = Garbage<pomai_kv_scan_batch_t>(1);
  pomai_status_t* s = pomai_txn_scan(t, lo, lo_len, hi, hi_len, max_entries, max_bytes, &b);
  return Settled(s, b, pomai_kv_scan_batch_free);
}

// A transaction function that takes a key, called on `t` with `key` (`len`
// bytes) and otherwise valid arguments (an L2 vector {1, 2}, index "idx"); a
// read-only transaction refuses the ones that `write`. `valid_key` is the key
// of bad_input_test's keyspace fixture that a wrongly accepted call would change.
struct TxnKeyCall {
  std::string name;
  std::function<pomai_status_t*(pomai_txn_t*, const uint8_t*, size_t)> call;
  bool writes;
  const char* valid_key;
};

inline std::vector<TxnKeyCall> TxnKeyCalls() {
  static const float v[2] = {1, 2};
  using K = const uint8_t*;
  return {
      {"Get",
       [](pomai_txn_t* t, K k, size_t n) { size_t len; bool f; return pomai_txn_get(t, k, n, nullptr, 0, &len, &f); },
       false, "v"},
      {"Put", [](pomai_txn_t* t, K k, size_t n) { return pomai_txn_put(t, k, n, B("x"), 1); }, true, "k"},
      {"Delete", [](pomai_txn_t* t, K k, size_t n) { return pomai_txn_delete(t, k, n); }, true, "v"},
      {"UpsertVector",
       [](pomai_txn_t* t, K k, size_t n) { return pomai_txn_upsert_vector(t, k, n, false, nullptr, 0, v, 2, 0); },
       true, "k"},
      {"GetVector",
       [](pomai_txn_t* t, K k, size_t n) { float b[2]; uint32_t d; return pomai_txn_get_vector(t, k, n, 0, b, 2, &d); },
       false, "v"},
      {"IndexUpsert",
       [](pomai_txn_t* t, K k, size_t n) { return pomai_txn_index_upsert(t, "idx", k, n, v, 2, false, nullptr, 0); },
       true, "k"},
      {"IndexDelete", [](pomai_txn_t* t, K k, size_t n) { return pomai_txn_index_delete(t, "idx", k, n); }, true, "a"},
  };
}

// Every function that takes a transaction, called on `t` with otherwise valid arguments.
inline std::vector<std::pair<std::string, std::function<pomai_status_t*(pomai_txn_t*)>>> TxnCalls() {
  static const float q[2] = {1, 0};
  std::vector<std::pair<std::string, std::function<pomai_status_t*(pomai_txn_t*)>>> out = {
      {"Commit", [](pomai_txn_t* t) { return pomai_txn_commit(t); }},
      {"Rollback", [](pomai_txn_t* t) { return pomai_txn_rollback(t); }},
      {"SearchSimilar", [](pomai_txn_t* t) { return Similar(t, q, 2); }},
      {"Scan", [](pomai_txn_t* t) { return Scan(t, B("a"), 1, nullptr, 0); }},
  };
  for (const TxnKeyCall& f : TxnKeyCalls()) {
    out.push_back({f.name, [f](pomai_txn_t* t) { return f.call(t, B(f.valid_key), 1); }});
  }
  return out;
}

// pomai_index_search of index `name`; hits of a success are freed.
inline pomai_status_t* IndexSearch(pomai_db_t* db, const char* name, const float* q, uint32_t dim) {
  pomai_kv_hits_t* h = Garbage<pomai_kv_hits_t>(1);
  pomai_status_t* s = pomai_index_search(db, name, q, dim, 1, 0, &h, nullptr);
  return Settled(s, h, pomai_kv_hits_free);
}

// Every function that takes a keyspace database handle, called on `db` with
// otherwise valid arguments (index "idx" of dim 2).
inline std::vector<std::pair<std::string, std::function<pomai_status_t*(pomai_db_t*)>>> KeyspaceDbCalls() {
  static const float q[2] = {1, 0};
  static const pomai_hnsw_config_t config = {sizeof(pomai_hnsw_config_t), 2, 16, 200, POMAI_METRIC_L2};
  return {
      {"Flush", [](pomai_db_t* db) { return pomai_db_flush(db); }},
      {"MemoryUsage", [](pomai_db_t* db) { pomai_memory_stats_t m; return pomai_db_memory_usage(db, &m); }},
      {"TxnBegin", [](pomai_db_t* db) { return TxnBegin(db, POMAI_TXN_READ_WRITE); }},
      {"IndexCreate", [](pomai_db_t* db) { return pomai_index_create(db, "other", &config); }},
      {"IndexDrop", [](pomai_db_t* db) { return pomai_index_drop(db, "idx"); }},
      {"IndexStats", [](pomai_db_t* db) { pomai_hnsw_stats_t st; return pomai_index_stats(db, "idx", &st); }},
      {"IndexSearch", [](pomai_db_t* db) { return IndexSearch(db, "idx", q, 2); }},
  };
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
