// The extern "C" functions of include/pomai/kv.h: argument checks, struct_size
// rules, handle lifetime (databases and transactions), status objects. The
// work is in lib/engine/db.h.
#include "pomai/kv.h"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "capi/handles.h"
#include "engine/db.h"
#include "pomai/pomai.h"
#include "util/limits.h"

namespace {

using pomai::MutexLock;
using pomai::Status;
using pomai::engine::DB;
using pomai::engine::KeyHit;
using pomai::engine::Txn;
using namespace pomai::capi;

#define POMAI_COVERS(ptr, type, field) \
  ((ptr)->struct_size >= offsetof(type, field) + sizeof(((type*)nullptr)->field))

constexpr uint32_t kMinOptionsExSize = offsetof(pomai_db_options_ex_t, storage_mode) + sizeof(uint32_t);
constexpr uint32_t kMinHnswConfigSize = offsetof(pomai_hnsw_config_t, dim) + sizeof(uint32_t);

std::string TooSmall(const char* what, uint32_t got, uint32_t need) {
  return std::string(what) + "->struct_size is too small (" + std::to_string(got) + " < " + std::to_string(need) + ")";
}

pomai_status_t* Closed(const char* msg) { return MakeStatus(POMAI_STATUS_CLOSED, msg); }

// Runs fn(kv, slot) with the database handle held open (shared); a handle
// of either open function.
template <typename Fn>
pomai_status_t* WithDb(pomai_db_t* db, Fn&& fn) noexcept {
  return WithDbSlot(db, "db is not a handle returned by pomai_db_open_ex",
                    [&](DbSlot& slot) -> pomai_status_t* { return fn(*slot.kv, slot); });
}

// Runs fn(txn) with the transaction's database held open and the transaction
// locked. `end`: the call closes the transaction (commit, rollback).
template <typename Fn>
pomai_status_t* WithTxn(pomai_txn_t* txn, bool end, Fn&& fn) noexcept {
  if (txn == nullptr) return Invalid("txn is NULL");
  return Guard([&]() -> pomai_status_t* {
    const uint64_t token = TokenOf(txn);
    uint32_t generation;
    TxnSlot* ts = TxnTable::Get().Find(token, &generation);
    if (ts == nullptr) return Invalid("txn is not a handle returned by pomai_txn_begin");
    if (pomai_status_t* dead = TxnMadeBeforeFork(*ts)) return dead;
    const uint64_t db_token = ts->db_token.load();
    uint32_t db_generation;
    DbSlot* ds = DbTable::Get().Find(db_token, &db_generation);
    if (ds == nullptr) return Closed("transaction is closed");
    CallLock dl(*ds, db_generation);
    if (!dl.held()) return Closed("transaction is closed");
    MutexLock tl(&ts->mu);
    if (ts->generation != generation || !ts->txn) return Closed("transaction is closed");
    if (ds->generation != db_generation || !ds->kv) return Closed("transaction is closed");
    pomai_status_t* st = fn(*ts->txn);
    if (end) {
      ts->txn.reset();
      BumpGeneration(ts);
      tl.Unlock();
      {
        MutexLock l(&ds->txns_mu);
        auto it = std::find(ds->txns.begin(), ds->txns.end(), token);
        if (it != ds->txns.end()) ds->txns.erase(it);
      }
      TxnTable::Get().Release(token);
    }
    return st;
  });
}

pomai_status_t* CheckMetric(uint32_t metric, const char* what = "metric") {
  if (metric > POMAI_METRIC_COSINE)
    return Invalid(std::string(what) + " is " + std::to_string(metric) + "; expected 0 (L2), 1 (IP) or 2 (COSINE)");
  return nullptr;
}

pomai_status_t* CheckBytes(const uint8_t* p, size_t n, const char* what) {
  if (p == nullptr && n > 0) return Invalid(std::string(what) + " is NULL but its length is " + std::to_string(n));
  return nullptr;
}

std::string_view View(const uint8_t* p, size_t n) {
  return n == 0 ? std::string_view() : std::string_view(reinterpret_cast<const char*>(p), n);
}

pomai_status_t* CheckName(const char* name) {
  if (name == nullptr) return Invalid("name is NULL");
  return FromStatus(pomai::CheckCollectionName(std::string_view(name, strnlen(name, 257))));
}

// One malloc'd block: the hits struct, the hit array, vectors, then bytes.
pomai_kv_hits_t* MakeHits(const std::vector<KeyHit>& hits) {
  const size_t n = hits.size();
  size_t floats = 0, bytes = 0;
  for (const KeyHit& h : hits) {
    floats += h.vector.size();
    bytes += h.key.size() + h.metadata.size();
  }
  const size_t head = sizeof(pomai_kv_hits_t) + n * sizeof(pomai_kv_hit_t);
  const size_t vec_off = (head + 15) / 16 * 16;
  const size_t total = vec_off + floats * sizeof(float) + bytes + 1;
  char* block = static_cast<char*>(std::malloc(total));
  if (block == nullptr) throw std::bad_alloc();
  auto* out = reinterpret_cast<pomai_kv_hits_t*>(block);
  out->count = n;
  out->hits = n ? reinterpret_cast<pomai_kv_hit_t*>(block + sizeof(pomai_kv_hits_t)) : nullptr;
  float* fp = reinterpret_cast<float*>(block + vec_off);
  char* bp = block + vec_off + floats * sizeof(float);
  for (size_t i = 0; i < n; ++i) {
    const KeyHit& h = hits[i];
    pomai_kv_hit_t& o = out->hits[i];
    std::memset(&o, 0, sizeof(o));
    std::memcpy(bp, h.key.data(), h.key.size());
    o.key = reinterpret_cast<const uint8_t*>(bp);
    o.key_len = h.key.size();
    bp += h.key.size();
    o.score = h.score;
    o.has_metadata = h.has_metadata;
    if (h.has_metadata) {
      if (!h.metadata.empty()) std::memcpy(bp, h.metadata.data(), h.metadata.size());
      o.metadata = reinterpret_cast<const uint8_t*>(bp);
      o.metadata_len = h.metadata.size();
      bp += h.metadata.size();
    }
    if (!h.vector.empty()) {
      std::memcpy(fp, h.vector.data(), h.vector.size() * sizeof(float));
      o.vector = fp;
      o.dim = static_cast<uint32_t>(h.vector.size());
      fp += h.vector.size();
    }
  }
  return out;
}

// One malloc'd block: the batch struct, the entry array, then the bytes
// (keys and values, then next_lo).
pomai_kv_scan_batch_t* MakeBatch(const std::vector<Txn::ScanEntry>& entries, bool more) {
  const size_t n = entries.size();
  size_t bytes = 0;
  for (const Txn::ScanEntry& e : entries) bytes += e.key.size() + e.value.size();
  const size_t next_len = more ? entries.back().key.size() + 1 : 0;
  const size_t head = sizeof(pomai_kv_scan_batch_t) + n * sizeof(pomai_kv_entry_t);
  char* block = static_cast<char*>(std::malloc(head + bytes + next_len + 1));
  if (block == nullptr) throw std::bad_alloc();
  auto* out = reinterpret_cast<pomai_kv_scan_batch_t*>(block);
  std::memset(out, 0, sizeof(*out));
  out->count = n;
  out->entries = n ? reinterpret_cast<pomai_kv_entry_t*>(block + sizeof(pomai_kv_scan_batch_t)) : nullptr;
  char* bp = block + head;
  for (size_t i = 0; i < n; ++i) {
    const Txn::ScanEntry& e = entries[i];
    pomai_kv_entry_t& o = out->entries[i];
    std::memcpy(bp, e.key.data(), e.key.size());
    o.key = reinterpret_cast<const uint8_t*>(bp);
    o.key_len = e.key.size();
    bp += e.key.size();
    o.value = nullptr;
    o.value_len = e.value.size();
    if (!e.value.empty()) {
      std::memcpy(bp, e.value.data(), e.value.size());
      o.value = reinterpret_cast<const uint8_t*>(bp);
      bp += e.value.size();
    }
  }
  out->more = more;
  if (more) {
    const std::string_view last = entries.back().key;
    std::memcpy(bp, last.data(), last.size());
    bp[last.size()] = '\0';
    out->next_lo = reinterpret_cast<const uint8_t*>(bp);
    out->next_lo_len = next_len;
  }
  return out;
}

void FillStats(const pomai::engine::IndexStats& s, pomai_hnsw_stats_t* out) {
  std::memset(out, 0, sizeof(*out));
  out->node_count = s.node_count;
  out->deleted_count = s.deleted_count;
  out->memory_bytes = s.memory_bytes;
  out->avg_edges_per_node = s.avg_edges_per_node;
  const size_t levels = std::min<size_t>(s.level_distribution.size(), 32);
  out->level_count = static_cast<uint32_t>(levels);
  for (size_t i = 0; i < levels; ++i) out->level_distribution[i] = s.level_distribution[i];
  // A graph taller than 32 levels (impossible in practice) folds into the last slot.
  for (size_t i = 32; i < s.level_distribution.size(); ++i) out->level_distribution[31] += s.level_distribution[i];
}

}  // namespace

extern "C" {

void pomai_kv_hits_free(pomai_kv_hits_t* hits) { std::free(hits); }

void pomai_db_options_ex_init(pomai_db_options_ex_t* opts) {
  if (opts == nullptr) return;
  std::memset(opts, 0, sizeof(*opts));
  opts->struct_size = sizeof(pomai_db_options_ex_t);
  opts->path = nullptr;
  opts->storage_mode = POMAI_STORAGE_DISK;
  opts->fsync_policy = POMAI_FSYNC_POLICY_NEVER;
  opts->memory_limit_bytes = 0;
  opts->search_threads = 0;
}

pomai_status_t* pomai_db_open_ex(const pomai_db_options_ex_t* opts, pomai_db_t** out_db) {
  return Guard([&]() -> pomai_status_t* {
    if (out_db == nullptr) return Invalid("out_db is NULL");
    *out_db = nullptr;
    if (opts == nullptr) return Invalid("opts is NULL");
    if (opts->struct_size < kMinOptionsExSize) return Invalid(TooSmall("opts", opts->struct_size, kMinOptionsExSize));
    pomai_db_options_ex_t o;
    pomai_db_options_ex_init(&o);
    std::memcpy(&o, opts, std::min<size_t>(opts->struct_size, sizeof(o)));
    if (o.storage_mode != POMAI_STORAGE_DISK && o.storage_mode != POMAI_STORAGE_IN_MEMORY)
      return Invalid("opts->storage_mode is " + std::to_string(o.storage_mode) + "; expected 0 (DISK) or 1 (IN_MEMORY)");
    // Read as an integer: a C caller may store any value in the enum field,
    // and loading an out-of-range enum is undefined behaviour in C++.
    uint32_t fsync_policy = 0;
    static_assert(sizeof(o.fsync_policy) == sizeof(fsync_policy));
    std::memcpy(&fsync_policy, &o.fsync_policy, sizeof(fsync_policy));
    if (fsync_policy != POMAI_FSYNC_POLICY_NEVER && fsync_policy != POMAI_FSYNC_POLICY_ALWAYS)
      return Invalid("opts->fsync_policy is " + std::to_string(fsync_policy) + "; expected 0 (NEVER) or 1 (ALWAYS)");
    pomai::engine::Options eo;
    eo.in_memory = o.storage_mode == POMAI_STORAGE_IN_MEMORY;
    if (!eo.in_memory) {
      if (o.path == nullptr || o.path[0] == '\0') return Invalid("opts->path is NULL or empty (required in disk mode)");
      eo.path = o.path;
    }
    eo.fsync = fsync_policy == POMAI_FSYNC_POLICY_ALWAYS;
    eo.memory_limit_bytes = o.memory_limit_bytes;
    eo.search_threads = o.search_threads;
    auto db = DB::Open(eo);
    if (!db.ok()) return FromStatus(db.status());
    *out_db = AddDatabase(std::move(db).value());
    return nullptr;
  });
}

pomai_status_t* pomai_db_flush(pomai_db_t* db) {
  return WithDb(db, [&](DB& kv, DbSlot&) { return FromStatus(kv.Flush()); });
}

pomai_status_t* pomai_db_memory_usage(pomai_db_t* db, pomai_memory_stats_t* out) {
  return WithDb(db, [&](DB& kv, DbSlot&) -> pomai_status_t* {
    if (out == nullptr) return Invalid("out is NULL");
    const auto m = kv.MemoryUsage();
    out->total_bytes = m.total_bytes;
    out->used_bytes = m.used_bytes;
    out->free_bytes = m.free_bytes;
    return nullptr;
  });
}

pomai_status_t* pomai_txn_begin(pomai_db_t* db, uint32_t mode, pomai_txn_t** out_txn) {
  if (out_txn != nullptr) *out_txn = nullptr;
  return WithDb(db, [&](DB& kv, DbSlot& slot) -> pomai_status_t* {
    if (out_txn == nullptr) return Invalid("out_txn is NULL");
    if (mode != POMAI_TXN_READ_ONLY && mode != POMAI_TXN_READ_WRITE)
      return Invalid("mode is " + std::to_string(mode) + "; expected 0 (READ_ONLY) or 1 (READ_WRITE)");
    auto txn = kv.Begin(mode == POMAI_TXN_READ_WRITE ? pomai::engine::TxnMode::kReadWrite
                                                     : pomai::engine::TxnMode::kReadOnly);
    if (!txn.ok()) return FromStatus(txn.status());
    TxnTable& table = TxnTable::Get();
    const uint32_t index = table.Allocate();
    TxnSlot& ts = table.At(index);
    uint64_t token;
    {
      MutexLock l(&ts.mu);
      ts.owner.store(g_this_process.load());
      ts.txn = std::move(txn).value();
      ts.db_token.store(TokenOf(db));
      token = TxnTable::Token(index, ts.generation);
    }
    {
      MutexLock l(&slot.txns_mu);
      slot.txns.push_back(token);
    }
    *out_txn = HandleOf<pomai_txn_t>(token);
    return nullptr;
  });
}

pomai_status_t* pomai_txn_get(pomai_txn_t* txn, const uint8_t* key, size_t key_len, uint8_t* value_buf,
                              size_t buf_cap, size_t* out_len, bool* out_found) {
  return WithTxn(txn, false, [&](Txn& t) -> pomai_status_t* {
    if (key == nullptr) return Invalid("key is NULL");
    if (out_len == nullptr) return Invalid("out_len is NULL");
    if (out_found == nullptr) return Invalid("out_found is NULL");
    if (value_buf == nullptr && buf_cap > 0) return Invalid("value_buf is NULL but buf_cap is " + std::to_string(buf_cap));
    std::string_view value;
    bool found = false;
    Status s = t.GetView(View(key, key_len), &value, &found);
    if (!s.ok()) return FromStatus(s);
    *out_found = found;
    *out_len = found ? value.size() : 0;
    if (found && value.size() <= buf_cap && !value.empty()) std::memcpy(value_buf, value.data(), value.size());
    return nullptr;
  });
}

pomai_status_t* pomai_txn_put(pomai_txn_t* txn, const uint8_t* key, size_t key_len, const uint8_t* value,
                              size_t value_len) {
  return WithTxn(txn, false, [&](Txn& t) -> pomai_status_t* {
    if (key == nullptr) return Invalid("key is NULL");
    if (pomai_status_t* st = CheckBytes(value, value_len, "value")) return st;
    return FromStatus(t.Put(View(key, key_len), View(value, value_len)));
  });
}

pomai_status_t* pomai_txn_delete(pomai_txn_t* txn, const uint8_t* key, size_t key_len) {
  return WithTxn(txn, false, [&](Txn& t) -> pomai_status_t* {
    if (key == nullptr) return Invalid("key is NULL");
    return FromStatus(t.Delete(View(key, key_len)));
  });
}

pomai_status_t* pomai_txn_commit(pomai_txn_t* txn) {
  return WithTxn(txn, true, [&](Txn& t) { return FromStatus(t.Commit()); });
}

pomai_status_t* pomai_txn_rollback(pomai_txn_t* txn) {
  return WithTxn(txn, true, [&](Txn& t) { return FromStatus(t.Rollback()); });
}

void pomai_kv_scan_batch_free(pomai_kv_scan_batch_t* batch) { std::free(batch); }

pomai_status_t* pomai_txn_scan(pomai_txn_t* txn, const uint8_t* lo, size_t lo_len, const uint8_t* hi, size_t hi_len,
                               size_t max_entries, size_t max_bytes, pomai_kv_scan_batch_t** out_batch) {
  if (out_batch != nullptr) *out_batch = nullptr;
  return WithTxn(txn, false, [&](Txn& t) -> pomai_status_t* {
    if (out_batch == nullptr) return Invalid("out_batch is NULL");
    if (pomai_status_t* st = CheckBytes(lo, lo_len, "lo")) return st;
    if (pomai_status_t* st = CheckBytes(hi, hi_len, "hi")) return st;
    const std::string_view hi_view = View(hi, hi_len);
    std::vector<Txn::ScanEntry> entries;
    bool more = false;
    Status s = t.Scan(View(lo, lo_len), hi != nullptr ? &hi_view : nullptr, max_entries, max_bytes, &entries, &more);
    if (!s.ok()) return FromStatus(s);
    *out_batch = MakeBatch(entries, more);
    return nullptr;
  });
}

pomai_status_t* pomai_txn_upsert_vector(pomai_txn_t* txn, const uint8_t* key, size_t key_len, bool has_metadata,
                                        const uint8_t* metadata, size_t metadata_len, const float* vector,
                                        uint32_t dim, uint32_t metric) {
  return WithTxn(txn, false, [&](Txn& t) -> pomai_status_t* {
    if (key == nullptr) return Invalid("key is NULL");
    if (has_metadata) {
      if (pomai_status_t* st = CheckBytes(metadata, metadata_len, "metadata")) return st;
    }
    if (vector == nullptr) return Invalid("vector is NULL");
    if (pomai_status_t* st = CheckMetric(metric)) return st;
    const std::string_view meta = has_metadata ? View(metadata, metadata_len) : std::string_view();
    return FromStatus(t.UpsertVector(View(key, key_len), vector, dim, static_cast<pomai::simd::Metric>(metric),
                                     has_metadata ? &meta : nullptr));
  });
}

pomai_status_t* pomai_txn_get_vector(pomai_txn_t* txn, const uint8_t* key, size_t key_len, uint32_t metric,
                                     float* buf, uint32_t buf_cap, uint32_t* out_dim) {
  return WithTxn(txn, false, [&](Txn& t) -> pomai_status_t* {
    if (key == nullptr) return Invalid("key is NULL");
    if (out_dim == nullptr) return Invalid("out_dim is NULL");
    if (buf == nullptr && buf_cap > 0) return Invalid("buf is NULL but buf_cap is " + std::to_string(buf_cap));
    if (pomai_status_t* st = CheckMetric(metric)) return st;
    std::vector<float> v;
    Status s = t.GetVector(View(key, key_len), static_cast<pomai::simd::Metric>(metric), &v);
    if (!s.ok()) return FromStatus(s);
    *out_dim = static_cast<uint32_t>(v.size());
    if (v.size() <= buf_cap) std::memcpy(buf, v.data(), v.size() * sizeof(float));
    return nullptr;
  });
}

pomai_status_t* pomai_txn_search_similar(pomai_txn_t* txn, const float* query, uint32_t dim, uint32_t metric,
                                         uint32_t k, bool has_filter, const uint8_t* const* filter_keys,
                                         const size_t* filter_key_lens, size_t filter_count, bool return_vectors,
                                         pomai_kv_hits_t** out_hits) {
  if (out_hits != nullptr) *out_hits = nullptr;
  return WithTxn(txn, false, [&](Txn& t) -> pomai_status_t* {
    if (out_hits == nullptr) return Invalid("out_hits is NULL");
    if (query == nullptr) return Invalid("query is NULL");
    if (pomai_status_t* st = CheckMetric(metric)) return st;
    std::vector<std::string_view> filter;
    if (has_filter) {
      if (filter_count > 0 && filter_keys == nullptr)
        return Invalid("filter_keys is NULL but filter_count is " + std::to_string(filter_count));
      if (filter_count > 0 && filter_key_lens == nullptr)
        return Invalid("filter_key_lens is NULL but filter_count is " + std::to_string(filter_count));
      filter.reserve(filter_count);
      for (size_t i = 0; i < filter_count; ++i) {
        if (filter_keys[i] == nullptr) return Invalid("filter_keys[" + std::to_string(i) + "] is NULL");
        filter.push_back(View(filter_keys[i], filter_key_lens[i]));
      }
    }
    std::vector<KeyHit> hits;
    Status s = t.SearchSimilar(query, dim, static_cast<pomai::simd::Metric>(metric), k, has_filter ? &filter : nullptr,
                               return_vectors, &hits);
    if (!s.ok()) return FromStatus(s);
    *out_hits = MakeHits(hits);
    return nullptr;
  });
}

pomai_status_t* pomai_index_create(pomai_db_t* db, const char* name, const pomai_hnsw_config_t* config) {
  return WithDb(db, [&](DB& kv, DbSlot&) -> pomai_status_t* {
    if (pomai_status_t* st = CheckName(name)) return st;
    if (config == nullptr) return Invalid("config is NULL");
    if (config->struct_size < kMinHnswConfigSize)
      return Invalid(TooSmall("config", config->struct_size, kMinHnswConfigSize));
    pomai_hnsw_config_t c{};
    c.m = 16;
    c.ef_construction = 200;
    c.metric = POMAI_METRIC_COSINE;
    std::memcpy(&c, config, std::min<size_t>(config->struct_size, sizeof(c)));
    pomai::engine::IndexConfig ic;
    ic.dim = c.dim;
    ic.m = c.m;
    ic.ef_construction = c.ef_construction;
    if (c.metric > POMAI_METRIC_COSINE)
      return Invalid("invalid parameter metric: " + std::to_string(c.metric) + " (0 L2, 1 IP, 2 COSINE)");
    ic.metric = static_cast<pomai::simd::Metric>(c.metric);
    return FromStatus(kv.CreateIndex(name, ic));
  });
}

pomai_status_t* pomai_index_drop(pomai_db_t* db, const char* name) {
  return WithDb(db, [&](DB& kv, DbSlot&) -> pomai_status_t* {
    if (pomai_status_t* st = CheckName(name)) return st;
    return FromStatus(kv.DropIndex(name));
  });
}

pomai_status_t* pomai_index_stats(pomai_db_t* db, const char* name, pomai_hnsw_stats_t* out) {
  return WithDb(db, [&](DB& kv, DbSlot&) -> pomai_status_t* {
    if (pomai_status_t* st = CheckName(name)) return st;
    if (out == nullptr) return Invalid("out is NULL");
    pomai::engine::IndexStats s;
    Status st = kv.GetIndexStats(name, &s);
    if (!st.ok()) return FromStatus(st);
    FillStats(s, out);
    return nullptr;
  });
}

pomai_status_t* pomai_index_search(pomai_db_t* db, const char* name, const float* query, uint32_t dim, uint32_t k,
                                   uint32_t ef_search, pomai_kv_hits_t** out_hits, pomai_hnsw_stats_t* out_stats) {
  return pomai_index_search_where(db, name, query, dim, k, ef_search, nullptr, out_hits, out_stats);
}

pomai_status_t* pomai_index_search_where(pomai_db_t* db, const char* name, const float* query, uint32_t dim,
                                         uint32_t k, uint32_t ef_search, const char* where, pomai_kv_hits_t** out_hits,
                                         pomai_hnsw_stats_t* out_stats) {
  if (out_hits != nullptr) *out_hits = nullptr;
  return WithDb(db, [&](DB& kv, DbSlot&) -> pomai_status_t* {
    if (pomai_status_t* st = CheckName(name)) return st;
    if (query == nullptr) return Invalid("query is NULL");
    if (out_hits == nullptr) return Invalid("out_hits is NULL");
    std::vector<KeyHit> hits;
    pomai::engine::IndexStats s;
    Status st = kv.SearchIndex(name, query, dim, k, ef_search, where != nullptr ? where : "", &hits,
                               out_stats ? &s : nullptr);
    if (!st.ok()) return FromStatus(st);
    if (out_stats != nullptr) FillStats(s, out_stats);
    *out_hits = MakeHits(hits);
    return nullptr;
  });
}

pomai_status_t* pomai_index_prepare(pomai_db_t* db, const char* name, pomai_progress_fn fn, void* user_data) {
  return WithDb(db, [&](DB& kv, DbSlot&) -> pomai_status_t* {
    if (pomai_status_t* st = CheckName(name)) return st;
    return FromStatus(kv.PrepareIndex(name, ProgressOf(fn, user_data)));
  });
}

pomai_status_t* pomai_txn_index_upsert(pomai_txn_t* txn, const char* name, const uint8_t* key, size_t key_len,
                                       const float* vector, uint32_t dim, bool has_metadata, const uint8_t* metadata,
                                       size_t metadata_len) {
  return pomai_txn_index_upsert_attrs(txn, name, key, key_len, vector, dim, has_metadata, metadata, metadata_len,
                                      nullptr, 0);
}

pomai_status_t* pomai_txn_index_upsert_attrs(pomai_txn_t* txn, const char* name, const uint8_t* key, size_t key_len,
                                             const float* vector, uint32_t dim, bool has_metadata,
                                             const uint8_t* metadata, size_t metadata_len,
                                             const pomai_column_t* columns, size_t column_count) {
  return WithTxn(txn, false, [&](Txn& t) -> pomai_status_t* {
    if (pomai_status_t* st = CheckName(name)) return st;
    if (key == nullptr) return Invalid("key is NULL");
    if (vector == nullptr) return Invalid("vector is NULL");
    if (has_metadata) {
      if (pomai_status_t* st = CheckBytes(metadata, metadata_len, "metadata")) return st;
    }
    const std::string_view meta = has_metadata ? View(metadata, metadata_len) : std::string_view();
    std::vector<pomai::AttrColumn> attrs;
    if (pomai_status_t* st = ConvertColumns(columns, column_count, 1, &attrs)) return st;
    return FromStatus(t.IndexUpsert(name, View(key, key_len), vector, dim, has_metadata ? &meta : nullptr, &attrs));
  });
}

pomai_status_t* pomai_txn_index_delete(pomai_txn_t* txn, const char* name, const uint8_t* key, size_t key_len) {
  return WithTxn(txn, false, [&](Txn& t) -> pomai_status_t* {
    if (pomai_status_t* st = CheckName(name)) return st;
    if (key == nullptr) return Invalid("key is NULL");
    return FromStatus(t.IndexDelete(name, View(key, key_len)));
  });
}

}  // extern "C"
