// The keyspace C ABI (include/pomai/kv.h): clean statuses for every bad
// input, closed handles, the buffer-retry protocol; never a crash.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "pomai/pomai.h"
#include "capi_test_util.h"
#include "support/temp_dir.h"

namespace {

using pomai::testing::TempDir;
using pomai::testing::B;
using pomai::testing::Code;
using pomai::testing::DbExTest;
using pomai::testing::Message;
using pomai::testing::StorageModeName;

class TxnCApi : public DbExTest {};

INSTANTIATE_TEST_SUITE_P(Modes, TxnCApi, ::testing::Bool(), StorageModeName);

// NULL pointers, a disk database without a path, storage_mode 7 and a 12-byte
// struct: bad_input_test.cc (BadInput/Keyspace.Open*).
TEST(TxnCApiOpen, OptionsAreCheckedAndNamed) {
  pomai_db_t* db = nullptr;
  pomai_db_options_ex_t o;
  pomai_db_options_ex_init(&o);
  EXPECT_EQ(o.struct_size, sizeof(pomai_db_options_ex_t));
  o.path = "";  // disk with an empty path
  EXPECT_EQ(Code(pomai_db_open_ex(&o, &db)), POMAI_STATUS_INVALID_ARGUMENT);
  o.storage_mode = POMAI_STORAGE_IN_MEMORY;
  const uint32_t nine = 9;  // as a C caller could store it
  std::memcpy(&o.fsync_policy, &nine, sizeof(nine));
  EXPECT_NE(Message(pomai_db_open_ex(&o, &db)).find("fsync_policy is 9"), std::string::npos);
  o.fsync_policy = POMAI_FSYNC_POLICY_NEVER;
  o.struct_size = 19;
  EXPECT_NE(Message(pomai_db_open_ex(&o, &db)).find("struct_size is too small"), std::string::npos);
  // A 20-byte struct (through storage_mode) works: the rest takes defaults.
  o.struct_size = 20;
  o.memory_limit_bytes = 1;  // not covered: ignored
  ASSERT_EQ(Code(pomai_db_open_ex(&o, &db)), 0);
  pomai_memory_stats_t m;
  ASSERT_EQ(Code(pomai_db_memory_usage(db, &m)), 0);
  EXPECT_GT(m.total_bytes, 1u);
  EXPECT_EQ(Code(pomai_close(db)), 0);
}

// One kind of database (docs/ENGINE.md 5.1): a pomai_open handle takes the
// keyspace functions, pomai_db_open_ex opens a pomaidb directory (keeping its
// rows through its own flushes), and pomai_open on an alopex directory adds
// the default collection.
TEST(TxnCApiOpen, BothFacesWorkOnOneDirectoryAndHandle) {
  TempDir a, b;
  pomai_options_t o;
  pomai_options_init(&o);
  o.path = a.path().c_str();
  o.dim = 4;
  o.shards = 2;
  pomai_db_t* id_db = nullptr;
  ASSERT_EQ(Code(pomai_open(&o, &id_db)), 0);
  const uint64_t ids[3] = {1, 2, 3};
  const float rows[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
  ASSERT_EQ(Code(pomai_put_array(id_db, ids, rows, 3, 4)), 0);
  // The keyspace face on the pomai_open handle: a transaction and an index.
  pomai_txn_t* t = nullptr;
  ASSERT_EQ(Code(pomai_txn_begin(id_db, POMAI_TXN_READ_WRITE, &t)), 0);
  ASSERT_EQ(Code(pomai_txn_put(t, B("k"), 1, B("v"), 1)), 0);
  ASSERT_EQ(Code(pomai_txn_commit(t)), 0);
  pomai_hnsw_config_t c = {sizeof(c), 4, 16, 200, POMAI_METRIC_L2};
  ASSERT_EQ(Code(pomai_index_create(id_db, "x", &c)), 0);
  ASSERT_EQ(Code(pomai_txn_begin(id_db, POMAI_TXN_READ_WRITE, &t)), 0);
  const float e[4] = {0, 0, 0, 1};
  ASSERT_EQ(Code(pomai_txn_index_upsert(t, "x", B("e"), 1, e, 4, false, nullptr, 0)), 0);
  ASSERT_EQ(Code(pomai_txn_commit(t)), 0);
  pomai_kv_hits_t* hits = nullptr;
  ASSERT_EQ(Code(pomai_index_search(id_db, "x", e, 4, 5, 0, &hits, nullptr)), 0);
  ASSERT_EQ(hits->count, 1u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(hits->hits[0].key), hits->hits[0].key_len), "e");
  pomai_kv_hits_free(hits);
  pomai_memory_stats_t m;
  EXPECT_EQ(Code(pomai_db_memory_usage(id_db, &m)), 0);
  EXPECT_GT(m.used_bytes, 0u);
  ASSERT_EQ(Code(pomai_db_flush(id_db)), 0);
  const uint64_t four = 4;
  ASSERT_EQ(Code(pomai_put_array(id_db, &four, rows, 1, 4)), 0);  // left in the WAL
  uint64_t n = 0;
  ASSERT_EQ(Code(pomai_count(id_db, &n)), 0);
  EXPECT_EQ(n, 4u);

  pomai_db_options_ex_t ko;
  pomai_db_options_ex_init(&ko);
  ko.path = a.path().c_str();
  pomai_db_t* kv = nullptr;
  EXPECT_EQ(Code(pomai_db_open_ex(&ko, &kv)), POMAI_STATUS_IO_ERROR);  // locked by id_db
  ASSERT_EQ(Code(pomai_close(id_db)), 0);

  // pomai_db_open_ex opens the pomaidb directory; its handle has no default
  // collection, and its flush keeps the rows the log holds.
  ASSERT_EQ(Code(pomai_db_open_ex(&ko, &kv)), 0);
  float v[4] = {1, 2, 3, 4};
  pomai_upsert_t u = pomai::testing::MakeUpsert(9, v, 4);
  EXPECT_EQ(Message(pomai_put(kv, &u)),
            "db has no default collection (it was opened with pomai_db_open_ex): open the directory with pomai_open "
            "to use pomai_put, pomai_search, ...");
  EXPECT_EQ(Code(pomai_freeze(kv)), POMAI_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(Message(pomai_count(kv, &n)).find("pomai_db_open_ex"), std::string::npos);
  ASSERT_EQ(Code(pomai_txn_begin(kv, POMAI_TXN_READ_WRITE, &t)), 0);
  uint8_t buf[8];
  size_t len = 0;
  bool found = false;
  ASSERT_EQ(Code(pomai_txn_get(t, B("k"), 1, buf, sizeof(buf), &len, &found)), 0);
  EXPECT_TRUE(found);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf), len), "v");
  ASSERT_EQ(Code(pomai_txn_put(t, B("k2"), 2, B("w"), 1)), 0);
  ASSERT_EQ(Code(pomai_txn_commit(t)), 0);
  ASSERT_EQ(Code(pomai_db_flush(kv)), 0);
  ASSERT_EQ(Code(pomai_close(kv)), 0);

  // pomai_open again sees the rows and the keys of both faces.
  ASSERT_EQ(Code(pomai_open(&o, &id_db)), 0);
  ASSERT_EQ(Code(pomai_count(id_db, &n)), 0);
  EXPECT_EQ(n, 4u);
  pomai_record_t* rec = nullptr;
  ASSERT_EQ(Code(pomai_get(id_db, 2, &rec)), 0);
  ASSERT_EQ(rec->dim, 4u);
  EXPECT_EQ(rec->vector[1], 1.0f);
  pomai_record_free(rec);
  ASSERT_EQ(Code(pomai_txn_begin(id_db, POMAI_TXN_READ_ONLY, &t)), 0);
  ASSERT_EQ(Code(pomai_txn_get(t, B("k2"), 2, buf, sizeof(buf), &len, &found)), 0);
  EXPECT_TRUE(found);
  ASSERT_EQ(Code(pomai_txn_commit(t)), 0);
  // The default collection's dim, metric and shards are fixed at its creation.
  o.dim = 8;
  pomai_db_t* other = nullptr;
  EXPECT_EQ(Code(pomai_open(&o, &other)), POMAI_STATUS_IO_ERROR);  // locked by id_db
  ASSERT_EQ(Code(pomai_close(id_db)), 0);
  EXPECT_EQ(Message(pomai_open(&o, &other)), "dim 8 does not match the database's dim 4");
  EXPECT_EQ(other, nullptr);

  // pomai_open on an alopex directory adds the default collection.
  ko.path = b.path().c_str();
  ASSERT_EQ(Code(pomai_db_open_ex(&ko, &kv)), 0);
  ASSERT_EQ(Code(pomai_txn_begin(kv, POMAI_TXN_READ_WRITE, &t)), 0);
  ASSERT_EQ(Code(pomai_txn_put(t, B("k"), 1, B("b"), 1)), 0);
  ASSERT_EQ(Code(pomai_txn_commit(t)), 0);
  ASSERT_EQ(Code(pomai_close(kv)), 0);
  o.path = b.path().c_str();
  o.dim = 4;
  ASSERT_EQ(Code(pomai_open(&o, &id_db)), 0);
  ASSERT_EQ(Code(pomai_count(id_db, &n)), 0);
  EXPECT_EQ(n, 0u);
  ASSERT_EQ(Code(pomai_put(id_db, &u)), 0);
  ASSERT_EQ(Code(pomai_txn_begin(id_db, POMAI_TXN_READ_ONLY, &t)), 0);
  ASSERT_EQ(Code(pomai_txn_get(t, B("k"), 1, buf, sizeof(buf), &len, &found)), 0);
  EXPECT_TRUE(found);
  ASSERT_EQ(Code(pomai_txn_commit(t)), 0);
  ASSERT_EQ(Code(pomai_close(id_db)), 0);
  ASSERT_EQ(Code(pomai_open(&o, &id_db)), 0);
  ASSERT_EQ(Code(pomai_count(id_db, &n)), 0);
  EXPECT_EQ(n, 1u);
  ASSERT_EQ(Code(pomai_close(id_db)), 0);
}

TEST_P(TxnCApi, CloseRollsBackActiveTransactionsAndClosesTheirHandles) {
  pomai_txn_t* t = Begin();
  ASSERT_EQ(Code(pomai_txn_put(t, B("k"), 1, B("v"), 1)), 0);
  ASSERT_EQ(Code(pomai_close(db_)), 0);
  // (Every other call after the close: BadInput/Keyspace.DbClosed*, ClosedDb*, CloseKeyspaceTwiceIsNoOp.)
  EXPECT_EQ(Message(pomai_txn_commit(t)), "transaction is closed");
  if (GetParam()) {
    ASSERT_EQ(Code(pomai_db_open_ex(&opts_, &db_)), 0);
    pomai_txn_t* r = Begin(POMAI_TXN_READ_ONLY);
    size_t len;
    bool found = true;
    ASSERT_EQ(Code(pomai_txn_get(r, B("k"), 1, nullptr, 0, &len, &found)), 0);
    EXPECT_FALSE(found);  // rolled back, never committed
    EXPECT_EQ(Code(pomai_txn_commit(r)), 0);
  } else {
    db_ = nullptr;
  }
}

TEST_P(TxnCApi, GetUsesTheBufferRetryProtocol) {
  pomai_txn_t* t = Begin();
  const std::string value(100, 'x');
  ASSERT_EQ(Code(pomai_txn_put(t, B("k"), 1, B(value.c_str()), value.size())), 0);
  ASSERT_EQ(Code(pomai_txn_put(t, B("empty"), 5, nullptr, 0)), 0);
  ASSERT_EQ(Code(pomai_txn_commit(t)), 0);
  pomai_txn_t* r = Begin(POMAI_TXN_READ_ONLY);
  size_t len = 0;
  bool found = false;
  char small[10] = {};
  ASSERT_EQ(Code(pomai_txn_get(r, B("k"), 1, reinterpret_cast<uint8_t*>(small), sizeof(small), &len, &found)), 0);
  EXPECT_TRUE(found);
  EXPECT_EQ(len, 100u);
  EXPECT_EQ(small[0], 0);  // nothing copied
  std::vector<uint8_t> buf(len);
  ASSERT_EQ(Code(pomai_txn_get(r, B("k"), 1, buf.data(), buf.size(), &len, &found)), 0);
  EXPECT_EQ(std::string(buf.begin(), buf.end()), value);
  ASSERT_EQ(Code(pomai_txn_get(r, B("empty"), 5, nullptr, 0, &len, &found)), 0);
  EXPECT_TRUE(found);
  EXPECT_EQ(len, 0u);
  ASSERT_EQ(Code(pomai_txn_get(r, B("none"), 4, nullptr, 0, &len, &found)), 0);
  EXPECT_FALSE(found);
  EXPECT_EQ(Code(pomai_txn_put(r, B("k"), 1, B("v"), 1)), POMAI_STATUS_READ_ONLY);
  EXPECT_EQ(Code(pomai_txn_commit(r)), 0);
}

// The batches of pomai_txn_scan: byte order with 0x00 and 0xFF bytes, an
// empty value, the byte limit, next_lo, own writes; a phantom is CONFLICT.
// Bad arguments and closed handles: bad_input_test.cc (BadInput/Keyspace.Scan*,
// *Scan), fork_test.cc.
TEST_P(TxnCApi, ScanReturnsBatchesInByteOrderAndResumesAfterTheLastKey) {
  pomai_txn_t* t = Begin();
  const std::string keys[] = {std::string("a"), std::string("a\0", 2), std::string("a\0\0", 3), std::string("a\xff"),
                              std::string("b")};
  for (const std::string& k : keys) ASSERT_EQ(Code(pomai_txn_put(t, B(k.data()), k.size(), B(k.data()), k.size())), 0);
  ASSERT_EQ(Code(pomai_txn_put(t, B("empty"), 5, nullptr, 0)), 0);
  ASSERT_EQ(Code(pomai_txn_commit(t)), 0);
  if (GetParam()) {
    ASSERT_EQ(Code(pomai_db_flush(db_)), 0);
  }
  pomai_txn_t* r = Begin();
  ASSERT_EQ(Code(pomai_txn_delete(r, B("b"), 1)), 0);
  ASSERT_EQ(Code(pomai_txn_put(r, B("c"), 1, B("own"), 3)), 0);
  std::vector<std::pair<std::string, std::string>> got;
  std::string lo;
  for (int calls = 0; calls < 20; ++calls) {
    pomai_kv_scan_batch_t* b = nullptr;
    ASSERT_EQ(Code(pomai_txn_scan(r, B(lo.data()), lo.size(), nullptr, 0, 2, 0, &b)), 0);
    ASSERT_NE(b, nullptr);
    ASSERT_LE(b->count, 2u);
    for (size_t i = 0; i < b->count; ++i) {
      const pomai_kv_entry_t& e = b->entries[i];
      got.emplace_back(std::string(reinterpret_cast<const char*>(e.key), e.key_len),
                       e.value_len ? std::string(reinterpret_cast<const char*>(e.value), e.value_len) : "");
      if (e.value_len == 0) {
        EXPECT_EQ(e.value, nullptr);
      }
    }
    const bool more = b->more;
    if (more) {
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(b->next_lo), b->next_lo_len), got.back().first + '\0');
      lo.assign(reinterpret_cast<const char*>(b->next_lo), b->next_lo_len);
    } else {
      EXPECT_EQ(b->next_lo, nullptr);
      EXPECT_EQ(b->next_lo_len, 0u);
    }
    pomai_kv_scan_batch_free(b);
    if (!more) break;
  }
  const std::vector<std::pair<std::string, std::string>> want = {
      {keys[0], keys[0]}, {keys[1], keys[1]}, {keys[2], keys[2]}, {keys[3], keys[3]}, {"c", "own"}, {"empty", ""}};
  EXPECT_EQ(got, want);
  // A byte limit smaller than the first entry still returns it.
  pomai_kv_scan_batch_t* b = nullptr;
  ASSERT_EQ(Code(pomai_txn_scan(r, B("a"), 1, B("b"), 1, 100, 1, &b)), 0);
  ASSERT_EQ(b->count, 1u);
  EXPECT_TRUE(b->more);
  pomai_kv_scan_batch_free(b);
  pomai_kv_scan_batch_free(nullptr);
  // Another transaction commits into the range r read: r's commit conflicts.
  pomai_txn_t* o = Begin();
  ASSERT_EQ(Code(pomai_txn_put(o, B("a\x01"), 2, B("x"), 1)), 0);
  ASSERT_EQ(Code(pomai_txn_commit(o)), 0);
  EXPECT_EQ(Message(pomai_txn_commit(r)), "transaction conflict");
}

// NaN, infinity, dim 0, another metric and a wrong query dim: BadInput/Keyspace.UpsertVector*,
// GetVectorOtherMetric, Similar*.
TEST_P(TxnCApi, VectorsKindMismatchAndGetVectorRetry) {
  pomai_txn_t* t = Begin();
  float v[5] = {1, 2, 3, 4, 5};
  ASSERT_EQ(Code(pomai_txn_upsert_vector(t, B("v"), 1, true, B("meta"), 4, v, 5, POMAI_METRIC_L2)), 0);
  ASSERT_EQ(Code(pomai_txn_put(t, B("b"), 1, B("bytes"), 5)), 0);
  uint32_t dim = 0;
  float out[8] = {};
  ASSERT_EQ(Code(pomai_txn_get_vector(t, B("v"), 1, POMAI_METRIC_L2, out, 2, &dim)), 0);
  EXPECT_EQ(dim, 5u);
  EXPECT_EQ(out[0], 0.0f);  // too small: nothing copied
  ASSERT_EQ(Code(pomai_txn_get_vector(t, B("v"), 1, POMAI_METRIC_L2, out, 8, &dim)), 0);
  EXPECT_EQ(std::vector<float>(out, out + 5), std::vector<float>(v, v + 5));
  EXPECT_EQ(Code(pomai_txn_get_vector(t, B("b"), 1, POMAI_METRIC_L2, out, 8, &dim)), POMAI_STATUS_NOT_FOUND);
  EXPECT_EQ(Code(pomai_txn_get_vector(t, B("x"), 1, POMAI_METRIC_L2, out, 8, &dim)), POMAI_STATUS_NOT_FOUND);
  // The value of a vector key is its metadata.
  size_t len;
  bool found;
  uint8_t mb[8];
  ASSERT_EQ(Code(pomai_txn_get(t, B("v"), 1, mb, sizeof(mb), &len, &found)), 0);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(mb), len), "meta");
  // Search: hits carry key, score, metadata and (asked for) the vector.
  pomai_kv_hits_t* hits = nullptr;
  float q[5] = {1, 2, 3, 4, 7};
  ASSERT_EQ(Code(pomai_txn_search_similar(t, q, 5, POMAI_METRIC_L2, 3, false, nullptr, nullptr, 0, true, &hits)), 0);
  ASSERT_EQ(hits->count, 1u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(hits->hits[0].key), hits->hits[0].key_len), "v");
  EXPECT_FLOAT_EQ(hits->hits[0].score, -2.0f);  // negative Euclidean distance
  EXPECT_TRUE(hits->hits[0].has_metadata);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(hits->hits[0].metadata), hits->hits[0].metadata_len), "meta");
  ASSERT_EQ(hits->hits[0].dim, 5u);
  EXPECT_EQ(hits->hits[0].vector[4], 5.0f);
  pomai_kv_hits_free(hits);
  ASSERT_EQ(Code(pomai_txn_search_similar(t, q, 5, POMAI_METRIC_L2, 0, false, nullptr, nullptr, 0, true, &hits)), 0);
  EXPECT_EQ(hits->count, 0u);
  pomai_kv_hits_free(hits);
  const uint8_t* keys[2] = {B("b"), B("v")};
  size_t lens[2] = {1, 1};
  ASSERT_EQ(Code(pomai_txn_search_similar(t, q, 5, POMAI_METRIC_L2, 3, true, keys, lens, 2, false, &hits)), 0);
  ASSERT_EQ(hits->count, 1u);
  EXPECT_EQ(hits->hits[0].vector, nullptr);
  pomai_kv_hits_free(hits);
  EXPECT_EQ(Code(pomai_txn_commit(t)), 0);
}

// Bad configs, names, dims, queries and missing indexes: BadInput/Keyspace.Index*.
TEST_P(TxnCApi, IndexFunctions) {
  pomai_hnsw_config_t c = {8, 3, 0, 0, 0};  // struct_size 8: m, ef_construction, metric take defaults
  ASSERT_EQ(Code(pomai_index_create(db_, "idx", &c)), 0);
  pomai_txn_t* t = Begin();
  float a[3] = {1, 0, 0}, b[3] = {0, 1, 0};
  ASSERT_EQ(Code(pomai_txn_index_upsert(t, "idx", B("a"), 1, a, 3, true, B("ma"), 2)), 0);
  ASSERT_EQ(Code(pomai_txn_index_upsert(t, "idx", B("b"), 1, b, 3, false, nullptr, 0)), 0);
  ASSERT_EQ(Code(pomai_txn_commit(t)), 0);
  pomai_kv_hits_t* hits = nullptr;
  pomai_hnsw_stats_t st;
  ASSERT_EQ(Code(pomai_index_search(db_, "idx", a, 3, 5, 0, &hits, &st)), 0);
  ASSERT_EQ(hits->count, 2u);
  EXPECT_EQ(hits->hits[0].key[0], 'a');
  EXPECT_TRUE(hits->hits[0].has_metadata);
  EXPECT_EQ(hits->hits[0].vector, nullptr);
  EXPECT_EQ(st.node_count, 2u);
  EXPECT_GE(st.level_count, 1u);
  uint64_t sum = 0;
  for (uint32_t i = 0; i < st.level_count; ++i) sum += st.level_distribution[i];
  EXPECT_EQ(sum, 2u);
  pomai_kv_hits_free(hits);
  ASSERT_EQ(Code(pomai_index_search(db_, "idx", a, 3, 5, 0, &hits, nullptr)), 0);
  pomai_kv_hits_free(hits);
  pomai_txn_t* d = Begin();
  ASSERT_EQ(Code(pomai_txn_index_delete(d, "idx", B("a"), 1)), 0);
  ASSERT_EQ(Code(pomai_txn_commit(d)), 0);
  ASSERT_EQ(Code(pomai_index_stats(db_, "idx", &st)), 0);
  EXPECT_EQ(st.node_count, 1u);
  EXPECT_EQ(st.deleted_count, 1u);
  ASSERT_EQ(Code(pomai_index_drop(db_, "idx")), 0);
  EXPECT_EQ(Code(pomai_index_stats(db_, "idx", &st)), POMAI_STATUS_NOT_FOUND);
}

// Attributes on index entries (one-row pomai_column_t columns, Arrow layout)
// and pomai_index_search_where over them.
TEST_P(TxnCApi, IndexAttributesAndWhere) {
  pomai_hnsw_config_t c = {8, 3, 0, 0, 0};
  ASSERT_EQ(Code(pomai_index_create(db_, "idx", &c)), 0);
  pomai_txn_t* t = Begin();
  const float vecs[3][3] = {{1, 0, 0}, {0.9f, 0.1f, 0}, {0, 1, 0}};
  const char* langs[3] = {"de", "fr", "de"};
  for (int i = 0; i < 3; ++i) {
    const int64_t year = 2000 + i;
    const int64_t lang_off[2] = {0, 2};
    const uint8_t no_value = 0;  // entry 1 has no year: validity bit 0
    const char* tag_bytes = "ab";
    const int64_t tag_lists[2] = {0, 2};
    const int64_t tag_offs[3] = {0, 1, 2};
    pomai_column_t cols[3] = {};
    cols[0] = {sizeof(pomai_column_t), POMAI_ATTR_INT64, "year", i == 1 ? &no_value : nullptr, &year, nullptr, nullptr};
    cols[1] = {sizeof(pomai_column_t), POMAI_ATTR_STRING, "lang", nullptr, langs[i], lang_off, nullptr};
    cols[2] = {sizeof(pomai_column_t), POMAI_ATTR_TAGS, "tags", nullptr, tag_bytes, tag_lists, tag_offs};
    const std::string key(1, static_cast<char>('a' + i));
    ASSERT_EQ(Code(pomai_txn_index_upsert_attrs(t, "idx", B(key.c_str()), 1, vecs[i], 3, false, nullptr, 0, cols,
                                                i == 2 ? 2 : 3)),
              0);
  }
  ASSERT_EQ(Code(pomai_txn_commit(t)), 0);
  auto keys = [&](const char* where) {
    pomai_kv_hits_t* hits = nullptr;
    std::string out;
    pomai_status_t* s = pomai_index_search_where(db_, "idx", vecs[0], 3, 5, 0, where, &hits, nullptr);
    if (s != nullptr) {
      out = "error: " + std::string(pomai_status_message(s));
      pomai_status_free(s);
      return out;
    }
    for (size_t i = 0; i < hits->count; ++i) out += static_cast<char>(hits->hits[i].key[0]);
    pomai_kv_hits_free(hits);
    return out;
  };
  EXPECT_EQ(keys(nullptr), "abc");
  EXPECT_EQ(keys(""), "abc");
  EXPECT_EQ(keys("lang = 'de'"), "ac");
  EXPECT_EQ(keys("year IS NULL"), "b");
  EXPECT_EQ(keys("year >= 2000"), "ac");
  EXPECT_EQ(keys("tags CONTAINS 'b'"), "ab");
  EXPECT_EQ(keys("NOT tags CONTAINS 'a'"), "");  // c has no tags: null, not false
  EXPECT_EQ(keys("tags IS NULL"), "c");
  EXPECT_NE(keys("year >").find("error: filter: at"), std::string::npos);
  EXPECT_NE(keys("color = 'red'").find("color"), std::string::npos);
  // A bad column: nothing staged.
  pomai_txn_t* bad = Begin();
  pomai_column_t id = {sizeof(pomai_column_t), POMAI_ATTR_INT64, "id", nullptr, &vecs, nullptr, nullptr};
  pomai_status_t* s = pomai_txn_index_upsert_attrs(bad, "idx", B("d"), 1, vecs[0], 3, false, nullptr, 0, &id, 1);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(pomai_status_code(s), POMAI_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(pomai_status_message(s)).find("id"), std::string::npos) << pomai_status_message(s);
  pomai_status_free(s);
  ASSERT_EQ(Code(pomai_txn_commit(bad)), 0);
  EXPECT_EQ(keys(""), "abc");
}

// pomai_index_prepare builds the graph a first search would, reporting
// (rows linked, rows) as it goes; once loaded it has nothing to do and
// reports nothing. Disk mode: after a reopen it loads the written graph.
TEST_P(TxnCApi, IndexPrepareReportsTheBuildOnce) {
  constexpr uint32_t kDim = 8, kRows = 1000;  // below the background flush trigger (1024 rows)
  pomai_hnsw_config_t c = {sizeof(c), kDim, 8, 40, POMAI_METRIC_L2};
  ASSERT_EQ(Code(pomai_index_create(db_, "idx", &c)), 0);
  pomai_txn_t* t = Begin();
  std::vector<float> v(kDim);
  for (uint32_t i = 0; i < kRows; ++i) {
    for (uint32_t d = 0; d < kDim; ++d) v[d] = std::sin(0.37f * static_cast<float>(i * kDim + d));
    const std::string key = "k" + std::to_string(i);
    ASSERT_EQ(Code(pomai_txn_index_upsert(t, "idx", B(key.c_str()), key.size(), v.data(), kDim, false, nullptr, 0)), 0);
  }
  ASSERT_EQ(Code(pomai_txn_commit(t)), 0);

  struct Calls {
    std::vector<std::pair<uint64_t, uint64_t>> seen;
  } calls;
  auto record = [](uint64_t done, uint64_t total, void* user) {
    static_cast<Calls*>(user)->seen.emplace_back(done, total);
  };
  ASSERT_EQ(Code(pomai_index_prepare(db_, "idx", record, &calls)), 0);
  ASSERT_FALSE(calls.seen.empty());
  for (size_t i = 0; i < calls.seen.size(); ++i) {
    EXPECT_EQ(calls.seen[i].second, kRows);
    EXPECT_LE(calls.seen[i].first, kRows);
    if (i > 0) EXPECT_GE(calls.seen[i].first, calls.seen[i - 1].first);
  }
  EXPECT_EQ(calls.seen.back().first, kRows);

  calls.seen.clear();
  ASSERT_EQ(Code(pomai_index_prepare(db_, "idx", record, &calls)), 0);  // loaded: nothing to build
  EXPECT_TRUE(calls.seen.empty());
  pomai_kv_hits_t* hits = nullptr;
  ASSERT_EQ(Code(pomai_index_search(db_, "idx", v.data(), kDim, 1, 0, &hits, nullptr)), 0);
  ASSERT_EQ(hits->count, 1u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(hits->hits[0].key), hits->hits[0].key_len),
            "k" + std::to_string(kRows - 1));
  pomai_kv_hits_free(hits);

  EXPECT_EQ(Code(pomai_index_prepare(db_, "idx", nullptr, nullptr)), 0);
  EXPECT_EQ(Code(pomai_index_prepare(db_, "missing", record, &calls)), POMAI_STATUS_NOT_FOUND);
  EXPECT_EQ(Code(pomai_index_prepare(db_, nullptr, record, &calls)), POMAI_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(Code(pomai_index_prepare(nullptr, "idx", record, &calls)), POMAI_STATUS_INVALID_ARGUMENT);
  EXPECT_TRUE(calls.seen.empty());

  if (GetParam()) {  // disk: the build wrote its graph; a reopen loads it, building nothing
    pomai_status_free(pomai_close(db_));
    ASSERT_EQ(Code(pomai_db_open_ex(&opts_, &db_)), 0);
    ASSERT_EQ(Code(pomai_index_prepare(db_, "idx", record, &calls)), 0);
    EXPECT_TRUE(calls.seen.empty());
  }
}

// (An in-memory database's flush: BadInput/Keyspace.FlushInMemory.)
TEST_P(TxnCApi, FlushAndConflictStatuses) {
  if (GetParam()) {
    EXPECT_EQ(Code(pomai_db_flush(db_)), 0);
  }
  pomai_txn_t* t1 = Begin();
  pomai_txn_t* t2 = Begin();
  ASSERT_EQ(Code(pomai_txn_put(t1, B("k"), 1, B("1"), 1)), 0);
  ASSERT_EQ(Code(pomai_txn_put(t2, B("k"), 1, B("2"), 1)), 0);
  ASSERT_EQ(Code(pomai_txn_commit(t2)), 0);
  pomai_status_t* s = pomai_txn_commit(t1);
  EXPECT_EQ(pomai_status_code(s), POMAI_STATUS_CONFLICT);
  EXPECT_STREQ(pomai_status_message(s), "transaction conflict");
  pomai_status_free(s);
  EXPECT_EQ(Code(pomai_txn_commit(t1)), POMAI_STATUS_CLOSED);  // a failed commit closes it
}

TEST_P(TxnCApi, ConcurrentCallsOnOneTransactionAreSerialised) {
  pomai_txn_t* t = Begin();
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([t, i] {
      for (int j = 0; j < 300; ++j) {
        const std::string k = "k" + std::to_string(i) + "-" + std::to_string(j);
        pomai_status_free(pomai_txn_put(t, B(k.c_str()), k.size(), B("v"), 1));
        size_t len;
        bool found;
        pomai_status_free(pomai_txn_get(t, B(k.c_str()), k.size(), nullptr, 0, &len, &found));
      }
    });
  }
  threads.emplace_back([t] { pomai_status_free(pomai_txn_commit(t)); });
  for (auto& th : threads) th.join();
  EXPECT_EQ(Code(pomai_txn_commit(t)), POMAI_STATUS_CLOSED);
}

}  // namespace
