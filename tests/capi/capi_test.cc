// The C ABI's contract: clean statuses for every bad input, never a crash.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "pomai/pomai.h"
#include "capi_test_util.h"
#include "support/temp_dir.h"

namespace {

using pomai::testing::TempDir;
using pomai::testing::Code;
using pomai::testing::Message;

// pomai_open of dim 4, 2 shards, inner product.
using CApi = pomai::testing::U64DbTest;

TEST(CApiStatus, NullStatusIsOkWithEmptyMessage) {
  EXPECT_EQ(pomai_status_code(nullptr), 0);
  EXPECT_STREQ(pomai_status_message(nullptr), "");
  pomai_status_free(nullptr);
  pomai_options_init(nullptr);
  pomai_record_free(nullptr);
  pomai_search_results_free(nullptr);
  pomai_search_batch_free(nullptr, 3);
  pomai_kv_hits_free(nullptr);
  pomai_db_options_ex_init(nullptr);
  pomai_free(nullptr);
  EXPECT_EQ(Code(pomai_close(nullptr)), 0);
  EXPECT_GT(std::strlen(pomai_version_string()), 0u);
  EXPECT_GT(std::strlen(pomai_simd_target()), 0u);
  EXPECT_EQ(pomai_abi_version(), 1u);
}

TEST(CApiOpen, OptionsInitSetsTheDocumentedDefaults) {
  pomai_options_t o;
  std::memset(&o, 0xAB, sizeof(o));
  pomai_options_init(&o);
  EXPECT_EQ(o.struct_size, sizeof(pomai_options_t));
  EXPECT_EQ(o.shards, 4u);
  EXPECT_EQ(o.dim, 512u);
  EXPECT_EQ(o.search_threads, 0u);
  EXPECT_EQ(o.fsync_policy, POMAI_FSYNC_POLICY_NEVER);
  EXPECT_EQ(o.index_type, POMAI_INDEX_TYPE_HNSW);
  EXPECT_EQ(o.hnsw_m, 32u);
  EXPECT_EQ(o.hnsw_ef_construction, 200u);
  EXPECT_EQ(o.hnsw_ef_search, 64u);
  EXPECT_EQ(o.adaptive_threshold, 5000u);
  EXPECT_EQ(o.metric, POMAI_METRIC_L2);
  EXPECT_EQ(o.hnsw_vectors, POMAI_HNSW_VECTORS_SQ8);
}

// NULL pointers and the other bad fields: bad_input_test.cc (BadInput/U64.Open*).
TEST(CApiOpen, BadOptionsAreInvalidArgumentNamingTheField) {
  TempDir dir;
  pomai_options_t o;
  pomai_db_t* db = nullptr;
  pomai_options_init(&o);
  o.path = dir.path().c_str();
  o.dim = 4;
  o.hnsw_vectors = 2;
  EXPECT_NE(Message(pomai_open(&o, &db)).find("hnsw_vectors is 2"), std::string::npos);
  o.struct_size = 65;  // through metric: hnsw_vectors is not read
  ASSERT_EQ(Code(pomai_open(&o, &db)), 0);
  pomai_status_free(pomai_close(db));
  db = nullptr;
  o.struct_size = sizeof(o);
  o.hnsw_vectors = POMAI_HNSW_VECTORS_FLOAT32;
  ASSERT_EQ(Code(pomai_open(&o, &db)), 0);
  pomai_status_free(pomai_close(db));
  db = nullptr;
  o.struct_size = 16;
  EXPECT_NE(Message(pomai_open(&o, &db)).find("struct_size is too small"), std::string::npos);
  EXPECT_EQ(db, nullptr);
}

// The collection's limits are checked before the directory is touched: a
// refused open leaves no files.
TEST(CApiOpen, TooLargeDimOrShardsOrHnswParamsAreRefusedBeforeAnyFileIsMade) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  pomai_options_t o;
  pomai_options_init(&o);
  o.path = path.c_str();
  pomai_db_t* db = nullptr;
  o.dim = 65536;
  EXPECT_EQ(Message(pomai_open(&o, &db)), "database dimension 65536 is not in 1..65535");
  o.dim = 65535;
  o.shards = 100000;
  EXPECT_NE(Message(pomai_open(&o, &db)).find("shards"), std::string::npos);
  o.shards = 2;
  o.hnsw_m = 1;
  EXPECT_EQ(Message(pomai_open(&o, &db)), "invalid parameter hnsw_m: must be between 2 and 100 (got 1)");
  EXPECT_EQ(db, nullptr);
  EXPECT_FALSE(std::filesystem::exists(path));
  o.hnsw_m = 32;
  ASSERT_EQ(Code(pomai_open(&o, &db)), 0);  // dim 65535 is the limit
  EXPECT_EQ(Code(pomai_close(db)), 0);
}

// A directory of the u64 engine's format 1 (a MANIFEST, no CURRENT) is
// refused naming its version (docs/ENGINE.md 3.1), not opened or converted.
TEST(CApiOpen, ADirectoryOfFormatVersionOneIsRefusedNamingItsVersion) {
  TempDir dir;
  {
    std::ofstream f(dir.path() + "/MANIFEST", std::ios::binary);
    const char bytes[16] = {'P', 'M', 'A', 'N', 'I', 'F', 'S', 'T', 1, 0, 0, 0, 0, 0, 0, 0};
    f.write(bytes, sizeof(bytes));
  }
  pomai_options_t o;
  pomai_options_init(&o);
  o.path = dir.path().c_str();
  o.dim = 4;
  pomai_db_t* db = nullptr;
  EXPECT_EQ(Message(pomai_open(&o, &db)),
            dir.path() + "/MANIFEST holds a pomai database of format version 1 (manifest version 1); this build reads "
                         "format version 2 and does not convert (no migration before 1.0)");
  EXPECT_EQ(db, nullptr);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/CURRENT"));
}

TEST(CApiOpen, OlderShorterOptionsStructTakesDefaultsForTheRest) {
  TempDir dir;
  pomai_options_t o;
  std::memset(&o, 0xFF, sizeof(o));  // garbage beyond struct_size must not be read
  o.struct_size = 48;                // an older client: through deadline_ms
  o.path = dir.path().c_str();
  o.shards = 1;
  o.dim = 3;
  o.search_threads = 1;
  o.fsync_policy = POMAI_FSYNC_POLICY_NEVER;
  o.memory_budget_bytes = 0;
  o.deadline_ms = 0;
  pomai_db_t* db = nullptr;
  ASSERT_EQ(Code(pomai_open(&o, &db)), 0);
  float v[3] = {1, 2, 3};
  pomai_upsert_t u{};
  u.struct_size = 32;  // an older, shorter upsert: through dim (no metadata)
  u.id = 5;
  u.vector = v;
  u.dim = 3;
  u.metadata = reinterpret_cast<const uint8_t*>(0xdead);  // beyond struct_size: ignored
  ASSERT_EQ(Code(pomai_put(db, &u)), 0);
  pomai_query_t q{};
  q.struct_size = 40;  // older query: through deadline_ms; flags not read
  q.vector = v;
  q.dim = 3;
  q.topk = 1;
  q.flags = 99;
  pomai_search_results_t* r = nullptr;
  ASSERT_EQ(Code(pomai_search(db, &q, &r)), 0);
  ASSERT_EQ(r->count, 1u);
  EXPECT_EQ(r->ids[0], 5u);
  EXPECT_FLOAT_EQ(r->scores[0], -0.0f);  // L2 (the default metric) distance to itself
  pomai_search_results_free(r);
  pomai_status_free(pomai_close(db));
}

TEST_F(CApi, PutSearchGetRoundTrip) {
  float a[4] = {1, 0, 0, 0}, b[4] = {0, 1, 0, 0}, c[4] = {0.5f, 0.5f, 0, 0};
  pomai_upsert_t items[3] = {Upsert(1, a), Upsert(2, b), Upsert(3, c)};
  items[2].metadata = reinterpret_cast<const uint8_t*>("meta");
  items[2].metadata_len = 4;
  ASSERT_EQ(Code(pomai_put_batch(db_, items, 3)), 0);
  pomai_query_t q = Query(a, 2);
  pomai_search_results_t* r = nullptr;
  ASSERT_EQ(Code(pomai_search(db_, &q, &r)), 0);
  ASSERT_EQ(r->count, 2u);
  EXPECT_EQ(r->ids[0], 1u);
  EXPECT_EQ(r->ids[1], 3u);
  EXPECT_FLOAT_EQ(r->scores[0], 1.0f);
  EXPECT_EQ(r->shard_ids[0], 1u);
  EXPECT_EQ(r->zero_copy_pointers, nullptr);
  pomai_search_results_free(r);

  pomai_record_t* rec = nullptr;
  ASSERT_EQ(Code(pomai_get(db_, 3, &rec)), 0);
  EXPECT_EQ(rec->dim, 4u);
  EXPECT_EQ(rec->vector[0], 0.5f);
  ASSERT_EQ(rec->metadata_len, 4u);
  EXPECT_EQ(std::memcmp(rec->metadata, "meta", 4), 0);
  EXPECT_FALSE(rec->is_deleted);
  pomai_record_free(rec);
  EXPECT_EQ(Code(pomai_get(db_, 99, &rec)), POMAI_STATUS_NOT_FOUND);
  EXPECT_EQ(rec, nullptr);
  bool exists = true;
  ASSERT_EQ(Code(pomai_delete(db_, 3)), 0);
  ASSERT_EQ(Code(pomai_exists(db_, 3, &exists)), 0);
  EXPECT_FALSE(exists);
  uint64_t count = 0;
  ASSERT_EQ(Code(pomai_count(db_, &count)), 0);
  EXPECT_EQ(count, 2u);
  ASSERT_EQ(Code(pomai_freeze(db_)), 0);
  ASSERT_EQ(Code(pomai_count(db_, &count)), 0);
  EXPECT_EQ(count, 2u);
}

TEST_F(CApi, CompactMergesSegmentsAndStatsReportThem) {
  float a[4] = {1, 2, 3, 4};
  for (uint64_t round = 0; round < 3; ++round) {
    for (uint64_t id = 0; id < 10; ++id) {
      pomai_upsert_t u = Upsert(round * 5 + id, a);
      ASSERT_EQ(Code(pomai_put(db_, &u)), 0);
    }
    ASSERT_EQ(Code(pomai_delete(db_, round)), 0);
    ASSERT_EQ(Code(pomai_freeze(db_)), 0);
  }
  ASSERT_EQ(Code(pomai_compact(db_)), 0);
  char* json = nullptr;
  ASSERT_EQ(Code(pomai_stats_json(db_, &json)), 0);
  ASSERT_NE(json, nullptr);
  std::string stats = json;
  pomai_free(json);
  EXPECT_NE(stats.find("\"segments\": 1,"), std::string::npos) << stats;  // one file holds every shard's rows
  EXPECT_NE(stats.find("\"segment_tombstones\": 0"), std::string::npos) << stats;
  EXPECT_NE(stats.find("\"live_rows\": 17"), std::string::npos) << stats;
}

class CApiProgress : public pomai::testing::U64DbTest {
 protected:
  void Configure(pomai_options_t& o) override {
    o.dim = 8;
    o.adaptive_threshold = 0;
    o.hnsw_m = 8;
    o.hnsw_ef_construction = 20;
  }
};

TEST_F(CApiProgress, FreezeAndCompactReportProgressEndingAtTotal) {
  std::vector<uint64_t> ids(3000);
  std::vector<float> vecs(ids.size() * 8);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = i;
  for (size_t i = 0; i < vecs.size(); ++i) vecs[i] = std::sin(float(i) * 0.37f);
  ASSERT_EQ(Code(pomai_put_array(db_, ids.data(), vecs.data(), ids.size(), 8)), 0);
  struct Seen {
    uint64_t calls = 0, last_done = 0, last_total = 0;
    bool monotonic = true;
  } seen;
  auto fn = [](uint64_t done, uint64_t total, void* user) {
    auto* s = static_cast<Seen*>(user);
    if (done < s->last_done || done > total) s->monotonic = false;
    s->calls++;
    s->last_done = done;
    s->last_total = total;
  };
  ASSERT_EQ(Code(pomai_freeze_with_progress(db_, fn, &seen)), 0);
  EXPECT_GE(seen.calls, 2u);
  EXPECT_TRUE(seen.monotonic);
  EXPECT_EQ(seen.last_done, 3000u);
  EXPECT_EQ(seen.last_total, 3000u);
  ASSERT_EQ(Code(pomai_put_array(db_, ids.data(), vecs.data(), 100, 8)), 0);
  ASSERT_EQ(Code(pomai_freeze(db_)), 0);
  seen = Seen{};
  ASSERT_EQ(Code(pomai_compact_with_progress(db_, fn, &seen)), 0);
  EXPECT_TRUE(seen.monotonic);
  EXPECT_EQ(seen.last_done, seen.last_total);
  EXPECT_EQ(seen.last_total, 3000u);
  EXPECT_EQ(Code(pomai_freeze_with_progress(db_, nullptr, nullptr)), 0);
}

TEST_F(CApi, SearchBatchAllowsADifferentTopkPerQuery) {
  std::vector<float> vecs(40 * 4);
  std::vector<uint64_t> ids(40);
  for (size_t i = 0; i < 40; ++i) {
    ids[i] = i;
    for (int d = 0; d < 4; ++d) vecs[i * 4 + d] = std::sin(float(i * 4 + d));
  }
  ASSERT_EQ(Code(pomai_put_array(db_, ids.data(), vecs.data(), 40, 4)), 0);
  pomai_query_t qs[3] = {Query(&vecs[0], 1), Query(&vecs[4], 7), Query(&vecs[8], 0)};
  pomai_search_results_t* r = nullptr;
  ASSERT_EQ(Code(pomai_search_batch(db_, qs, 3, &r)), 0);
  EXPECT_EQ(r[0].count, 1u);
  EXPECT_EQ(r[1].count, 7u);
  EXPECT_EQ(r[2].count, 0u);
  EXPECT_EQ(r[1].struct_size, sizeof(pomai_search_results_t));
  for (size_t i = 1; i < r[1].count; ++i) EXPECT_GE(r[1].scores[i - 1], r[1].scores[i]);
  pomai_search_batch_free(r, 3);
}

TEST_F(CApi, SearchArrayPadsMissingResults) {
  float a[4] = {1, 2, 3, 4};
  pomai_upsert_t u = Upsert(8, a);
  ASSERT_EQ(Code(pomai_put(db_, &u)), 0);
  uint64_t ids[3];
  float scores[3];
  uint32_t counts[1];
  ASSERT_EQ(Code(pomai_search_array(db_, a, 1, 4, 3, 0, ids, scores, counts)), 0);
  EXPECT_EQ(counts[0], 1u);
  EXPECT_EQ(ids[0], 8u);
  EXPECT_EQ(ids[1], UINT64_MAX);
  EXPECT_TRUE(std::isinf(scores[2]) && scores[2] < 0);
}

// Found by tests/fuzz/capi_fuzz: a stride (items[0].struct_size) that is not
// a multiple of the struct's alignment used to read misaligned structs (UBSan:
// "misaligned address ... pomai_upsert_t") and garbage.
TEST_F(CApi, ArrayStrideThatMisalignsElementsIsInvalidArgument) {
  float a[4] = {1, 2, 3, 4};
  alignas(8) unsigned char buf[3 * 28] = {};
  for (int i = 0; i < 3; ++i) {
    pomai_upsert_t u = Upsert(i, a);
    u.struct_size = 28;  // offsetof(dim) + 4: not a valid C array stride
    std::memcpy(buf + 28 * i, &u, 28);
  }
  const auto* items = reinterpret_cast<const pomai_upsert_t*>(buf);
  std::string m = Message(pomai_put_batch(db_, items, 3));
  EXPECT_NE(m.find("items[0].struct_size is 28"), std::string::npos) << m;
  EXPECT_NE(m.find("multiple of 8"), std::string::npos) << m;
  EXPECT_EQ(Code(pomai_put_batch(db_, items, 1)), 0);  // one element: no stride involved
  uint64_t n = 0;
  ASSERT_EQ(Code(pomai_count(db_, &n)), 0);
  EXPECT_EQ(n, 1u);

  alignas(8) unsigned char qbuf[2 * 36] = {};
  for (int i = 0; i < 2; ++i) {
    pomai_query_t q = Query(a, 1);
    q.struct_size = 36;
    std::memcpy(qbuf + 36 * i, &q, 36);
  }
  pomai_search_results_t* r = nullptr;
  m = Message(pomai_search_batch(db_, reinterpret_cast<const pomai_query_t*>(qbuf), 2, &r));
  EXPECT_NE(m.find("queries[0].struct_size is 36"), std::string::npos) << m;
  EXPECT_EQ(r, nullptr);
}

TEST_F(CApi, SecondOpenWhileHeldSaysLocked) {
  pomai_db_t* other = nullptr;
  std::string m = Message(pomai_open(&opts_, &other));
  EXPECT_NE(m.find("locked"), std::string::npos) << m;
  EXPECT_EQ(other, nullptr);
}

}  // namespace
