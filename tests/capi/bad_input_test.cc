// The bad-input matrix of the C ABI (pomai.h's u64-id functions and kv.h's
// keyspace functions): every NULL pointer, wrong dimension, NaN/infinity,
// extreme k and n, empty batch, duplicate id, closed or garbage handle and
// closed transaction gives a status naming the argument (and the bad value),
// or the documented result; nothing is half-applied; nothing crashes.
//
// Each table row is its own test: BadInput/U64.<row>, BadInput/Keyspace.<row>
// (in memory) and BadInput/KeyspaceOnDisk.<row>.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "pomai/pomai.h"
#include "capi_test_util.h"
#include "support/temp_dir.h"

namespace {

using pomai::testing::B;
using pomai::testing::Close;
using pomai::testing::Code;
using pomai::testing::DbExTest;
using pomai::testing::KeyspaceDbCalls;
using pomai::testing::Garbage;
using pomai::testing::Get;
using pomai::testing::IndexSearch;
using pomai::testing::kNoCounts;
using pomai::testing::kNoIds;
using pomai::testing::kNoScores;
using pomai::testing::MakeQuery;
using pomai::testing::MakeUpsert;
using pomai::testing::Scan;
using pomai::testing::Search;
using pomai::testing::SearchArray;
using pomai::testing::SearchBatch;
using pomai::testing::Settled;
using pomai::testing::Similar;
using pomai::testing::StorageModeName;
using pomai::testing::TempDir;
using pomai::testing::TxnBegin;
using pomai::testing::TxnCalls;
using pomai::testing::TxnKeyCall;
using pomai::testing::TxnKeyCalls;
using pomai::testing::U64DbCalls;
using pomai::testing::Verify;

constexpr int kOk = POMAI_STATUS_OK;
constexpr int kInvalid = POMAI_STATUS_INVALID_ARGUMENT;
constexpr int kClosed = POMAI_STATUS_CLOSED;
constexpr int kNotFound = POMAI_STATUS_NOT_FOUND;
constexpr int kReadOnly = POMAI_STATUS_READ_ONLY;
constexpr int kUnimplemented = POMAI_STATUS_UNIMPLEMENTED;

// A never-issued handle token (slot 0xdead, generation 1) and two malformed ones.
constexpr uint64_t kNeverIssued = uint64_t{0xdead} << 32 | 1;
constexpr uint64_t kSlotZero = 0x1;  // slot field 0: never valid
constexpr uint64_t kHugeSlot = 0xFFFFFFFF00000001ull;

const float kNan = NAN;
const float kInf = INFINITY;

// A row of a table: `call` runs one bad (or edge) input against the fixture's
// state and returns its status; the test asserts `code` and that the message
// contains `message`.
template <typename Env>
struct Case {
  std::string name;
  std::function<pomai_status_t*(Env&)> call;
  int code;
  std::string message;
};

template <typename Env>
void PrintTo(const Case<Env>& c, std::ostream* os) {
  *os << c.name;
}

template <typename Env>
std::string CaseName(const ::testing::TestParamInfo<Case<Env>>& info) {
  return info.param.name;
}

// Checks `s` against the row's expectation and frees it.
template <typename Env>
void ExpectStatus(const Case<Env>& c, pomai_status_t* s) {
  const std::string message = pomai_status_message(s);
  EXPECT_EQ(pomai_status_code(s), c.code) << message;
  EXPECT_NE(message.find(c.message), std::string::npos) << "message: '" << message << "'; expected to contain '"
                                                        << c.message << "'";
  if (c.code != kOk) {
    EXPECT_FALSE(message.empty());
  }
  pomai_status_free(s);
}

// ===========================================================================
// The u64-id face (pomai.h)

constexpr uint32_t kDim = 4;
constexpr uint64_t kRows = 10;

// A database of dim 4, 2 shards, metric IP, holding ids 0..9.
struct IdEnv {
  TempDir dir, spare;
  pomai_options_t opts;
  pomai_db_t* db = nullptr;
  bool closed = false;
  float a[4] = {1, 2, 3, 4};
  pomai_upsert_t row = MakeUpsert(100, a, kDim);  // a valid row the database does not hold
  pomai_query_t query = MakeQuery(a, kDim, 1);

  pomai_db_t* Close() {
    if (!closed) {
      EXPECT_EQ(Code(pomai_close(db)), kOk);
    }
    closed = true;
    return db;
  }
  pomai_upsert_t Upsert(uint64_t id, const float* v) const { return MakeUpsert(id, v, kDim); }
  pomai_query_t Query(const float* v, uint32_t k) const { return MakeQuery(v, kDim, k); }
};

using IdCase = Case<IdEnv>;

// Searches with `topk` (and the query changed by `change`) and expects `want`
// results, best first.
template <typename Change = void (*)(pomai_query_t&)>
pomai_status_t* SearchExpecting(IdEnv& e, uint32_t topk, size_t want, Change change = [](pomai_query_t&) {}) {
  pomai_query_t q = e.Query(e.a, topk);
  change(q);
  pomai_search_results_t* r = nullptr;
  pomai_status_t* s = pomai_search(e.db, &q, &r);
  if (s != nullptr) return s;
  EXPECT_EQ(r->count, want);
  for (size_t i = 1; i < r->count; ++i) EXPECT_GE(r->scores[i - 1], r->scores[i]);
  pomai_search_results_free(r);
  return nullptr;
}

// pomai_search_array with `topk` over one query; expects `want` results and
// the rest of the row padded with UINT64_MAX / -infinity.
pomai_status_t* SearchArrayExpecting(IdEnv& e, uint32_t topk, uint32_t want) {
  std::vector<uint64_t> ids(topk, 7);
  std::vector<float> scores(topk, 7);
  uint32_t count = 99;
  pomai_status_t* s = pomai_search_array(e.db, e.a, 1, kDim, topk, 0, topk ? ids.data() : nullptr,
                                         topk ? scores.data() : nullptr, &count);
  if (s != nullptr) return s;
  EXPECT_EQ(count, want);
  for (uint32_t j = want; j < topk; ++j) {
    EXPECT_EQ(ids[j], UINT64_MAX);
    EXPECT_TRUE(std::isinf(scores[j]) && scores[j] < 0);
  }
  return nullptr;
}

// pomai_open of `opts`; a database it opens is closed.
pomai_status_t* Open(const pomai_options_t* opts) {
  pomai_db_t* db = Garbage<pomai_db_t>(1);
  pomai_status_t* s = pomai_open(opts, &db);
  return Settled(s, db, Close);
}

// pomai_open of the spare directory with the fixture's options changed by `change`.
template <typename Change>
pomai_status_t* OpenSpare(IdEnv& e, Change change) {
  e.opts.path = e.spare.path().c_str();
  change(e.opts);
  return Open(&e.opts);
}

// pomai_put of row 100 (the fixture's vector) changed by `change`.
template <typename Change>
pomai_status_t* PutWith(IdEnv& e, Change change) {
  pomai_upsert_t u = e.row;
  change(u);
  return pomai_put(e.db, &u);
}

// pomai_put_batch of rows 100 and 101, the second changed by `change`.
template <typename Change>
pomai_status_t* PutBatchWith(IdEnv& e, Change change) {
  pomai_upsert_t items[2] = {e.row, e.Upsert(101, e.a)};
  change(items[1]);
  return pomai_put_batch(e.db, items, 2);
}

// pomai_search of the fixture's query changed by `change`.
template <typename Change>
pomai_status_t* SearchWith(IdEnv& e, Change change) {
  pomai_query_t q = e.query;
  change(q);
  return Search(e.db, &q);
}

// pomai_search_batch of no queries: its results must be NULL.
pomai_status_t* SearchBatchOfNone(pomai_db_t* db, const pomai_query_t* queries) {
  pomai_search_results_t* r = Garbage<pomai_search_results_t>(1);
  pomai_status_t* s = pomai_search_batch(db, queries, 0, &r);
  EXPECT_EQ(r, nullptr);
  return s;
}

// pomai_search_batch of two queries, the second changed by `change`.
template <typename Change>
pomai_status_t* SearchBatchWith(IdEnv& e, Change change) {
  pomai_query_t qs[2] = {e.query, e.query};
  change(qs[1]);
  return SearchBatch(e.db, qs, 2);
}

std::vector<IdCase> IdCases() {
  using E = IdEnv;
  std::vector<IdCase> c = {
      // ---- open: NULL pointers and bad options
      {"OpenNullOpts", [](E&) { return Open(nullptr); }, kInvalid, "opts is NULL"},
      {"OpenNullOutDb", [](E& e) { e.opts.path = e.spare.path().c_str(); return pomai_open(&e.opts, nullptr); },
       kInvalid, "out_db is NULL"},
      {"OpenNullPath", [](E& e) { return OpenSpare(e, [](pomai_options_t& o) { o.path = nullptr; }); }, kInvalid,
       "opts->path is NULL or empty"},
      {"OpenEmptyPath", [](E& e) { return OpenSpare(e, [](pomai_options_t& o) { o.path = ""; }); }, kInvalid,
       "opts->path is NULL or empty"},
      {"OpenDimZero", [](E& e) { return OpenSpare(e, [](pomai_options_t& o) { o.dim = 0; }); }, kInvalid,
       "opts->dim is 0"},
      {"OpenShardsZero", [](E& e) { return OpenSpare(e, [](pomai_options_t& o) { o.shards = 0; }); }, kInvalid,
       "opts->shards is 0"},
      {"OpenBadMetric", [](E& e) { return OpenSpare(e, [](pomai_options_t& o) { o.metric = 7; }); }, kInvalid,
       "opts->metric is 7"},
      {"OpenBadIndexType", [](E& e) { return OpenSpare(e, [](pomai_options_t& o) { o.index_type = 5; }); }, kInvalid,
       "opts->index_type is 5"},
      {"OpenBadFsyncPolicy",
       [](E& e) {
         const uint32_t nine = 9;  // as a C caller could store it
         return OpenSpare(e, [&](pomai_options_t& o) { std::memcpy(&o.fsync_policy, &nine, sizeof(nine)); });
       },
       kInvalid, "opts->fsync_policy is 9"},
      {"OpenOtherDim",
       [](E& e) {
         e.Close();
         e.opts.dim = 5;
         return Open(&e.opts);
       },
       kInvalid, "dim 5 does not match the database's dim 4"},

      // ---- put / put_batch
      {"PutNullDb", [](E& e) { return pomai_put(nullptr, &e.row); }, kInvalid, "db is NULL"},
      {"PutNullItem", [](E& e) { return pomai_put(e.db, nullptr); }, kInvalid, "item is NULL"},
      {"PutNullVector", [](E& e) { pomai_upsert_t u = e.Upsert(100, nullptr); return pomai_put(e.db, &u); }, kInvalid,
       "items[0].vector is NULL"},
      {"PutNullMetadataWithLength", [](E& e) { return PutWith(e, [](pomai_upsert_t& u) { u.metadata_len = 5; }); },
       kInvalid, "items[0].metadata is NULL but metadata_len is 5"},
      {"PutMetadataLengthTooLarge",
       [](E& e) {
         return PutWith(e, [](pomai_upsert_t& u) {
           u.metadata = B("m");  // the length is checked before a byte is read
           u.metadata_len = UINT32_MAX;
         });
       },
       kInvalid, "item 0 has metadata of 4294967295 bytes"},
      {"PutWrongDim", [](E& e) { return PutWith(e, [](pomai_upsert_t& u) { u.dim = 3; }); }, kInvalid,
       "items[0].dim is 3 but the database's dim is 4"},
      {"PutStructSizeTooSmall", [](E& e) { return PutWith(e, [](pomai_upsert_t& u) { u.struct_size = 8; }); },
       kInvalid, "items->struct_size is too small (8 < 28)"},
      {"PutBatchNullDb", [](E& e) { return pomai_put_batch(nullptr, &e.row, 1); }, kInvalid, "db is NULL"},
      {"PutBatchNullItems", [](E& e) { return pomai_put_batch(e.db, nullptr, 2); }, kInvalid,
       "items is NULL but n is 2"},
      {"PutBatchEmptyNullItems", [](E& e) { return pomai_put_batch(e.db, nullptr, 0); }, kOk, ""},
      {"PutBatchEmptyNonNullItems", [](E& e) { return pomai_put_batch(e.db, &e.row, 0); }, kOk, ""},
      {"PutBatchHugeN", [](E& e) { return pomai_put_batch(e.db, &e.row, SIZE_MAX); }, kInvalid,
       "n is 18446744073709551615"},
      {"PutBatchSecondItemNullVector",
       [](E& e) { return PutBatchWith(e, [](pomai_upsert_t& u) { u.vector = nullptr; }); }, kInvalid,
       "items[1].vector is NULL"},
      {"PutBatchSecondItemWrongDim", [](E& e) { return PutBatchWith(e, [](pomai_upsert_t& u) { u.dim = 5; }); },
       kInvalid, "items[1].dim is 5 but the database's dim is 4"},
      {"PutBatchSecondItemOtherStructSize",
       [](E& e) { return PutBatchWith(e, [](pomai_upsert_t& u) { u.struct_size = 40; }); }, kInvalid,
       "items[1].struct_size is 40 but items[0].struct_size is 48"},
  };
  // NaN and +/-infinity in a stored vector: in put_batch (second item) and put_array (second row).
  struct Bad {
    const char* name;
    float value;
    const char* text;
  };
  for (Bad bad : {Bad{"Nan", kNan, "nan"}, Bad{"PlusInf", kInf, "inf"}, Bad{"MinusInf", -kInf, "-inf"}}) {
    c.push_back({std::string("PutBatch") + bad.name,
                 [bad](E& e) {
                   float v[4] = {1, bad.value, 3, 4};
                   return PutBatchWith(e, [&v](pomai_upsert_t& u) { u.vector = v; });
                 },
                 kInvalid, std::string("item 1 (id 101) has a non-finite value ") + bad.text + " at component 1"});
    c.push_back({std::string("PutArray") + bad.name,
                 [bad](E& e) {
                   float v[8] = {1, 2, 3, 4, 5, 6, bad.value, 8};
                   uint64_t ids[2] = {100, 101};
                   return pomai_put_array(e.db, ids, v, 2, kDim);
                 },
                 kInvalid, std::string("row 1 (id 101) has a non-finite value ") + bad.text + " at component 2"});
    c.push_back({std::string("Search") + bad.name,
                 [bad](E& e) {
                   float v[4] = {bad.value, 2, 3, 4};
                   pomai_query_t q = e.Query(v, 1);
                   return Search(e.db, &q);
                 },
                 kInvalid, std::string("query 0 has a non-finite value ") + bad.text + " at component 0"});
    c.push_back({std::string("SearchBatchSecondQuery") + bad.name,
                 [bad](E& e) {
                   float v[4] = {1, 2, 3, bad.value};
                   return SearchBatchWith(e, [&v](pomai_query_t& q) { q.vector = v; });
                 },
                 kInvalid, std::string("query 1 has a non-finite value ") + bad.text + " at component 3"});
    c.push_back({std::string("SearchArray") + bad.name,
                 [bad](E& e) {
                   float v[8] = {1, 2, 3, 4, 1, bad.value, 3, 4};
                   return SearchArray(e.db, v, 2, kDim, 1);
                 },
                 kInvalid, std::string("query 1 has a non-finite value ") + bad.text + " at component 1"});
  }
  std::vector<IdCase> more = {
      // ---- put_array
      {"PutArrayNullDb", [](E& e) { uint64_t id = 1; return pomai_put_array(nullptr, &id, e.a, 1, kDim); }, kInvalid,
       "db is NULL"},
      {"PutArrayNullIds", [](E& e) { return pomai_put_array(e.db, nullptr, e.a, 1, kDim); }, kInvalid,
       "ids is NULL but n is 1"},
      {"PutArrayNullVectors", [](E& e) { uint64_t id = 100; return pomai_put_array(e.db, &id, nullptr, 1, kDim); },
       kInvalid, "vectors is NULL but n is 1"},
      {"PutArrayEmptyNullPointers", [](E& e) { return pomai_put_array(e.db, nullptr, nullptr, 0, kDim); }, kOk, ""},
      {"PutArrayEmptyNonNullPointers", [](E& e) { uint64_t id = 100; return pomai_put_array(e.db, &id, e.a, 0, kDim); },
       kOk, ""},
      {"PutArrayWrongDim", [](E& e) { uint64_t id = 100; return pomai_put_array(e.db, &id, e.a, 1, 3); }, kInvalid,
       "dim is 3 but the database's dim is 4"},
      {"PutArrayHugeN", [](E& e) { uint64_t id = 100; return pomai_put_array(e.db, &id, e.a, SIZE_MAX, kDim); },
       kInvalid, "batch of 18446744073709551615 rows of dim 4 is above"},
      {"PutArrayNTimes2Pow63", [](E& e) { uint64_t id = 100; return pomai_put_array(e.db, &id, e.a, size_t{1} << 63, kDim); },
       kInvalid, "batch of 9223372036854775808 rows of dim 4 is above"},

      // ---- delete / delete_batch
      {"DeleteNullDb", [](E&) { return pomai_delete(nullptr, 1); }, kInvalid, "db is NULL"},
      {"DeleteBatchNullDb", [](E&) { uint64_t id = 1; return pomai_delete_batch(nullptr, &id, 1); }, kInvalid,
       "db is NULL"},
      {"DeleteBatchNullIds", [](E& e) { return pomai_delete_batch(e.db, nullptr, 2); }, kInvalid,
       "ids is NULL but n is 2"},
      {"DeleteBatchEmptyNullIds", [](E& e) { return pomai_delete_batch(e.db, nullptr, 0); }, kOk, ""},
      {"DeleteBatchEmptyNonNullIds", [](E& e) { uint64_t id = 1; return pomai_delete_batch(e.db, &id, 0); }, kOk, ""},
      {"DeleteBatchHugeN", [](E& e) { uint64_t id = 1; return pomai_delete_batch(e.db, &id, SIZE_MAX); }, kInvalid,
       "n is 18446744073709551615"},
      {"DeleteMissingIdIsOk", [](E& e) { return pomai_delete(e.db, 12345); }, kOk, ""},

      // ---- freeze / compact / stats
      {"FreezeNullDb", [](E&) { return pomai_freeze(nullptr); }, kInvalid, "db is NULL"},
      {"CompactNullDb", [](E&) { return pomai_compact(nullptr); }, kInvalid, "db is NULL"},
      {"FreezeWithProgressNullDb", [](E&) { return pomai_freeze_with_progress(nullptr, nullptr, nullptr); }, kInvalid,
       "db is NULL"},
      {"CompactWithProgressNullDb", [](E&) { return pomai_compact_with_progress(nullptr, nullptr, nullptr); },
       kInvalid, "db is NULL"},
      {"FreezeWithNullProgressFnIsPlainFreeze", [](E& e) { return pomai_freeze_with_progress(e.db, nullptr, nullptr); },
       kOk, ""},
      {"StatsJsonNullDb", [](E&) { char* j; return pomai_stats_json(nullptr, &j); }, kInvalid, "db is NULL"},
      {"StatsJsonNullOut", [](E& e) { return pomai_stats_json(e.db, nullptr); }, kInvalid, "out_json is NULL"},
      {"VerifyNullDb", [](E&) { return Verify(nullptr); }, kInvalid, "db is NULL"},
      {"VerifyNullOut", [](E& e) { return pomai_verify(e.db, nullptr); }, kInvalid, "out_report_json is NULL"},

      // ---- exists / get / count
      {"ExistsNullDb", [](E&) { bool b; return pomai_exists(nullptr, 1, &b); }, kInvalid, "db is NULL"},
      {"ExistsNullOut", [](E& e) { return pomai_exists(e.db, 1, nullptr); }, kInvalid, "out_exists is NULL"},
      {"GetNullDb", [](E&) { return Get(nullptr, 1); }, kInvalid, "db is NULL"},
      {"GetNullOut", [](E& e) { return pomai_get(e.db, 1, nullptr); }, kInvalid, "out_record is NULL"},
      {"GetMissingId", [](E& e) { return Get(e.db, 99, Garbage<pomai_record_t>(1)); }, kNotFound, "id 99 not found"},
      {"CountNullDb", [](E&) { uint64_t n; return pomai_count(nullptr, &n); }, kInvalid, "db is NULL"},
      {"CountNullOut", [](E& e) { return pomai_count(e.db, nullptr); }, kInvalid, "out_count is NULL"},

      // ---- search
      {"SearchNullDb", [](E& e) { return Search(nullptr, &e.query); }, kInvalid, "db is NULL"},
      {"SearchNullQuery", [](E& e) { return Search(e.db, nullptr, Garbage<pomai_search_results_t>(1)); }, kInvalid,
       "query is NULL"},
      {"SearchNullOut", [](E& e) { return pomai_search(e.db, &e.query, nullptr); }, kInvalid, "out_results is NULL"},
      {"SearchNullVector", [](E& e) { pomai_query_t q = e.Query(nullptr, 1); return Search(e.db, &q); }, kInvalid,
       "queries[0].vector is NULL"},
      {"SearchWrongDim", [](E& e) { return SearchWith(e, [](pomai_query_t& q) { q.dim = 3; }); }, kInvalid,
       "queries[0].dim is 3 but the database's dim is 4"},
      {"SearchStructSizeTooSmall",
       [](E& e) { return SearchWith(e, [](pomai_query_t& q) { q.struct_size = 8; }); }, kInvalid,
       "query->struct_size is too small (8 < 24)"},
      {"SearchFilterOnAnUnknownColumn",
       [](E& e) { return SearchWith(e, [](pomai_query_t& q) { q.filter_expression = "color = 'red'"; }); }, kInvalid,
       "filter: at 0: no column 'color'"},
      {"SearchFilterThatDoesNotParse",
       [](E& e) { return SearchWith(e, [](pomai_query_t& q) { q.filter_expression = "id = "; }); }, kInvalid,
       "filter: at 5"},
      {"SearchFilterIdsNull",
       [](E& e) { return SearchWith(e, [](pomai_query_t& q) { q.filter_id_count = 3; }); }, kInvalid,
       "queries[0].filter_ids is NULL but filter_id_count is 3"},
      {"SearchEmptyFilterIsNoFilter",
       [](E& e) { return SearchExpecting(e, 1, 1, [](pomai_query_t& q) { q.filter_expression = ""; }); }, kOk, ""},
      {"SearchNonZeroFlags", [](E& e) { return SearchWith(e, [](pomai_query_t& q) { q.flags = 1; }); }, kInvalid,
       "queries[0].flags is 1"},
      {"SearchTopkZero", [](E& e) { return SearchExpecting(e, 0, 0); }, kOk, ""},
      {"SearchTopkAboveRows", [](E& e) { return SearchExpecting(e, kRows + 5, kRows); }, kOk, ""},
      {"SearchTopkUint32Max", [](E& e) { return SearchExpecting(e, UINT32_MAX, kRows); }, kOk, ""},
      {"SearchTopkUint32MaxThroughGraph",
       [](E& e) {
         // adaptive_threshold is 0: after the freeze every segment is searched through its graph.
         EXPECT_EQ(Code(pomai_freeze(e.db)), kOk);
         return SearchExpecting(e, UINT32_MAX, kRows);
       },
       kOk, ""},
      {"SearchEfSearchUint32Max",
       [](E& e) {
         EXPECT_EQ(Code(pomai_freeze(e.db)), kOk);
         return SearchExpecting(e, 3, 3, [](pomai_query_t& q) { q.ef_search = UINT32_MAX; });
       },
       kOk, ""},

      // ---- search_batch
      {"SearchBatchNullDb", [](E& e) { return SearchBatch(nullptr, &e.query, 1); }, kInvalid, "db is NULL"},
      {"SearchBatchNullQueries", [](E& e) { return SearchBatch(e.db, nullptr, 2); }, kInvalid,
       "queries is NULL but n is 2"},
      {"SearchBatchNullOut", [](E& e) { return pomai_search_batch(e.db, &e.query, 1, nullptr); }, kInvalid,
       "out_results is NULL"},
      {"SearchBatchEmptyNullQueries", [](E& e) { return SearchBatchOfNone(e.db, nullptr); }, kOk, ""},
      {"SearchBatchEmptyNonNullQueries", [](E& e) { return SearchBatchOfNone(e.db, &e.query); }, kOk, ""},
      {"SearchBatchHugeN", [](E& e) { return SearchBatch(e.db, &e.query, SIZE_MAX); }, kInvalid,
       "n is 18446744073709551615"},
      {"SearchBatchSecondQueryWrongDim", [](E& e) { return SearchBatchWith(e, [](pomai_query_t& q) { q.dim = 3; }); },
       kInvalid, "queries[1].dim is 3"},
      {"SearchBatchSecondQueryNullVector",
       [](E& e) { return SearchBatchWith(e, [](pomai_query_t& q) { q.vector = nullptr; }); }, kInvalid,
       "queries[1].vector is NULL"},
      {"SearchBatchTopkZeroAboveRowsAndUint32Max",
       [](E& e) {
         pomai_query_t qs[3] = {e.Query(e.a, 0), e.Query(e.a, kRows + 1), e.Query(e.a, UINT32_MAX)};
         pomai_search_results_t* r = nullptr;
         pomai_status_t* s = pomai_search_batch(e.db, qs, 3, &r);
         if (r != nullptr) {
           EXPECT_EQ(r[0].count, 0u);
           EXPECT_EQ(r[1].count, kRows);
           EXPECT_EQ(r[2].count, kRows);
         }
         pomai_search_batch_free(r, 3);
         return s;
       },
       kOk, ""},

      // ---- search_array
      {"SearchArrayNullDb", [](E& e) { return SearchArray(nullptr, e.a, 1, kDim, 1); },
       kInvalid, "db is NULL"},
      {"SearchArrayNullQueries", [](E& e) { return SearchArray(e.db, nullptr, 1, kDim, 1); },
       kInvalid, "queries is NULL but n is 1"},
      {"SearchArrayNullOutIds", [](E& e) { return SearchArray(e.db, e.a, 1, kDim, 1, kNoIds); },
       kInvalid, "out_ids is NULL"},
      {"SearchArrayNullOutScores", [](E& e) { return SearchArray(e.db, e.a, 1, kDim, 1, kNoScores); },
       kInvalid, "out_scores is NULL"},
      {"SearchArrayNullOutCounts", [](E& e) { return SearchArray(e.db, e.a, 1, kDim, 1, kNoCounts); },
       kInvalid, "out_counts is NULL"},
      {"SearchArrayWrongDim", [](E& e) { return SearchArray(e.db, e.a, 1, 3, 1); },
       kInvalid, "dim is 3 but the database's dim is 4"},
      {"SearchArrayEmptyNullPointers",
       [](E& e) { return pomai_search_array(e.db, nullptr, 0, kDim, 1, 0, nullptr, nullptr, nullptr); }, kOk, ""},
      {"SearchArrayEmptyNonNullPointers", [](E& e) { return SearchArray(e.db, e.a, 0, kDim, 1); },
       kOk, ""},
      {"SearchArrayNTimesTopkOverflows", [](E& e) { return SearchArray(e.db, e.a, SIZE_MAX / 2, kDim, 4); },
       kInvalid, "n * topk overflows (n 9223372036854775807, topk 4)"},
      {"SearchArrayN2Pow63TopkUint32Max",
       [](E& e) { return SearchArray(e.db, e.a, size_t{1} << 63, kDim, UINT32_MAX); },
       kInvalid, "n * topk overflows (n 9223372036854775808, topk 4294967295)"},
      {"SearchArrayHugeNTopkZero",
       [](E& e) {
         uint32_t count;
         return pomai_search_array(e.db, e.a, SIZE_MAX, kDim, 0, 0, nullptr, nullptr, &count);
       },
       kInvalid, "n is 18446744073709551615"},
      {"SearchArrayTopkZero", [](E& e) { return SearchArrayExpecting(e, 0, 0); }, kOk, ""},
      {"SearchArrayTopkAboveRows", [](E& e) { return SearchArrayExpecting(e, kRows + 3, kRows); }, kOk, ""},

      // ---- garbage handles (never issued, or malformed tokens)
      {"CloseGarbageHandle", [](E&) { return pomai_close(Garbage<pomai_db_t>(0x7fff00000000ull)); }, kInvalid,
       "db is not a handle returned by pomai_open"},
      {"CloseNullIsNoOp", [](E&) { return pomai_close(nullptr); }, kOk, ""},
      {"CloseTwiceIsNoOp",
       [](E& e) {
         pomai_db_t* db = e.Close();
         return pomai_close(db);
       },
       kOk, ""},
  };
  c.insert(c.end(), more.begin(), more.end());
  // Every function on a closed handle answers CLOSED; on a garbage handle INVALID_ARGUMENT.
  for (auto& [fname, fn] : U64DbCalls()) {
    c.push_back({"Closed" + fname, [fn = fn](E& e) { return fn(e.Close()); }, kClosed, "database is closed"});
    std::string expected = "db is not a handle returned by pomai_open";
    if (fname == "DbFlush" || fname == "TxnBegin") expected = "db is not a handle returned by pomai_db_open_ex";
    if (fname == "Verify") expected += " or pomai_db_open_ex";
    c.push_back({"GarbageSlotZero" + fname, [fn = fn](E&) { return fn(Garbage<pomai_db_t>(kSlotZero)); },
                 kInvalid, expected});
    c.push_back({"GarbageHugeSlot" + fname, [fn = fn](E&) { return fn(Garbage<pomai_db_t>(kHugeSlot)); },
                 kInvalid, expected});
    c.push_back({"GarbageNeverIssued" + fname, [fn = fn](E&) { return fn(Garbage<pomai_db_t>(kNeverIssued)); },
                 kInvalid, expected});
  }
  return c;
}

class U64 : public ::testing::TestWithParam<IdCase> {
 protected:
  void SetUp() override {
    pomai_options_init(&env_.opts);
    env_.opts.path = env_.dir.path().c_str();
    env_.opts.dim = kDim;
    env_.opts.shards = 2;
    env_.opts.metric = POMAI_METRIC_IP;
    env_.opts.adaptive_threshold = 0;  // frozen segments are searched through their graphs
    env_.opts.hnsw_m = 8;
    env_.opts.hnsw_ef_construction = 20;
    env_.opts.search_threads = 1;
    ASSERT_EQ(Code(pomai_open(&env_.opts, &env_.db)), kOk);
    std::vector<uint64_t> ids(kRows);
    std::vector<float> vecs(kRows * kDim);
    for (size_t i = 0; i < kRows; ++i) ids[i] = i;
    for (size_t i = 0; i < vecs.size(); ++i) vecs[i] = std::sin(float(i) * 0.7f);
    ASSERT_EQ(Code(pomai_put_array(env_.db, ids.data(), vecs.data(), kRows, kDim)), kOk);
  }
  void TearDown() override {
    if (!env_.closed) pomai_status_free(pomai_close(env_.db));
  }

  IdEnv env_;
};

TEST_P(U64, GivesTheDocumentedStatusAndChangesNothing) {
  const IdCase& c = GetParam();
  ExpectStatus(c, c.call(env_));
  if (env_.closed) return;
  // Nothing half-applied: the rows are still exactly ids 0..9.
  uint64_t count = 0;
  ASSERT_EQ(Code(pomai_count(env_.db, &count)), kOk);
  EXPECT_EQ(count, kRows);
  for (uint64_t id : {uint64_t{100}, uint64_t{101}}) {
    bool exists = true;
    ASSERT_EQ(Code(pomai_exists(env_.db, id, &exists)), kOk);
    EXPECT_FALSE(exists) << "id " << id << " was stored by a rejected call";
  }
}

INSTANTIATE_TEST_SUITE_P(BadInput, U64, ::testing::ValuesIn(IdCases()), CaseName<IdEnv>);

// ---- u64-id tests that need more than one call

class U64Db : public pomai::testing::U64DbTest {
 protected:
  std::vector<float> Stored(uint64_t id, std::string* meta = nullptr) {
    pomai_record_t* rec = nullptr;
    EXPECT_EQ(Code(pomai_get(db_, id, &rec)), kOk);
    if (rec == nullptr) return {};
    std::vector<float> v(rec->vector, rec->vector + rec->dim);
    if (meta != nullptr) meta->assign(reinterpret_cast<const char*>(rec->metadata), rec->metadata_len);
    pomai_record_free(rec);
    return v;
  }
  uint64_t Count() {
    uint64_t n = 0;
    EXPECT_EQ(Code(pomai_count(db_, &n)), kOk);
    return n;
  }
};

TEST_F(U64Db, DuplicateIdsInPutBatchLastOneWinsAcrossAFreeze) {
  float v1[4] = {1, 0, 0, 0}, v2[4] = {0, 2, 0, 0}, v3[4] = {0, 0, 3, 0}, other[4] = {4, 4, 4, 4};
  pomai_upsert_t items[4] = {Upsert(7, v1), Upsert(8, other), Upsert(7, v2), Upsert(7, v3)};
  items[0].metadata = B("first");
  items[0].metadata_len = 5;
  items[3].metadata = B("last");
  items[3].metadata_len = 4;
  ASSERT_EQ(Code(pomai_put_batch(db_, items, 4)), kOk);
  std::string meta;
  EXPECT_EQ(Stored(7, &meta), std::vector<float>(v3, v3 + 4));
  EXPECT_EQ(meta, "last");
  EXPECT_EQ(Count(), 2u);
  ASSERT_EQ(Code(pomai_freeze(db_)), kOk);
  EXPECT_EQ(Stored(7, &meta), std::vector<float>(v3, v3 + 4));
  EXPECT_EQ(meta, "last");
  EXPECT_EQ(Count(), 2u);
  // Over a frozen row: a batch whose duplicates end with v1 (no metadata).
  pomai_upsert_t again[2] = {Upsert(7, v2), Upsert(7, v1)};
  ASSERT_EQ(Code(pomai_put_batch(db_, again, 2)), kOk);
  EXPECT_EQ(Stored(7, &meta), std::vector<float>(v1, v1 + 4));
  EXPECT_EQ(meta, "");
  ASSERT_EQ(Code(pomai_freeze(db_)), kOk);
  Reopen();
  EXPECT_EQ(Stored(7, &meta), std::vector<float>(v1, v1 + 4));
  EXPECT_EQ(Count(), 2u);
  // A search sees one row for id 7, with the last vector's score.
  pomai_query_t q = Query(v1, 10);
  pomai_search_results_t* r = nullptr;
  ASSERT_EQ(Code(pomai_search(db_, &q, &r)), kOk);
  ASSERT_EQ(r->count, 2u);
  size_t sevens = 0;
  for (size_t i = 0; i < r->count; ++i) {
    if (r->ids[i] != 7) continue;
    ++sevens;
    EXPECT_FLOAT_EQ(r->scores[i], 1.0f);  // v1 . v1
  }
  EXPECT_EQ(sevens, 1u);
  pomai_search_results_free(r);
}

TEST_F(U64Db, DuplicateIdsInPutArrayLastOneWinsAcrossAFreeze) {
  const float rows[4 * 4] = {1, 0, 0, 0, 9, 9, 9, 9, 0, 2, 0, 0, 0, 0, 3, 0};
  const uint64_t ids[4] = {7, 8, 7, 7};
  ASSERT_EQ(Code(pomai_put_array(db_, ids, rows, 4, kDim)), kOk);
  EXPECT_EQ(Stored(7), std::vector<float>(rows + 12, rows + 16));
  EXPECT_EQ(Count(), 2u);
  ASSERT_EQ(Code(pomai_freeze(db_)), kOk);
  EXPECT_EQ(Stored(7), std::vector<float>(rows + 12, rows + 16));
  const uint64_t again[2] = {7, 7};
  ASSERT_EQ(Code(pomai_put_array(db_, again, rows + 8, 2, kDim)), kOk);  // ends with {0, 0, 3, 0}... then {0, 0, 3, 0}
  ASSERT_EQ(Code(pomai_put_array(db_, again, rows, 2, kDim)), kOk);      // {1,0,0,0} then {9,9,9,9}: the last wins
  EXPECT_EQ(Stored(7), std::vector<float>(rows + 4, rows + 8));
  ASSERT_EQ(Code(pomai_freeze(db_)), kOk);
  Reopen();
  EXPECT_EQ(Stored(7), std::vector<float>(rows + 4, rows + 8));
  EXPECT_EQ(Count(), 2u);
}

TEST_F(U64Db, DuplicateIdsInDeleteBatchDeleteOnce) {
  float a[4] = {1, 2, 3, 4};
  for (uint64_t id = 0; id < 3; ++id) {
    pomai_upsert_t u = Upsert(id, a);
    ASSERT_EQ(Code(pomai_put(db_, &u)), kOk);
  }
  const uint64_t ids[3] = {1, 1, 1};
  ASSERT_EQ(Code(pomai_delete_batch(db_, ids, 3)), kOk);
  EXPECT_EQ(Count(), 2u);
}

// A handle closed and its slot reused by a new open stays closed. (Calls on a
// closed or garbage handle, and a second close: BadInput/U64.Closed*,
// Garbage*, CloseTwiceIsNoOp.)
TEST_F(U64Db, AClosedHandleStaysClosedWhenItsSlotIsReused) {
  ASSERT_EQ(Code(pomai_close(db_)), 0);
  TempDir other;
  opts_.path = other.path().c_str();
  pomai_db_t* second = nullptr;
  ASSERT_EQ(Code(pomai_open(&opts_, &second)), 0);
  EXPECT_NE(db_, second);
  uint64_t n;
  EXPECT_EQ(Code(pomai_count(db_, &n)), POMAI_STATUS_CLOSED);
  EXPECT_EQ(Code(pomai_close(db_)), 0);
  EXPECT_EQ(Code(pomai_count(second, &n)), 0) << "closing a stale handle must not close its slot's new database";
  pomai_status_free(pomai_close(second));
}

// Three threads call `search(kind, i)` (kind 0, 1 and 2) in a loop while
// another thread closes `db` after a pause that varies with `iter`: every
// call answers OK or CLOSED, never crashes, none is OK once the close has
// returned, and the close waits until every searcher has seen CLOSED.
template <typename Search>
void CloseRacingSearches(int iter, pomai_db_t* db, Search search) {
  std::atomic<int> started{0};
  std::atomic<bool> closed{false};
  std::atomic<int> bad{0}, closed_seen{0}, ok_after_close{0};
  auto searcher = [&](int kind) {
    started.fetch_add(1);
    for (int i = 0; i < 100000; ++i) {
      const bool was_closed = closed.load();
      const int code = Code(search(kind, i));
      if (code != kOk && code != kClosed) bad.fetch_add(1);
      if (code == kOk && was_closed) ok_after_close.fetch_add(1);
      if (code == kClosed) {
        closed_seen.fetch_add(1);
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int k = 0; k < 3; ++k) threads.emplace_back(searcher, k);
  while (started.load() < 3) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::microseconds(200 * (iter % 5)));
  std::thread closer([&] {
    EXPECT_EQ(Code(pomai_close(db)), kOk);
    closed.store(true);
  });
  closer.join();
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0) << "iteration " << iter;
  EXPECT_EQ(ok_after_close.load(), 0) << "iteration " << iter;
  EXPECT_EQ(closed_seen.load(), 3) << "iteration " << iter << ": the close waited until the searches stopped";
}

// The u64-id searches racing a close.
TEST(U64Race, CloseRacingSearchesGivesOkOrClosedNeverACrash) {
  constexpr int kIterations = 40;
  for (int iter = 0; iter < kIterations; ++iter) {
    TempDir dir;
    pomai_options_t o;
    pomai_options_init(&o);
    o.path = dir.path().c_str();
    o.dim = kDim;
    o.shards = 2;
    o.search_threads = 2;
    o.adaptive_threshold = 50;
    o.hnsw_m = 8;
    o.hnsw_ef_construction = 20;
    pomai_db_t* db = nullptr;
    ASSERT_EQ(Code(pomai_open(&o, &db)), kOk);
    std::vector<uint64_t> ids(200);
    std::vector<float> vecs(ids.size() * kDim);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = i;
    for (size_t i = 0; i < vecs.size(); ++i) vecs[i] = std::cos(float(i) * 0.3f);
    ASSERT_EQ(Code(pomai_put_array(db, ids.data(), vecs.data(), 100, kDim)), kOk);
    if (iter % 2 == 0) {
      ASSERT_EQ(Code(pomai_freeze(db)), kOk);  // half the runs also walk a graph
    }
    ASSERT_EQ(Code(pomai_put_array(db, ids.data() + 100, vecs.data() + 100 * kDim, 100, kDim)), kOk);

    CloseRacingSearches(iter, db, [&](int kind, int i) -> pomai_status_t* {
      if (kind == 0) {
        const pomai_query_t q = MakeQuery(vecs.data() + (i % 200) * kDim, kDim, 5);
        return Search(db, &q);
      }
      if (kind == 1) {
        uint64_t out_ids[10];
        float scores[10];
        uint32_t counts[2];
        return pomai_search_array(db, vecs.data(), 2, kDim, 5, 0, out_ids, scores, counts);
      }
      const pomai_query_t q = MakeQuery(vecs.data() + (i % 100) * kDim, kDim, 3);
      const pomai_query_t qs[2] = {q, q};
      return SearchBatch(db, qs, 2);
    });
    EXPECT_EQ(Code(pomai_close(db)), kOk);  // double close after the race
  }
}

// ===========================================================================
// The keyspace face (kv.h)

// A keyspace database (in memory, or on disk in `dir`) holding "v" (an L2 vector {1, 2} with
// metadata "meta"), "b" (bytes "bytes") and the index "idx" (dim 2, L2) with
// entries "a" and "b"; plus an active read-write and an active read-only
// transaction.
struct KeyspaceEnv {
  TempDir dir{TempDir::OnTmpfs()};  // ~200 disk databases: tmpfs keeps their syncs cheap
  pomai_db_options_ex_t opts;
  pomai_db_t* db = nullptr;
  pomai_txn_t* rw = nullptr;
  pomai_txn_t* ro = nullptr;
  bool db_closed = false;
  bool rw_ended = false;
  float v[2] = {1, 2};
  float q[2] = {1, 0};

  pomai_txn_t* Begin(uint32_t mode) {
    pomai_txn_t* t = nullptr;
    EXPECT_EQ(Code(pomai_txn_begin(db, mode, &t)), kOk);
    return t;
  }
  pomai_txn_t* Committed() {
    pomai_txn_t* t = Begin(POMAI_TXN_READ_WRITE);
    EXPECT_EQ(Code(pomai_txn_put(t, B("c"), 1, B("1"), 1)), kOk);
    EXPECT_EQ(Code(pomai_txn_delete(t, B("c"), 1)), kOk);  // leaves the data as it was
    EXPECT_EQ(Code(pomai_txn_commit(t)), kOk);
    return t;
  }
  pomai_txn_t* RolledBack() {
    pomai_txn_t* t = Begin(POMAI_TXN_READ_WRITE);
    EXPECT_EQ(Code(pomai_txn_put(t, B("k"), 1, B("1"), 1)), kOk);
    EXPECT_EQ(Code(pomai_txn_rollback(t)), kOk);
    return t;
  }
  // Closes the database; its transactions are rolled back and give CLOSED.
  pomai_db_t* CloseDb() {
    if (!db_closed) {
      EXPECT_EQ(Code(pomai_close(db)), kOk);
    }
    db_closed = true;
    return db;
  }
  pomai_txn_t* RwOfClosedDb() {
    CloseDb();
    return rw;
  }
};

using KeyspaceCase = Case<KeyspaceEnv>;

// pomai_db_open_ex of the fixture's options changed by `change`; a database it opens is closed.
template <typename Change>
pomai_status_t* OpenExWith(KeyspaceEnv& e, Change change) {
  change(e.opts);
  pomai_db_t* db = Garbage<pomai_db_t>(1);
  pomai_status_t* s = pomai_db_open_ex(&e.opts, &db);
  return Settled(s, db, Close);
}

// The index configuration of "idx": dim 2, m 16, ef_construction 200, L2.
pomai_hnsw_config_t L2Config() { return {sizeof(pomai_hnsw_config_t), 2, 16, 200, POMAI_METRIC_L2}; }

// Runs a flat search (filtered to the keys of an empty filter when `filter`) and expects `want` hits.
pomai_status_t* SimilarExpecting(KeyspaceEnv& e, uint32_t k, size_t want, bool filter = false,
                                 const uint8_t* const* keys = nullptr, const size_t* lens = nullptr) {
  pomai_kv_hits_t* hits = nullptr;
  pomai_status_t* s = pomai_txn_search_similar(e.rw, e.q, 2, POMAI_METRIC_L2, k, filter, keys, lens, 0, false, &hits);
  if (s != nullptr) return s;
  EXPECT_EQ(hits->count, want);
  pomai_kv_hits_free(hits);
  return nullptr;
}

// Runs an index search and expects `want` hits.
pomai_status_t* IndexSearchExpecting(KeyspaceEnv& e, uint32_t k, uint32_t ef, size_t want) {
  pomai_kv_hits_t* hits = nullptr;
  pomai_status_t* s = pomai_index_search(e.db, "idx", e.q, 2, k, ef, &hits, nullptr);
  if (s != nullptr) return s;
  EXPECT_EQ(hits->count, want);
  pomai_kv_hits_free(hits);
  return nullptr;
}

std::vector<KeyspaceCase> KeyspaceCases() {
  using E = KeyspaceEnv;
  const std::string long_key(65536, 'k');
  std::vector<KeyspaceCase> c = {
      // ---- open
      {"OpenNullOpts",
       [](E&) {
         pomai_db_t* db = Garbage<pomai_db_t>(1);
         pomai_status_t* s = pomai_db_open_ex(nullptr, &db);
         return Settled(s, db, Close);
       },
       kInvalid, "opts is NULL"},
      {"OpenNullOutDb", [](E& e) { return pomai_db_open_ex(&e.opts, nullptr); }, kInvalid, "out_db is NULL"},
      {"OpenDiskNullPath",
       [](E& e) {
         return OpenExWith(e, [](pomai_db_options_ex_t& o) {
           o.storage_mode = POMAI_STORAGE_DISK;
           o.path = nullptr;
         });
       },
       kInvalid, "opts->path is NULL or empty"},
      {"OpenBadStorageMode", [](E& e) { return OpenExWith(e, [](pomai_db_options_ex_t& o) { o.storage_mode = 7; }); },
       kInvalid, "opts->storage_mode is 7"},
      {"OpenStructSizeTooSmall",
       [](E& e) { return OpenExWith(e, [](pomai_db_options_ex_t& o) { o.struct_size = 12; }); }, kInvalid,
       "opts->struct_size is too small (12 < 20)"},

      // ---- database functions
      {"FlushNullDb", [](E&) { return pomai_db_flush(nullptr); }, kInvalid, "db is NULL"},
      {"FlushInMemory", [](E& e) { return pomai_db_flush(e.db); }, kInvalid, "in-memory database cannot be flushed"},
      {"MemoryUsageNullDb", [](E&) { pomai_memory_stats_t m; return pomai_db_memory_usage(nullptr, &m); }, kInvalid,
       "db is NULL"},
      {"MemoryUsageNullOut", [](E& e) { return pomai_db_memory_usage(e.db, nullptr); }, kInvalid, "out is NULL"},
      {"TxnBeginNullDb", [](E&) { return TxnBegin(nullptr, POMAI_TXN_READ_WRITE); }, kInvalid, "db is NULL"},
      {"TxnBeginNullOut", [](E& e) { return pomai_txn_begin(e.db, 1, nullptr); }, kInvalid, "out_txn is NULL"},
      {"TxnBeginBadMode", [](E& e) { return TxnBegin(e.db, 5); }, kInvalid, "mode is 5"},

      // ---- txn_get
      {"GetNullKeyZeroLength",
       [](E& e) { size_t len; bool f; return pomai_txn_get(e.rw, nullptr, 0, nullptr, 0, &len, &f); }, kInvalid,
       "key is NULL"},
      {"GetKeyTooLong",
       [long_key](E& e) {
         size_t len;
         bool f;
         return pomai_txn_get(e.rw, B(long_key.c_str()), long_key.size(), nullptr, 0, &len, &f);
       },
       kInvalid, "key is 65536 bytes (keys are 1 to 65535 bytes)"},
      {"GetNullOutLen", [](E& e) { bool f; return pomai_txn_get(e.rw, B("k"), 1, nullptr, 0, nullptr, &f); }, kInvalid,
       "out_len is NULL"},
      {"GetNullOutFound", [](E& e) { size_t len; return pomai_txn_get(e.rw, B("k"), 1, nullptr, 0, &len, nullptr); },
       kInvalid, "out_found is NULL"},
      {"GetNullBufferWithCapacity",
       [](E& e) { size_t len; bool f; return pomai_txn_get(e.rw, B("k"), 1, nullptr, 5, &len, &f); }, kInvalid,
       "value_buf is NULL but buf_cap is 5"},

      // ---- txn_put / txn_delete
      {"PutNullKeyZeroLength", [](E& e) { return pomai_txn_put(e.rw, nullptr, 0, B("v"), 1); }, kInvalid,
       "key is NULL"},
      {"PutKeyTooLong",
       [long_key](E& e) { return pomai_txn_put(e.rw, B(long_key.c_str()), long_key.size(), B("v"), 1); }, kInvalid,
       "key is 65536 bytes"},
      {"PutNullValueWithLength", [](E& e) { return pomai_txn_put(e.rw, B("k"), 1, nullptr, 3); }, kInvalid,
       "value is NULL but its length is 3"},
      {"PutValueLengthSizeMax", [](E& e) { return pomai_txn_put(e.rw, B("k"), 1, B("v"), SIZE_MAX); }, kInvalid,
       "value is 18446744073709551615 bytes (at most 1 GiB)"},
      {"PutKeyLengthSizeMax", [](E& e) { return pomai_txn_put(e.rw, B("k"), SIZE_MAX, B("v"), 1); }, kInvalid,
       "key is 18446744073709551615 bytes"},
      {"CommitNullTxn", [](E&) { return pomai_txn_commit(nullptr); }, kInvalid, "txn is NULL"},
      {"RollbackNullTxn", [](E&) { return pomai_txn_rollback(nullptr); }, kInvalid, "txn is NULL"},

      // ---- txn_upsert_vector / txn_get_vector
      {"UpsertVectorNullVector",
       [](E& e) { return pomai_txn_upsert_vector(e.rw, B("k"), 1, false, nullptr, 0, nullptr, 2, 0); }, kInvalid,
       "vector is NULL"},
      {"UpsertVectorNullMetadataWithLength",
       [](E& e) { return pomai_txn_upsert_vector(e.rw, B("k"), 1, true, nullptr, 4, e.v, 2, 0); }, kInvalid,
       "metadata is NULL but its length is 4"},
      {"UpsertVectorMetadataLengthSizeMax",
       [](E& e) { return pomai_txn_upsert_vector(e.rw, B("k"), 1, true, B("m"), SIZE_MAX, e.v, 2, 0); }, kInvalid,
       "metadata is 18446744073709551615 bytes (at most 1 GiB)"},
      {"UpsertVectorBadMetric",
       [](E& e) { return pomai_txn_upsert_vector(e.rw, B("k"), 1, false, nullptr, 0, e.v, 2, 3); }, kInvalid,
       "metric is 3"},
      {"UpsertVectorDimZero",
       [](E& e) { return pomai_txn_upsert_vector(e.rw, B("k"), 1, false, nullptr, 0, e.v, 0, 0); }, kInvalid,
       "vector dimension 0 is not in 1..65535"},
      {"UpsertVectorDimTooLarge",
       [](E& e) { return pomai_txn_upsert_vector(e.rw, B("k"), 1, false, nullptr, 0, e.v, 65536, 0); }, kInvalid,
       "vector dimension 65536 is not in 1..65535"},
      {"GetVectorNullOutDim", [](E& e) { float b[2]; return pomai_txn_get_vector(e.rw, B("v"), 1, 0, b, 2, nullptr); },
       kInvalid, "out_dim is NULL"},
      {"GetVectorNullBufferWithCapacity",
       [](E& e) { uint32_t d; return pomai_txn_get_vector(e.rw, B("v"), 1, 0, nullptr, 2, &d); }, kInvalid,
       "buf is NULL but buf_cap is 2"},
      {"GetVectorBadMetric", [](E& e) { float b[2]; uint32_t d; return pomai_txn_get_vector(e.rw, B("v"), 1, 9, b, 2, &d); },
       kInvalid, "metric is 9"},
      {"GetVectorOtherMetric",
       [](E& e) { float b[2]; uint32_t d; return pomai_txn_get_vector(e.rw, B("v"), 1, POMAI_METRIC_IP, b, 2, &d); },
       kInvalid, "key 'v' holds a vector stored with metric L2, not INNER_PRODUCT"},

      // ---- txn_search_similar
      {"SimilarNullTxn", [](E& e) { return Similar(nullptr, e.q, 2, 0); }, kInvalid, "txn is NULL"},
      {"SimilarNullQuery", [](E& e) { return Similar(e.rw, nullptr, 2); }, kInvalid, "query is NULL"},
      {"SimilarNullOutHits",
       [](E& e) { return pomai_txn_search_similar(e.rw, e.q, 2, 0, 1, false, nullptr, nullptr, 0, false, nullptr); },
       kInvalid, "out_hits is NULL"},
      {"SimilarNullFilterKeys",
       [](E& e) {
         size_t lens[3] = {1, 1, 1};
         return Similar(e.rw, e.q, 2, 0, true, nullptr, lens, 3);
       },
       kInvalid, "filter_keys is NULL but filter_count is 3"},
      {"SimilarNullFilterKeyLens",
       [](E& e) {
         const uint8_t* keys[1] = {B("v")};
         return Similar(e.rw, e.q, 2, 0, true, keys, nullptr, 1);
       },
       kInvalid, "filter_key_lens is NULL but filter_count is 1"},
      {"SimilarNullFilterKey",
       [](E& e) {
         const uint8_t* keys[1] = {nullptr};
         size_t lens[1] = {1};
         return Similar(e.rw, e.q, 2, 0, true, keys, lens, 1);
       },
       kInvalid, "filter_keys[0] is NULL"},
      {"SimilarEmptyFilterKey",
       [](E& e) {
         const uint8_t* keys[2] = {B("v"), B("x")};
         size_t lens[2] = {1, 0};
         return Similar(e.rw, e.q, 2, 0, true, keys, lens, 2);
       },
       kInvalid, "filter key is empty"},
      {"SimilarEmptyFilterNullPointers", [](E& e) { return SimilarExpecting(e, 5, 0, true); }, kOk, ""},
      {"SimilarEmptyFilterNonNullPointers",
       [](E& e) {
         const uint8_t* keys[1] = {B("v")};
         size_t lens[1] = {1};
         return SimilarExpecting(e, 5, 0, true, keys, lens);
       },
       kOk, ""},
      {"SimilarBadMetric", [](E& e) { return Similar(e.rw, e.q, 2, 3); }, kInvalid, "metric is 3"},
      {"SimilarDimZero", [](E& e) { return Similar(e.rw, e.q, 0, 0); }, kInvalid,
       "query dimension 0 is not in 1..65535"},
      {"SimilarWrongDim",
       [](E& e) {
         float q3[3] = {1, 2, 3};
         return Similar(e.rw, q3, 3);
       },
       kInvalid, "key 'v' holds a vector of metric"},
      {"SimilarKZero", [](E& e) { return SimilarExpecting(e, 0, 0); }, kOk, ""},
      {"SimilarKAboveRows", [](E& e) { return SimilarExpecting(e, 5, 1); }, kOk, ""},
      {"SimilarKUint32Max", [](E& e) { return SimilarExpecting(e, UINT32_MAX, 1); }, kOk, ""},

      // ---- named indexes
      {"IndexCreateNullDb", [](E&) { auto c = L2Config(); return pomai_index_create(nullptr, "i", &c); }, kInvalid,
       "db is NULL"},
      {"IndexCreateNullName", [](E& e) { auto c = L2Config(); return pomai_index_create(e.db, nullptr, &c); },
       kInvalid, "name is NULL"},
      {"IndexCreateEmptyName", [](E& e) { auto c = L2Config(); return pomai_index_create(e.db, "", &c); }, kInvalid,
       "index name '' is 0 bytes"},
      {"IndexCreateNameTooLong",
       [](E& e) {
         auto c = L2Config();
         const std::string name(256, 'n');
         return pomai_index_create(e.db, name.c_str(), &c);
       },
       kInvalid, "is 256 bytes (index names are 1 to 255 bytes)"},
      {"IndexCreateNullConfig", [](E& e) { return pomai_index_create(e.db, "i", nullptr); }, kInvalid,
       "config is NULL"},
      {"IndexCreateConfigStructSizeTooSmall",
       [](E& e) {
         pomai_hnsw_config_t c = {4, 2, 16, 200, POMAI_METRIC_L2};
         return pomai_index_create(e.db, "i", &c);
       },
       kInvalid, "config->struct_size is too small (4 < 8)"},
  };
  // Bad index configs: each field out of its range.
  struct BadConfig {
    const char* name;
    pomai_hnsw_config_t config;
    const char* message;
  };
  for (const BadConfig& b : {
           BadConfig{"DimZero", {sizeof(pomai_hnsw_config_t), 0, 16, 200, 0}, "invalid parameter dimension: must be between 1 and 65535 (got 0)"},
           BadConfig{"DimTooLarge", {sizeof(pomai_hnsw_config_t), 65536, 16, 200, 0}, "invalid parameter dimension: must be between 1 and 65535 (got 65536)"},
           BadConfig{"MOne", {sizeof(pomai_hnsw_config_t), 2, 1, 200, 0}, "invalid parameter m: must be between 2 and 100 (got 1)"},
           BadConfig{"MTooLarge", {sizeof(pomai_hnsw_config_t), 2, 101, 200, 0}, "invalid parameter m: must be between 2 and 100 (got 101)"},
           BadConfig{"EfConstructionBelowM", {sizeof(pomai_hnsw_config_t), 2, 16, 15, 0}, "invalid parameter ef_construction: must be greater than or equal to m (m=16, ef_construction=15)"},
           BadConfig{"BadMetric", {sizeof(pomai_hnsw_config_t), 2, 16, 200, 3}, "invalid parameter metric: 3"},
           BadConfig{"HugeMetric", {sizeof(pomai_hnsw_config_t), 2, 16, 200, UINT32_MAX}, "invalid parameter metric: 4294967295"},
       }) {
    c.push_back({std::string("IndexCreate") + b.name,
                 [b](E& e) {
                   pomai_status_t* s = pomai_index_create(e.db, "i", &b.config);
                   pomai_hnsw_stats_t st;
                   EXPECT_EQ(Code(pomai_index_stats(e.db, "i", &st)), kNotFound) << "a rejected config created the index";
                   return s;
                 },
                 kInvalid, b.message});
  }
  // NaN and +/-infinity in vectors and queries of the keyspace face.
  struct Bad {
    const char* name;
    float value;
    const char* text;
  };
  for (Bad bad : {Bad{"Nan", kNan, "NaN"}, Bad{"PlusInf", kInf, "infinite"}, Bad{"MinusInf", -kInf, "infinite"}}) {
    c.push_back({std::string("UpsertVector") + bad.name,
                 [bad](E& e) {
                   float v[2] = {1, bad.value};
                   return pomai_txn_upsert_vector(e.rw, B("k"), 1, false, nullptr, 0, v, 2, 0);
                 },
                 kInvalid, std::string("vector[1] is ") + bad.text});
    c.push_back({std::string("Similar") + bad.name,
                 [bad](E& e) {
                   float q[2] = {bad.value, 1};
                   return Similar(e.rw, q, 2);
                 },
                 kInvalid, std::string("query[0] is ") + bad.text});
    c.push_back({std::string("IndexSearch") + bad.name,
                 [bad](E& e) {
                   float q[2] = {1, bad.value};
                   return IndexSearch(e.db, "idx", q, 2);
                 },
                 kInvalid, std::string("query[1] is ") + bad.text});
    c.push_back({std::string("IndexUpsert") + bad.name,
                 [bad](E& e) {
                   float v[2] = {bad.value, 1};
                   return pomai_txn_index_upsert(e.rw, "idx", B("k"), 1, v, 2, false, nullptr, 0);
                 },
                 kInvalid, std::string("vector[0] is ") + bad.text});
  }
  std::vector<KeyspaceCase> more = {
      {"ScanNullTxn", [](E&) { return Scan(nullptr, B("a"), 1, nullptr, 0); }, kInvalid, "txn is NULL"},
      {"ScanNullOut", [](E& e) { return pomai_txn_scan(e.rw, B("a"), 1, nullptr, 0, 1, 0, nullptr); }, kInvalid,
       "out_batch is NULL"},
      {"ScanNullLo", [](E& e) { return Scan(e.rw, nullptr, 1, nullptr, 0); }, kInvalid,
       "lo is NULL but its length is 1"},
      {"ScanNullHi", [](E& e) { return Scan(e.rw, B("a"), 1, nullptr, 2); }, kInvalid,
       "hi is NULL but its length is 2"},
      {"ScanLoAboveHi", [](E& e) { return Scan(e.rw, B("b\xff"), 2, B("b"), 1); }, kInvalid,
       "lo 'b\\xff' is greater than hi 'b'"},
      {"ScanZeroMaxEntries", [](E& e) { return Scan(e.rw, B("a"), 1, nullptr, 0, 0); }, kInvalid,
       "max_entries is 0; a scan batch holds at least 1 entry"},
      {"IndexDropNullDb", [](E&) { return pomai_index_drop(nullptr, "idx"); }, kInvalid, "db is NULL"},
      {"IndexDropNullName", [](E& e) { return pomai_index_drop(e.db, nullptr); }, kInvalid, "name is NULL"},
      {"IndexDropMissing", [](E& e) { return pomai_index_drop(e.db, "missing"); }, kNotFound,
       "index not found: missing"},
      {"IndexStatsNullDb", [](E&) { pomai_hnsw_stats_t st; return pomai_index_stats(nullptr, "idx", &st); }, kInvalid,
       "db is NULL"},
      {"IndexStatsNullName", [](E& e) { pomai_hnsw_stats_t st; return pomai_index_stats(e.db, nullptr, &st); },
       kInvalid, "name is NULL"},
      {"IndexStatsNullOut", [](E& e) { return pomai_index_stats(e.db, "idx", nullptr); }, kInvalid, "out is NULL"},
      {"IndexStatsMissing", [](E& e) { pomai_hnsw_stats_t st; return pomai_index_stats(e.db, "missing", &st); },
       kNotFound, "index not found: missing"},
      {"IndexSearchNullDb", [](E& e) { return IndexSearch(nullptr, "idx", e.q, 2); }, kInvalid, "db is NULL"},
      {"IndexSearchNullName", [](E& e) { return IndexSearch(e.db, nullptr, e.q, 2); }, kInvalid, "name is NULL"},
      {"IndexSearchNullQuery", [](E& e) { return IndexSearch(e.db, "idx", nullptr, 2); }, kInvalid, "query is NULL"},
      {"IndexSearchNullOutHits",
       [](E& e) {
         pomai_hnsw_stats_t st;
         return pomai_index_search(e.db, "idx", e.q, 2, 1, 0, nullptr, &st);
       },
       kInvalid, "out_hits is NULL"},
      {"IndexSearchNullOutStatsIsFine", [](E& e) { return IndexSearchExpecting(e, 1, 0, 1); }, kOk, ""},
      {"IndexSearchWrongDim",
       [](E& e) {
         float q3[3] = {1, 2, 3};
         return IndexSearch(e.db, "idx", q3, 3);
       },
       kInvalid, "dimension mismatch: expected 2, got 3 (index 'idx')"},
      {"IndexSearchMissing", [](E& e) { return IndexSearch(e.db, "missing", e.q, 2); }, kNotFound,
       "index not found: missing"},
      {"IndexSearchKZero", [](E& e) { return IndexSearchExpecting(e, 0, 0, 0); }, kOk, ""},
      {"IndexSearchKAboveRows", [](E& e) { return IndexSearchExpecting(e, 10, 0, 2); }, kOk, ""},
      {"IndexSearchKUint32Max", [](E& e) { return IndexSearchExpecting(e, UINT32_MAX, 0, 2); }, kOk, ""},
      {"IndexSearchEfSearchUint32Max", [](E& e) { return IndexSearchExpecting(e, 1, UINT32_MAX, 1); }, kOk, ""},
      {"IndexUpsertNullName",
       [](E& e) { return pomai_txn_index_upsert(e.rw, nullptr, B("k"), 1, e.v, 2, false, nullptr, 0); }, kInvalid,
       "name is NULL"},
      {"IndexUpsertEmptyName",
       [](E& e) { return pomai_txn_index_upsert(e.rw, "", B("k"), 1, e.v, 2, false, nullptr, 0); }, kInvalid,
       "index name '' is 0 bytes"},
      {"IndexUpsertNullVector",
       [](E& e) { return pomai_txn_index_upsert(e.rw, "idx", B("k"), 1, nullptr, 2, false, nullptr, 0); }, kInvalid,
       "vector is NULL"},
      {"IndexUpsertNullMetadataWithLength",
       [](E& e) { return pomai_txn_index_upsert(e.rw, "idx", B("k"), 1, e.v, 2, true, nullptr, 6); }, kInvalid,
       "metadata is NULL but its length is 6"},
      {"IndexUpsertMetadataLengthSizeMax",
       [](E& e) { return pomai_txn_index_upsert(e.rw, "idx", B("k"), 1, e.v, 2, true, B("m"), SIZE_MAX); }, kInvalid,
       "metadata is 18446744073709551615 bytes (at most 1 GiB)"},
      {"IndexUpsertWrongDim",
       [](E& e) { return pomai_txn_index_upsert(e.rw, "idx", B("k"), 1, e.v, 1, false, nullptr, 0); }, kInvalid,
       "dimension mismatch: expected 2, got 1 (index 'idx')"},
      {"IndexUpsertMissingIndex",
       [](E& e) { return pomai_txn_index_upsert(e.rw, "nope", B("k"), 1, e.v, 2, false, nullptr, 0); }, kNotFound,
       "index not found: nope"},
      {"IndexUpsertAttrsNullColumns",
       [](E& e) { return pomai_txn_index_upsert_attrs(e.rw, "idx", B("k"), 1, e.v, 2, false, nullptr, 0, nullptr, 2); },
       kInvalid, "columns is NULL but column_count is 2"},
      {"IndexUpsertAttrsUnknownType",
       [](E& e) {
         const int64_t v = 1;
         pomai_column_t c = {sizeof(pomai_column_t), 9, "x", nullptr, &v, nullptr, nullptr};
         return pomai_txn_index_upsert_attrs(e.rw, "idx", B("k"), 1, e.v, 2, false, nullptr, 0, &c, 1);
       },
       kInvalid, "columns[0] ('x').type is 9"},
      {"IndexUpsertAttrsNaN",
       [](E& e) {
         const double v = std::nan("");
         pomai_column_t c = {sizeof(pomai_column_t), POMAI_ATTR_FLOAT64, "w", nullptr, &v, nullptr, nullptr};
         return pomai_txn_index_upsert_attrs(e.rw, "idx", B("k"), 1, e.v, 2, false, nullptr, 0, &c, 1);
       },
       kInvalid, "'w'"},
      {"IndexSearchWhereId",
       [](E& e) {
         pomai_kv_hits_t* hits = nullptr;
         return pomai_index_search_where(e.db, "idx", e.q, 2, 1, 0, "id = 1", &hits, nullptr);
       },
       kInvalid, "byte keys"},
      {"IndexSearchWhereBadSyntax",
       [](E& e) {
         pomai_kv_hits_t* hits = nullptr;
         return pomai_index_search_where(e.db, "idx", e.q, 2, 1, 0, "((", &hits, nullptr);
       },
       kInvalid, "filter: at"},
      {"IndexDeleteNullName", [](E& e) { return pomai_txn_index_delete(e.rw, nullptr, B("a"), 1); }, kInvalid,
       "name is NULL"},
      {"IndexDeleteEmptyName", [](E& e) { return pomai_txn_index_delete(e.rw, "", B("a"), 1); }, kInvalid,
       "index name '' is 0 bytes"},

      // ---- documented non-errors
      {"PutNullValueZeroLengthIsEmptyValue",
       [](E& e) {
         pomai_status_t* s = pomai_txn_put(e.rw, B("e"), 1, nullptr, 0);
         EXPECT_EQ(Code(pomai_txn_delete(e.rw, B("e"), 1)), kOk);
         return s;
       },
       kOk, ""},
      {"ReadOnlyCommitSucceedsAndWritesNothing", [](E& e) { return pomai_txn_commit(e.ro); }, kOk, ""},
      {"CloseKeyspaceTwiceIsNoOp",
       [](E& e) {
         pomai_db_t* db = e.CloseDb();
         return pomai_close(db);
       },
       kOk, ""},
  };
  c.insert(c.end(), more.begin(), more.end());
  // Every transaction function on a committed, a rolled-back, a closed
  // Each key function with a NULL transaction, a NULL or empty key, and (a
  // write) on the read-only transaction.
  for (const TxnKeyCall& f : TxnKeyCalls()) {
    c.push_back({f.name + "NullTxn", [f](E&) { return f.call(nullptr, B("k"), 1); }, kInvalid, "txn is NULL"});
    c.push_back({f.name + "NullKey", [f](E& e) { return f.call(e.rw, nullptr, 1); }, kInvalid, "key is NULL"});
    c.push_back({f.name + "EmptyKey", [f](E& e) { return f.call(e.rw, B("k"), 0); }, kInvalid,
                 "key is empty (keys are 1 to 65535 bytes)"});
    if (f.writes) {
      c.push_back({f.name + "ReadOnly", [f](E& e) { return f.call(e.ro, B(f.valid_key), 1); }, kReadOnly,
                   "transaction is read-only"});
    }
  }
  // database's and a garbage transaction.
  for (auto& [fname, fn] : TxnCalls()) {
    c.push_back({"Committed" + fname, [fn = fn](E& e) { return fn(e.Committed()); }, kClosed,
                 "transaction is closed"});
    c.push_back({"RolledBack" + fname, [fn = fn](E& e) { return fn(e.RolledBack()); }, kClosed,
                 "transaction is closed"});
    c.push_back({"DbClosed" + fname, [fn = fn](E& e) { return fn(e.RwOfClosedDb()); }, kClosed,
                 "transaction is closed"});
    c.push_back({"GarbageTxn" + fname, [fn = fn](E&) { return fn(Garbage<pomai_txn_t>(kNeverIssued)); },
                 kInvalid, "txn is not a handle returned by pomai_txn_begin"});
    c.push_back({"GarbageTxnSlotZero" + fname, [fn = fn](E&) { return fn(Garbage<pomai_txn_t>(kSlotZero)); },
                 kInvalid, "txn is not a handle returned by pomai_txn_begin"});
  }
  for (auto& [fname, fn] : KeyspaceDbCalls()) {
    c.push_back({"ClosedDb" + fname, [fn = fn](E& e) { return fn(e.CloseDb()); }, kClosed, "database is closed"});
    c.push_back({"GarbageDb" + fname, [fn = fn](E&) { return fn(Garbage<pomai_db_t>(kNeverIssued)); }, kInvalid,
                 "db is not a handle returned by pomai_db_open_ex"});
    c.push_back({"GarbageDbHugeSlot" + fname, [fn = fn](E&) { return fn(Garbage<pomai_db_t>(kHugeSlot)); },
                 kInvalid, "db is not a handle returned by pomai_db_open_ex"});
  }
  return c;
}

class Keyspace : public ::testing::TestWithParam<KeyspaceCase> {
 protected:
  virtual bool OnDisk() const { return false; }
  void SetUp() override {
    pomai_db_options_ex_init(&env_.opts);
    env_.opts.storage_mode = OnDisk() ? POMAI_STORAGE_DISK : POMAI_STORAGE_IN_MEMORY;
    env_.opts.path = OnDisk() ? env_.dir.path().c_str() : nullptr;
    env_.opts.search_threads = 1;
    ASSERT_EQ(Code(pomai_db_open_ex(&env_.opts, &env_.db)), kOk);
    pomai_hnsw_config_t c = L2Config();
    ASSERT_EQ(Code(pomai_index_create(env_.db, "idx", &c)), kOk);
    pomai_txn_t* t = env_.Begin(POMAI_TXN_READ_WRITE);
    ASSERT_EQ(Code(pomai_txn_upsert_vector(t, B("v"), 1, true, B("meta"), 4, env_.v, 2, POMAI_METRIC_L2)), kOk);
    ASSERT_EQ(Code(pomai_txn_put(t, B("b"), 1, B("bytes"), 5)), kOk);
    float a[2] = {1, 0}, b[2] = {0, 1};
    ASSERT_EQ(Code(pomai_txn_index_upsert(t, "idx", B("a"), 1, a, 2, false, nullptr, 0)), kOk);
    ASSERT_EQ(Code(pomai_txn_index_upsert(t, "idx", B("b"), 1, b, 2, true, B("mb"), 2)), kOk);
    ASSERT_EQ(Code(pomai_txn_commit(t)), kOk);
    env_.rw = env_.Begin(POMAI_TXN_READ_WRITE);
    env_.ro = env_.Begin(POMAI_TXN_READ_ONLY);
  }
  void TearDown() override {
    if (env_.db_closed) return;
    pomai_status_free(pomai_txn_rollback(env_.rw));
    pomai_status_free(pomai_txn_rollback(env_.ro));
    pomai_status_free(pomai_close(env_.db));
  }

  // Nothing half-applied: the committed data is unchanged and `rw`, whose
  // rejected calls leave it active, has no write of "k".
  void ExpectUnchanged() {
    pomai_txn_t* r = env_.Begin(POMAI_TXN_READ_ONLY);
    size_t len = 0;
    bool found = false;
    uint8_t buf[16];
    ASSERT_EQ(Code(pomai_txn_get(r, B("b"), 1, buf, sizeof(buf), &len, &found)), kOk);
    EXPECT_TRUE(found);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(buf), len), "bytes");
    ASSERT_EQ(Code(pomai_txn_get(r, B("k"), 1, nullptr, 0, &len, &found)), kOk);
    EXPECT_FALSE(found) << "a rejected call stored key k";
    float vec[2];
    uint32_t dim = 0;
    ASSERT_EQ(Code(pomai_txn_get_vector(r, B("v"), 1, POMAI_METRIC_L2, vec, 2, &dim)), kOk);
    EXPECT_EQ(dim, 2u);
    EXPECT_EQ(vec[1], 2.0f);
    EXPECT_EQ(Code(pomai_txn_commit(r)), kOk);
    pomai_hnsw_stats_t st;
    ASSERT_EQ(Code(pomai_index_stats(env_.db, "idx", &st)), kOk);
    EXPECT_EQ(st.node_count, 2u);
    // rw is still active and holds no write of "k".
    pomai_status_t* s = pomai_txn_get(env_.rw, B("k"), 1, nullptr, 0, &len, &found);
    if (pomai_status_code(s) != kClosed) {  // a case may have ended rw itself
      EXPECT_EQ(pomai_status_code(s), kOk) << pomai_status_message(s);
      EXPECT_FALSE(found) << "a rejected call wrote key k into the transaction";
    }
    pomai_status_free(s);
  }

  void Run() {
    const KeyspaceCase& c = GetParam();
    ExpectStatus(c, c.call(env_));
    if (!env_.db_closed) ExpectUnchanged();
  }

  KeyspaceEnv env_;
};

// The same rows on a disk database (but the in-memory database's flush).
class KeyspaceOnDisk : public Keyspace {
 protected:
  bool OnDisk() const override { return true; }
};

TEST_P(Keyspace, GivesTheDocumentedStatusAndChangesNothing) { Run(); }
TEST_P(KeyspaceOnDisk, GivesTheDocumentedStatusAndChangesNothing) { Run(); }

std::vector<KeyspaceCase> DiskCases() {
  std::vector<KeyspaceCase> c = KeyspaceCases();
  std::erase_if(c, [](const KeyspaceCase& k) { return k.name == "FlushInMemory"; });
  return c;
}

INSTANTIATE_TEST_SUITE_P(BadInput, Keyspace, ::testing::ValuesIn(KeyspaceCases()), CaseName<KeyspaceEnv>);
INSTANTIATE_TEST_SUITE_P(BadInput, KeyspaceOnDisk, ::testing::ValuesIn(DiskCases()), CaseName<KeyspaceEnv>);

// ---- keyspace tests that need more than one call

class KeyspaceModes : public DbExTest {};

INSTANTIATE_TEST_SUITE_P(Modes, KeyspaceModes, ::testing::Bool(), StorageModeName);

// A transaction handle stays closed when a new transaction reuses its slot.
// (Every call on a committed, rolled-back or never-issued transaction:
// BadInput/Keyspace.Committed*, RolledBack*, GarbageTxn*.)
TEST_P(KeyspaceModes, AClosedTransactionStaysClosedWhenItsSlotIsReused) {
  pomai_txn_t* t = Begin();
  ASSERT_EQ(Code(pomai_txn_put(t, B("k"), 1, B("v"), 1)), 0);
  ASSERT_EQ(Code(pomai_txn_commit(t)), 0);
  pomai_txn_t* r = Begin();
  EXPECT_EQ(Code(pomai_txn_rollback(r)), 0);
  pomai_txn_t* n = Begin();
  size_t len;
  bool found;
  EXPECT_EQ(Code(pomai_txn_get(r, B("k"), 1, nullptr, 0, &len, &found)), POMAI_STATUS_CLOSED);
  EXPECT_EQ(Code(pomai_txn_get(n, B("k"), 1, nullptr, 0, &len, &found)), 0);
  EXPECT_TRUE(found);
  EXPECT_EQ(Code(pomai_txn_rollback(n)), 0);
}

// A rejected call inside a transaction leaves it active and applies nothing:
// a commit after it stores exactly the valid writes.
TEST_P(KeyspaceModes, RejectedCallsInATransactionAreNotHalfApplied) {
  pomai_txn_t* t = Begin();
  float nan_v[2] = {1, NAN};
  ASSERT_EQ(Code(pomai_txn_put(t, B("good"), 4, B("1"), 1)), kOk);
  EXPECT_EQ(Code(pomai_txn_upsert_vector(t, B("bad"), 3, false, nullptr, 0, nan_v, 2, 0)), kInvalid);
  EXPECT_EQ(Code(pomai_txn_put(t, B("bad"), 0, B("1"), 1)), kInvalid);
  EXPECT_EQ(Code(pomai_txn_put(t, B("bad"), 3, nullptr, 1)), kInvalid);
  ASSERT_EQ(Code(pomai_txn_commit(t)), kOk);
  pomai_txn_t* r = Begin(POMAI_TXN_READ_ONLY);
  size_t len;
  bool found = false;
  ASSERT_EQ(Code(pomai_txn_get(r, B("good"), 4, nullptr, 0, &len, &found)), kOk);
  EXPECT_TRUE(found);
  ASSERT_EQ(Code(pomai_txn_get(r, B("bad"), 3, nullptr, 0, &len, &found)), kOk);
  EXPECT_FALSE(found);
  EXPECT_EQ(Code(pomai_txn_commit(r)), kOk);
}

// Threads search (flat, through an index, and through a transaction) while
// another thread closes the database: each call answers OK or CLOSED.
TEST(KeyspaceRace, CloseRacingSearchesGivesOkOrClosedNeverACrash) {
  constexpr int kIterations = 40;
  for (int iter = 0; iter < kIterations; ++iter) {
    pomai_db_options_ex_t o;
    pomai_db_options_ex_init(&o);
    o.storage_mode = POMAI_STORAGE_IN_MEMORY;
    o.search_threads = 2;
    pomai_db_t* db = nullptr;
    ASSERT_EQ(Code(pomai_db_open_ex(&o, &db)), kOk);
    pomai_hnsw_config_t c = {sizeof(c), 4, 8, 20, POMAI_METRIC_L2};
    ASSERT_EQ(Code(pomai_index_create(db, "idx", &c)), kOk);
    pomai_txn_t* w = nullptr;
    ASSERT_EQ(Code(pomai_txn_begin(db, POMAI_TXN_READ_WRITE, &w)), kOk);
    for (int i = 0; i < 100; ++i) {
      const std::string key = "k" + std::to_string(i);
      float v[4] = {std::sin(float(i)), std::cos(float(i)), float(i % 7), 1};
      ASSERT_EQ(Code(pomai_txn_upsert_vector(w, B(key.c_str()), key.size(), false, nullptr, 0, v, 4, 0)), kOk);
      ASSERT_EQ(Code(pomai_txn_index_upsert(w, "idx", B(key.c_str()), key.size(), v, 4, false, nullptr, 0)), kOk);
    }
    ASSERT_EQ(Code(pomai_txn_commit(w)), kOk);
    pomai_txn_t* shared_txn = nullptr;  // used by one thread after the close too
    ASSERT_EQ(Code(pomai_txn_begin(db, POMAI_TXN_READ_ONLY, &shared_txn)), kOk);

    const float q[4] = {0.5f, 0.5f, 1, 1};
    CloseRacingSearches(iter, db, [&](int kind, int) {
      pomai_status_t* s;
      pomai_kv_hits_t* hits = nullptr;
      if (kind == 0) {
        s = pomai_index_search(db, "idx", q, 4, 5, 0, &hits, nullptr);
      } else if (kind == 1) {
        s = pomai_txn_search_similar(shared_txn, q, 4, 0, 5, false, nullptr, nullptr, 0, false, &hits);
      } else {
        pomai_txn_t* t = nullptr;
        s = pomai_txn_begin(db, POMAI_TXN_READ_ONLY, &t);
        if (s == nullptr) {
          s = pomai_txn_search_similar(t, q, 4, 0, 3, false, nullptr, nullptr, 0, false, &hits);
          pomai_status_free(pomai_txn_rollback(t));
        }
      }
      pomai_kv_hits_free(hits);
      return s;
    });
    EXPECT_EQ(Code(pomai_txn_commit(shared_txn)), kClosed);
  }
}

}  // namespace
