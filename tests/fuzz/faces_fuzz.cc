// libFuzzer target: both faces of the C ABI interleaved on one handle and
// one directory. The pomaidb face (include/pomai/pomai.h): pomai_put_batch,
// pomai_put_array, pomai_delete, pomai_delete_batch, pomai_get,
// pomai_count, pomai_search, pomai_freeze, pomai_compact on the default
// collection of a pomai_open handle; the alopex face (include/pomai/kv.h):
// transactions (put, delete, upsert_vector, index upsert and delete, commit,
// rollback), the named collection "ix" created, re-created and dropped,
// pomai_index_search, pomai_index_prepare, pomai_index_stats,
// pomai_db_flush; and for both, pomai_verify, close and reopen, with
// pomai_open or with pomai_db_open_ex (whose handle does not open the
// default collection: its row functions are INVALID_ARGUMENT and the rows
// stay for the next pomai_open).
//
// The fuzzer keeps a model of what was committed: every row (vector and
// metadata), every key (bytes value, or vector record with metric, vector
// and metadata) and every entry of "ix". Checks: a write is accepted exactly
// when its arguments are valid; after any step the model may be checked
// (every row read back by pomai_get, pomai_count, ids outside the model
// absent; every key by pomai_txn_get and pomai_txn_get_vector; the
// collection's entry count, by pomai_index_stats and a search's statistics,
// and every hit of a search over all of it a model entry with its
// metadata; every search's hits model rows or entries, at most k, best
// first); pomai_verify finds no problem in a directory the engine wrote; no
// crash and no leak under ASan.
//
// Input: decoded with FuzzedDataProvider.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "capi_fuzz_util.h"
#include "pomai/kv.h"
#include "pomai/pomai.h"

namespace {

using pomai::fuzz::Bytes;
using pomai::fuzz::Take;

std::string TempDir() { return pomai::fuzz::ScratchDir("faces-fuzz"); }

constexpr uint32_t kDim = 4;
constexpr int kInvalid = POMAI_STATUS_INVALID_ARGUMENT;
constexpr int kNotFound = POMAI_STATUS_NOT_FOUND;

struct Row {
  std::vector<float> v;
  std::string meta;
  bool operator==(const Row&) const = default;
};
struct Value {  // a key's value: plain bytes, or a vector record
  bool vector = false;
  std::string bytes;  // the bytes, or the record's metadata ("" when it has none)
  std::vector<float> v;
  uint32_t metric = 0;
};
struct Entry {
  std::string meta;
  bool has_meta = false;
  int64_t a = -1;  // the attribute `a`, -1 when the entry has none
};

struct Fuzz {
  explicit Fuzz(FuzzedDataProvider& input) : in(input) {}
  FuzzedDataProvider& in;
  pomai_db_t* db = nullptr;
  bool rows_open = false;  // db came from pomai_open: the default collection is open
  uint32_t shards = 1;     // fixed at the first pomai_open, as dim and metric are

  std::map<uint64_t, Row> rows;
  std::map<std::string, Value> keys;
  bool index = false;
  bool entries_known = true;  // false once a commit's entries met a re-creation or drop during the transaction
  std::map<std::string, Entry> entries;

  pomai_txn_t* txn = nullptr;
  std::map<std::string, std::optional<Value>> pending;
  std::map<std::string, std::optional<Entry>> pending_entries;
  bool index_changed_in_txn = false;

  // ---- arguments ----
  uint64_t Id() { return in.ConsumeIntegralInRange<int>(0, 15) ? in.ConsumeIntegralInRange<uint64_t>(8, 39) : in.ConsumeIntegral<uint64_t>(); }
  // Mostly valid vectors of `dim`; *valid is false when one has a NaN or infinity.
  std::vector<float> Vector(uint32_t dim, bool* valid) {
    std::vector<float> v(dim);
    for (auto& x : v) {
      const int r = in.ConsumeIntegralInRange<int>(0, 63);
      x = r == 0 ? std::nanf("") : r == 1 ? INFINITY : static_cast<float>(in.ConsumeIntegralInRange<int>(-40, 40)) / 4.0f;
      if (r <= 1) *valid = false;
    }
    return v;
  }
  uint32_t Dim(bool* valid) {
    if (in.ConsumeIntegralInRange<int>(0, 15)) return kDim;
    *valid = false;
    return in.ConsumeBool() ? 0 : kDim + 1;
  }
  std::string Key() {
    switch (in.ConsumeIntegralInRange<int>(0, 15)) {
      case 0: return "";  // invalid
      case 1: return std::string(in.ConsumeIntegralInRange<size_t>(1, 300), 'L');
      default: return std::string(1, static_cast<char>('a' + in.ConsumeIntegralInRange<int>(0, 7)));
    }
  }
  std::string Meta() { return in.ConsumeRandomLengthString(24); }

  // ---- open and close ----
  void Open(bool rows) {
    if (db != nullptr) return;
    const std::string path = TempDir();
    pomai_db_t* out = nullptr;
    int code;
    if (rows) {
      pomai_options_t o;
      pomai_options_init(&o);
      o.path = path.c_str();
      o.dim = kDim;
      o.shards = shards;
      o.metric = POMAI_METRIC_L2;
      o.search_threads = 1;
      o.memory_budget_bytes = in.ConsumeIntegralInRange<int>(0, 3) == 0 ? in.ConsumeIntegralInRange<uint64_t>(512, 8192) : 0;
      o.hnsw_m = 4;
      o.hnsw_ef_construction = 16;
      o.adaptive_threshold = in.ConsumeIntegralInRange<uint32_t>(0, 12);  // small segments get graphs
      code = Take(pomai_open(&o, &out));
    } else {
      pomai_db_options_ex_t o;
      pomai_db_options_ex_init(&o);
      o.path = path.c_str();
      o.search_threads = 1;
      code = Take(pomai_db_open_ex(&o, &out));
    }
    FUZZ_CHECK(code == 0 && out != nullptr, "open of the fuzzer's own directory: " + std::to_string(code));
    db = out;
    rows_open = rows;
  }
  void Close() {
    if (db == nullptr) return;
    Rollback();
    FUZZ_CHECK(Take(pomai_close(db)) == 0, "close");
    db = nullptr;
  }

  // ---- the pomaidb face ----
  // Checks a row write's outcome against its validity; applies it to the model when accepted.
  bool Accepted(int code, bool valid, const char* what) {
    if (!rows_open) {
      FUZZ_CHECK(code == kInvalid, std::string(what) + " without the default collection: " + std::to_string(code));
      return false;
    }
    FUZZ_CHECK(valid ? code == 0 : code == kInvalid, std::string(what) + (valid ? " valid" : " invalid") + ": " + std::to_string(code));
    return code == 0;
  }
  void PutBatch() {
    const size_t n = in.ConsumeIntegralInRange<size_t>(0, 6);
    std::vector<pomai_upsert_t> items(n);
    std::vector<Row> data(n);
    bool valid = true;
    for (size_t i = 0; i < n; ++i) {
      const uint32_t dim = Dim(&valid);
      data[i].v = Vector(dim, &valid);
      data[i].meta = Meta();
      pomai_upsert_t& u = items[i];
      std::memset(&u, 0, sizeof(u));
      u.struct_size = sizeof(u);
      u.id = Id();
      u.dim = dim;
      u.vector = data[i].v.data();
      u.metadata = Bytes(data[i].meta);
      u.metadata_len = static_cast<uint32_t>(data[i].meta.size());
    }
    const int code = Take(pomai_put_batch(db, items.data(), n));
    if (!Accepted(code, valid, "put_batch")) return;
    for (size_t i = 0; i < n; ++i) rows[items[i].id] = data[i];
  }
  void PutArray() {
    const size_t n = in.ConsumeIntegralInRange<size_t>(0, 6);
    bool valid = true;
    std::vector<uint64_t> ids(n);
    for (auto& id : ids) id = Id();
    const uint32_t dim = Dim(&valid);
    if (n == 0) valid = true;  // nothing to check
    std::vector<float> v = Vector(static_cast<uint32_t>(n * dim), &valid);
    const int code = Take(pomai_put_array(db, ids.data(), v.data(), n, dim));
    if (!Accepted(code, valid, "put_array")) return;
    for (size_t i = 0; i < n; ++i) rows[ids[i]] = Row{std::vector<float>(v.begin() + i * dim, v.begin() + (i + 1) * dim), ""};
  }
  void Delete() {
    if (in.ConsumeBool()) {
      const uint64_t id = Id();
      if (Accepted(Take(pomai_delete(db, id)), true, "delete")) rows.erase(id);
      return;
    }
    std::vector<uint64_t> ids(in.ConsumeIntegralInRange<size_t>(0, 5));
    for (auto& id : ids) id = Id();
    if (Accepted(Take(pomai_delete_batch(db, ids.data(), ids.size())), true, "delete_batch"))
      for (uint64_t id : ids) rows.erase(id);
  }
  void SearchRows() {
    bool valid = true;
    std::vector<float> q = Vector(kDim, &valid);
    pomai_query_t query;
    std::memset(&query, 0, sizeof(query));
    query.struct_size = sizeof(query);
    query.vector = q.data();
    query.dim = kDim;
    query.topk = in.ConsumeIntegralInRange<uint32_t>(1, 50);
    query.ef_search = in.ConsumeIntegralInRange<uint32_t>(0, 100);
    pomai_search_results_t* r = nullptr;
    const int code = Take(pomai_search(db, &query, &r));
    if (!rows_open || !valid) {
      FUZZ_CHECK(code == kInvalid, "search without rows or with a bad query: " + std::to_string(code));
      return;
    }
    FUZZ_CHECK(code == 0 && r != nullptr, "search: " + std::to_string(code));
    FUZZ_CHECK(r->count <= query.topk && r->count <= rows.size(), "at most k hits, and no more than the rows");
    for (size_t i = 0; i < r->count; ++i) {
      FUZZ_CHECK(rows.count(r->ids[i]), "hit " + std::to_string(r->ids[i]) + " is a committed row");
      FUZZ_CHECK(i == 0 || !(r->scores[i] > r->scores[i - 1]), "best first");
      FUZZ_CHECK(r->shard_ids[i] == r->ids[i] % shards, "shard = id % shards");
    }
    pomai_search_results_free(r);
  }
  void CheckRows() {
    uint64_t count = 0;
    const int code = Take(pomai_count(db, &count));
    if (!rows_open) {
      FUZZ_CHECK(code == kInvalid, "count without the default collection");
      return;
    }
    FUZZ_CHECK(code == 0 && count == rows.size(), "count " + std::to_string(count) + ", model " + std::to_string(rows.size()));
    for (uint64_t id = 0; id < 40; ++id) {
      if (!rows.count(id)) {
        pomai_record_t* rec = nullptr;
        FUZZ_CHECK(Take(pomai_get(db, id, &rec)) == kNotFound && rec == nullptr, "row " + std::to_string(id) + " absent");
      }
    }
    for (const auto& [id, row] : rows) {
      pomai_record_t* rec = nullptr;
      FUZZ_CHECK(Take(pomai_get(db, id, &rec)) == 0 && rec != nullptr, "committed row " + std::to_string(id) + " found");
      Row got{std::vector<float>(rec->vector, rec->vector + rec->dim),
              std::string(reinterpret_cast<const char*>(rec->metadata), rec->metadata_len)};
      FUZZ_CHECK(rec->id == id && got == row, "row " + std::to_string(id) + " reads back as written");
      pomai_record_free(rec);
    }
  }

  // ---- the alopex face ----
  void Begin() {
    if (txn != nullptr) return;
    FUZZ_CHECK(Take(pomai_txn_begin(db, POMAI_TXN_READ_WRITE, &txn)) == 0, "begin");
    pending.clear();
    pending_entries.clear();
    index_changed_in_txn = false;
  }
  void Put() {
    Begin();
    const std::string k = Key(), v = Meta();
    const int code = Take(pomai_txn_put(txn, Bytes(k), k.size(), Bytes(v), v.size()));
    FUZZ_CHECK(k.empty() ? code == kInvalid : code == 0, "put: " + std::to_string(code));
    if (code == 0) pending[k] = Value{false, v, {}, 0};
  }
  void Del() {
    Begin();
    const std::string k = Key();
    const int code = Take(pomai_txn_delete(txn, Bytes(k), k.size()));
    FUZZ_CHECK(k.empty() ? code == kInvalid : code == 0, "delete: " + std::to_string(code));
    if (code == 0) pending[k] = std::nullopt;
  }
  void UpsertVector() {
    Begin();
    const std::string k = Key(), meta = Meta();
    bool valid = !k.empty();
    const uint32_t dim = in.ConsumeIntegralInRange<uint32_t>(in.ConsumeIntegralInRange<int>(0, 15) ? 1 : 0, 6);
    if (dim == 0) valid = false;
    const std::vector<float> v = Vector(dim, &valid);
    const uint32_t metric = in.ConsumeIntegralInRange<uint32_t>(0, 2);
    const bool has_meta = in.ConsumeBool();
    const int code = Take(pomai_txn_upsert_vector(txn, Bytes(k), k.size(), has_meta, Bytes(meta), meta.size(),
                                                  v.data(), dim, metric));
    FUZZ_CHECK(valid ? code == 0 : code == kInvalid, "upsert_vector: " + std::to_string(code));
    if (code == 0) pending[k] = Value{true, has_meta ? meta : "", v, metric};
  }
  void IndexWrite() {
    Begin();
    const std::string k = Key();
    if (in.ConsumeBool()) {
      const int code = Take(pomai_txn_index_delete(txn, "ix", Bytes(k), k.size()));
      if (code == 0) pending_entries[k] = std::nullopt;
      FUZZ_CHECK(code == 0 || code == kNotFound || (k.empty() && code == kInvalid), "index delete: " + std::to_string(code));
      return;
    }
    bool valid = !k.empty();
    const uint32_t dim = Dim(&valid);
    const std::vector<float> v = Vector(dim, &valid);
    const std::string meta = Meta();
    const bool has_meta = in.ConsumeBool();
    // An int64 attribute `a` in 0..3, or none (then the entry is null there).
    const int64_t a = in.ConsumeIntegralInRange<int64_t>(-1, 3);
    pomai_column_t col = {sizeof(pomai_column_t), POMAI_ATTR_INT64, "a", nullptr, &a, nullptr, nullptr};
    const int code = Take(pomai_txn_index_upsert_attrs(txn, "ix", Bytes(k), k.size(), v.data(), dim, has_meta,
                                                       Bytes(meta), meta.size(), &col, a >= 0 ? 1 : 0));
    // A transaction sees the collection of its snapshot: when it was re-created
    // or dropped since, either answer may be right.
    if (!index_changed_in_txn && !index) {
      FUZZ_CHECK(code == kNotFound || code == kInvalid, "upsert into a missing collection: " + std::to_string(code));
    } else if (!index_changed_in_txn) {
      FUZZ_CHECK(valid ? code == 0 : code == kInvalid, "index upsert: " + std::to_string(code));
    }
    if (code == 0) pending_entries[k] = Entry{has_meta ? meta : "", has_meta, a};
  }
  void Commit() {
    if (txn == nullptr) return;
    const int code = Take(pomai_txn_commit(txn));
    txn = nullptr;
    // One transaction at a time and no other writer of its keys: a commit
    // conflicts only over entries of a collection re-created or dropped meanwhile.
    FUZZ_CHECK(code == 0 || (code == POMAI_STATUS_CONFLICT && index_changed_in_txn), "commit: " + std::to_string(code));
    if (code == 0) {
      for (auto& [k, v] : pending) {
        if (v) keys[k] = *v;
        else keys.erase(k);
      }
      if (!pending_entries.empty() && index_changed_in_txn) entries_known = false;
      for (auto& [k, e] : pending_entries) {
        if (e) entries[k] = *e;
        else entries.erase(k);
      }
    }
    pending.clear();
    pending_entries.clear();
  }
  void Rollback() {
    if (txn == nullptr) return;
    FUZZ_CHECK(Take(pomai_txn_rollback(txn)) == 0, "rollback");
    txn = nullptr;
    pending.clear();
    pending_entries.clear();
  }
  void CreateOrDropIndex() {
    if (in.ConsumeIntegralInRange<int>(0, 2) == 0) {
      const int code = Take(pomai_index_drop(db, "ix"));
      FUZZ_CHECK(index ? code == 0 : code == kNotFound, "drop: " + std::to_string(code));
      index = false;
    } else {
      pomai_hnsw_config_t c = {sizeof(pomai_hnsw_config_t), kDim, 4, 8, POMAI_METRIC_L2};
      FUZZ_CHECK(Take(pomai_index_create(db, "ix", &c)) == 0, "create");
      index = true;
      entries_known = true;
    }
    entries.clear();
    index_changed_in_txn = txn != nullptr;
  }
  void SearchIndex(bool all) {
    bool valid = true;
    const std::vector<float> q = Vector(kDim, &valid);
    const uint32_t k = all ? static_cast<uint32_t>(entries.size() + 1) : in.ConsumeIntegralInRange<uint32_t>(1, 20);
    pomai_kv_hits_t* hits = nullptr;
    pomai_hnsw_stats_t stats;
    // A filter on `a` (never for `all`: that search counts every entry).
    const int64_t bound = all ? -1 : in.ConsumeIntegralInRange<int64_t>(-1, 3);
    const std::string where = bound < 0 ? "" : "a >= " + std::to_string(bound);
    const int code = Take(pomai_index_search_where(db, "ix", q.data(), kDim, k, all ? k + 64 : 0, where.c_str(), &hits,
                                                   &stats));
    if (!index) {
      FUZZ_CHECK(code == kNotFound, "search of a missing collection: " + std::to_string(code));
      return;
    }
    if (!valid) {
      FUZZ_CHECK(code == kInvalid, "search with a bad query: " + std::to_string(code));
      return;
    }
    if (bound >= 0 && code == kInvalid) {
      // No version of any entry holds `a`: the filter names an unknown attribute. A live
      // entry with `a` would make it known.
      bool any = false;
      for (const auto& [key, e] : entries) any = any || e.a >= 0;
      FUZZ_CHECK(!entries_known || !any, "a filter on an attribute a live entry holds failed");
      return;
    }
    FUZZ_CHECK(code == 0 && hits != nullptr, "index search: " + std::to_string(code));
    FUZZ_CHECK(hits->count <= k, "at most k hits");
    if (entries_known) {
      FUZZ_CHECK(stats.node_count == entries.size(), "node count " + std::to_string(stats.node_count) + ", model " +
                                                         std::to_string(entries.size()));
      for (size_t i = 0; i < hits->count; ++i) {
        const pomai_kv_hit_t& h = hits->hits[i];
        auto it = entries.find(std::string(reinterpret_cast<const char*>(h.key), h.key_len));
        FUZZ_CHECK(it != entries.end(), "a hit is a committed entry");
        FUZZ_CHECK(bound < 0 || it->second.a >= bound, "a hit passes the filter");
        FUZZ_CHECK(h.has_metadata == it->second.has_meta &&
                       std::string(reinterpret_cast<const char*>(h.metadata), h.metadata_len) == it->second.meta,
                   "a hit carries its entry's metadata");
        FUZZ_CHECK(i == 0 || !(h.score > hits->hits[i - 1].score), "best first");
      }
    }
    pomai_kv_hits_free(hits);
  }
  // pomai_index_prepare (a flush when the collection has entries and no graph), then pomai_index_stats.
  void PrepareAndStats() {
    if (in.ConsumeBool()) {
      const int code = Take(pomai_index_prepare(db, "ix", nullptr, nullptr));
      FUZZ_CHECK(index ? code == 0 : code == kNotFound, "prepare: " + std::to_string(code));
    }
    pomai_hnsw_stats_t stats;
    const int code = Take(pomai_index_stats(db, "ix", &stats));
    FUZZ_CHECK(index ? code == 0 : code == kNotFound, "stats: " + std::to_string(code));
    if (code == 0 && entries_known)
      FUZZ_CHECK(stats.node_count == entries.size(), "node count " + std::to_string(stats.node_count) + ", model " +
                                                         std::to_string(entries.size()));
  }
  void CheckKeys() {
    pomai_txn_t* ro = nullptr;
    FUZZ_CHECK(Take(pomai_txn_begin(db, POMAI_TXN_READ_ONLY, &ro)) == 0, "begin read-only");
    for (char c = 'a'; c < 'a' + 8; ++c) {
      const std::string k(1, c);
      auto it = keys.find(k);
      std::string buf(64, '\0');
      size_t len = 0;
      bool found = false;
      FUZZ_CHECK(Take(pomai_txn_get(ro, Bytes(k), 1, reinterpret_cast<uint8_t*>(buf.data()), buf.size(), &len, &found)) == 0, "get");
      FUZZ_CHECK(found == (it != keys.end()), "key " + k + " present as committed");
      if (!found) continue;
      FUZZ_CHECK(buf.substr(0, len) == it->second.bytes, "key " + k + " reads back as committed");
      std::vector<float> v(8);
      uint32_t dim = 0;
      const int code = Take(pomai_txn_get_vector(ro, Bytes(k), 1, it->second.metric, v.data(), 8, &dim));
      if (!it->second.vector) {
        FUZZ_CHECK(code == kNotFound, "get_vector of a bytes value: " + std::to_string(code));
        continue;
      }
      FUZZ_CHECK(code == 0 && dim == it->second.v.size(), "get_vector: " + std::to_string(code));
      v.resize(dim);
      FUZZ_CHECK(v == it->second.v, "key " + k + "'s vector reads back as committed");
    }
    Take(pomai_txn_rollback(ro));
  }

  // ---- both ----
  void FlushOrCompact() {
    switch (in.ConsumeIntegralInRange<int>(0, 2)) {
      case 0: FUZZ_CHECK(Take(pomai_db_flush(db)) == 0, "flush"); break;
      case 1: Accepted(Take(pomai_freeze(db)), true, "freeze"); break;
      default: Accepted(Take(pomai_compact(db)), true, "compact"); break;
    }
  }
  void Verify() {
    char* json = nullptr;
    FUZZ_CHECK(Take(pomai_verify(db, &json)) == 0 && json != nullptr, "verify ran");
    const std::string report(json);
    pomai_free(json);
    FUZZ_CHECK(report.find("\n  \"ok\": true") != std::string::npos, "verify finds no problem: " + report);
  }
  void CheckAll() {
    CheckRows();
    CheckKeys();
    SearchIndex(true);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::error_code ec;
  std::filesystem::remove_all(TempDir(), ec);
  FuzzedDataProvider in(data, size);
  Fuzz f{in};
  f.shards = in.ConsumeIntegralInRange<uint32_t>(1, 2);
  f.Open(true);
  for (int step = 0; step < 64 && in.remaining_bytes() > 0; ++step) {
    switch (in.ConsumeIntegralInRange<int>(0, 19)) {
      case 0: f.PutBatch(); break;
      case 1: f.PutArray(); break;
      case 2: f.Delete(); break;
      case 3: f.SearchRows(); break;
      case 4: case 5: f.Put(); break;
      case 6: f.Del(); break;
      case 7: f.UpsertVector(); break;
      case 8: f.IndexWrite(); break;
      case 9: case 10: f.Commit(); break;
      case 11: f.Rollback(); break;
      case 12: f.CreateOrDropIndex(); break;
      case 13:
        if (in.ConsumeBool()) f.SearchIndex(false);
        else f.PrepareAndStats();
        break;
      case 14: f.FlushOrCompact(); break;
      case 15: f.Verify(); break;
      case 16: f.CheckAll(); break;
      default:  // close and reopen through either open
        f.Close();
        f.Open(in.ConsumeIntegralInRange<int>(0, 3) != 0);
        f.CheckAll();
        break;
    }
  }
  f.Commit();
  f.CheckAll();
  f.Verify();
  f.Close();
  std::filesystem::remove_all(TempDir(), ec);
  return 0;
}
