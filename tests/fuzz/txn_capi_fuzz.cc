// libFuzzer target: sequences of the alopex face's C ABI calls
// (include/pomai/kv.h: transactions, vector records, named collections) on a
// disk or in-memory database: open, close, reopen, begin, put, delete,
// upsert_vector, get, get_vector, search_similar, scan, commit, rollback, flush,
// index create/upsert/delete/search. Keys, values, metadata and vectors take
// lengths from the input, either small or at a power of two or one either
// side of it up to 16 MiB (the bytes are generated, so a short input reaches
// large sizes: the arena, WAL record and segment entry boundaries).
//
// Checks: every call returns a well-formed status, never crashes (ASan and
// UBSan); a bytes value committed is read back exactly, from the memtable,
// after a flush and after a reopen (disk), and a deleted key stays absent;
// a scan of the keyspace agrees with that and keeps its batch limits.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "capi_fuzz_util.h"
#include "pomai/kv.h"
#include "pomai/pomai.h"

namespace {

std::string TempDir() { return pomai::fuzz::ScratchDir("txn-capi-fuzz"); }
using pomai::fuzz::Bytes;
using pomai::fuzz::Take;

std::string Pattern(size_t n, uint8_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + 13 * i + (i >> 9));
  return s;
}

struct Fuzz {
  FuzzedDataProvider& in;
  pomai_db_t* db = nullptr;
  pomai_txn_t* txn = nullptr;
  bool disk = true;
  // Committed bytes values (nullopt: deleted); keys whose state the model
  // does not follow (vector records, writes of a failed commit) are absent.
  std::map<std::string, std::optional<std::string>> model;
  std::map<std::string, std::optional<std::string>> pending;  // the open transaction's writes

  // 0..16 from the input, or 2^k - 1, 2^k, 2^k + 1 (k <= log2 max), capped at max.
  size_t Size(size_t max) {
    if (in.ConsumeIntegralInRange<int>(0, 3) != 0) return std::min<size_t>(max, in.ConsumeIntegralInRange<size_t>(0, 16));
    size_t k = 0;
    while ((size_t{2} << k) <= max && k < 24) ++k;
    const size_t p = size_t{1} << in.ConsumeIntegralInRange<size_t>(0, k);
    const size_t v = p - 1 + in.ConsumeIntegralInRange<size_t>(0, 2);
    return std::min(v, max);
  }
  std::string Key() {
    // Mostly a few short keys (so writes meet), sometimes a long one.
    if (in.ConsumeIntegralInRange<int>(0, 3) != 0) return std::string("k") + static_cast<char>('a' + in.ConsumeIntegralInRange<int>(0, 7));
    return Pattern(Size(65536), in.ConsumeIntegral<uint8_t>());
  }
  std::vector<float> Vector(uint32_t dim) {
    std::vector<float> v(dim);
    const float scale = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? 1e19f : 1.0f;
    for (uint32_t i = 0; i < dim; ++i) v[i] = scale * static_cast<float>((i * 7 + dim) % 17) - 8.0f;
    return v;
  }
  uint32_t Dim() {
    if (in.ConsumeBool()) return 4;
    return static_cast<uint32_t>(Size(65536));
  }

  void Open() {
    if (db != nullptr) return;
    pomai_db_options_ex_t o;
    pomai_db_options_ex_init(&o);
    const std::string path = TempDir();
    o.path = path.c_str();
    o.storage_mode = disk ? POMAI_STORAGE_DISK : POMAI_STORAGE_IN_MEMORY;
    o.search_threads = 1;
    pomai_db_t* out = nullptr;
    if (Take(pomai_db_open_ex(&o, &out)) == 0) {
      db = out;
      if (!disk) model.clear();
    } else {
      FUZZ_CHECK(out == nullptr, "a failed open gives no handle");
    }
  }
  void Close() {
    if (db == nullptr) return;
    Rollback();
    FUZZ_CHECK(Take(pomai_close(db)) == 0, "close");
    db = nullptr;
  }
  void Begin() {
    if (db == nullptr || txn != nullptr) return;
    FUZZ_CHECK(Take(pomai_txn_begin(db, POMAI_TXN_READ_WRITE, &txn)) == 0, "begin");
    pending.clear();
  }
  void Put() {
    if (txn == nullptr) return;
    const std::string k = Key();
    const std::string v = Pattern(Size(size_t{16} << 20), in.ConsumeIntegral<uint8_t>());
    if (Take(pomai_txn_put(txn, Bytes(k), k.size(), Bytes(v), v.size())) == 0) pending[k] = v;
  }
  void Delete() {
    if (txn == nullptr) return;
    const std::string k = Key();
    if (Take(pomai_txn_delete(txn, Bytes(k), k.size())) == 0) pending[k] = std::nullopt;
  }
  void UpsertVector() {
    if (txn == nullptr) return;
    const std::string k = Key();
    const uint32_t dim = Dim();
    const std::vector<float> v = Vector(dim);
    const std::string meta = Pattern(Size(size_t{16} << 20), 7);
    const bool has_meta = in.ConsumeBool();
    const int code = Take(pomai_txn_upsert_vector(txn, Bytes(k), k.size(), has_meta, Bytes(meta), meta.size(), v.data(),
                                                  dim, in.ConsumeIntegralInRange<uint32_t>(0, 3)));
    if (code == 0) {
      pending.erase(k);
      model.erase(k);  // not followed
    }
  }
  void Commit() {
    if (txn == nullptr) return;
    const int code = Take(pomai_txn_commit(txn));
    txn = nullptr;
    if (code == 0) {
      for (auto& [k, v] : pending) model[k] = v;
    } else {
      for (auto& [k, v] : pending) model.erase(k);
    }
    pending.clear();
  }
  void Rollback() {
    if (txn == nullptr) return;
    FUZZ_CHECK(Take(pomai_txn_rollback(txn)) == 0, "rollback");
    txn = nullptr;
    pending.clear();
  }
  // Every followed key reads back as committed, in a fresh read-only transaction.
  void CheckModel() {
    if (db == nullptr) return;
    pomai_txn_t* ro = nullptr;
    FUZZ_CHECK(Take(pomai_txn_begin(db, POMAI_TXN_READ_ONLY, &ro)) == 0, "begin read-only");
    std::string buf;
    for (const auto& [k, v] : model) {
      size_t len = 0;
      bool found = false;
      int code = Take(pomai_txn_get(ro, Bytes(k), k.size(), nullptr, 0, &len, &found));
      FUZZ_CHECK(code == 0, "get of a committed key");
      FUZZ_CHECK(found == v.has_value(), "a committed key's presence");
      if (!found) continue;
      FUZZ_CHECK(len == v->size(), "value length " + std::to_string(len) + " vs " + std::to_string(v->size()));
      buf.assign(len, '\0');
      code = Take(pomai_txn_get(ro, Bytes(k), k.size(), reinterpret_cast<uint8_t*>(buf.data()), buf.size(), &len,
                                &found));
      FUZZ_CHECK(code == 0 && found && buf == *v, "a committed value reads back exactly");
    }
    Take(pomai_txn_rollback(ro));
  }
  void GetVector() {
    if (txn == nullptr) return;
    const std::string k = Key();
    std::vector<float> buf(Size(65536));
    uint32_t dim = 0;
    Take(pomai_txn_get_vector(txn, Bytes(k), k.size(), in.ConsumeIntegralInRange<uint32_t>(0, 3), buf.data(),
                              static_cast<uint32_t>(buf.size()), &dim));
  }
  void SearchSimilar() {
    if (txn == nullptr) return;
    const uint32_t dim = Dim();
    const std::vector<float> q = Vector(dim);
    pomai_kv_hits_t* hits = nullptr;
    const int code = Take(pomai_txn_search_similar(txn, q.data(), dim, in.ConsumeIntegralInRange<uint32_t>(0, 3),
                                                   in.ConsumeIntegralInRange<uint32_t>(0, 20), false, nullptr,
                                                   nullptr, 0, in.ConsumeBool(), &hits));
    if (code == 0) {
      FUZZ_CHECK(hits != nullptr, "hits");
      pomai_kv_hits_free(hits);
    }
  }
  // Scans the whole keyspace in a read-only transaction in batches of
  // random limits: keys strictly ascending, batch limits kept, every model
  // key read back as in the model.
  void Scan() {
    if (db == nullptr) return;
    pomai_txn_t* ro = nullptr;
    FUZZ_CHECK(Take(pomai_txn_begin(db, POMAI_TXN_READ_ONLY, &ro)) == 0, "begin read-only");
    const size_t max_entries = in.ConsumeIntegralInRange<size_t>(0, 8);
    const size_t max_bytes = Size(1 << 20);
    std::map<std::string, std::string> seen;
    std::string lo, last;
    for (;;) {
      pomai_kv_scan_batch_t* b = nullptr;
      const int code = Take(pomai_txn_scan(ro, Bytes(lo), lo.size(), nullptr, 0, max_entries, max_bytes, &b));
      if (max_entries == 0) {
        FUZZ_CHECK(code == POMAI_STATUS_INVALID_ARGUMENT && b == nullptr, "max_entries 0 is refused");
        break;
      }
      FUZZ_CHECK(code == 0 && b != nullptr, "scan");
      FUZZ_CHECK(b->count <= max_entries && (b->count > 0 || !b->more), "batch limits");
      size_t bytes = 0;
      for (size_t i = 0; i < b->count; ++i) {
        const pomai_kv_entry_t& e = b->entries[i];
        std::string k(reinterpret_cast<const char*>(e.key), e.key_len);
        FUZZ_CHECK(seen.empty() || last < k, "scan keys ascend");
        last = k;
        bytes += e.key_len + e.value_len;
        seen[k] = e.value_len ? std::string(reinterpret_cast<const char*>(e.value), e.value_len) : std::string();
      }
      FUZZ_CHECK(max_bytes == 0 || b->count <= 1 || bytes <= max_bytes, "batch byte limit");
      const bool more = b->more;
      if (more) lo.assign(reinterpret_cast<const char*>(b->next_lo), b->next_lo_len);
      pomai_kv_scan_batch_free(b);
      if (!more) break;
    }
    if (max_entries > 0) {
      for (const auto& [k, v] : model) {
        auto it = seen.find(k);
        FUZZ_CHECK(v ? it != seen.end() && it->second == *v : it == seen.end(), "a scan agrees with the model");
      }
    }
    Take(pomai_txn_rollback(ro));
  }
  void Flush() {
    if (db != nullptr) Take(pomai_db_flush(db));
  }
  void IndexCreate() {
    if (db == nullptr) return;
    pomai_hnsw_config_t c = {sizeof(pomai_hnsw_config_t), 4, 4, 8, 0};
    if (in.ConsumeBool()) {
      c.dim = Dim();
      c.m = static_cast<uint32_t>(Size(UINT32_MAX));
      c.ef_construction = in.ConsumeBool() ? UINT32_MAX : static_cast<uint32_t>(Size(UINT32_MAX));
      c.metric = in.ConsumeIntegralInRange<uint32_t>(0, 3);
    }
    Take(pomai_index_create(db, in.ConsumeBool() ? "ix" : "other", &c));
  }
  void IndexUpsert() {
    if (txn == nullptr) return;
    const std::string k = Key();
    const uint32_t dim = in.ConsumeBool() ? 4 : Dim();
    const std::vector<float> v = Vector(dim);
    const std::string meta = Pattern(Size(1 << 20), 3);
    Take(pomai_txn_index_upsert(txn, "ix", Bytes(k), k.size(), v.data(), dim, in.ConsumeBool(), Bytes(meta),
                                meta.size()));
  }
  void IndexDelete() {
    if (txn == nullptr) return;
    const std::string k = Key();
    Take(pomai_txn_index_delete(txn, "ix", Bytes(k), k.size()));
  }
  void IndexSearch() {
    if (db == nullptr) return;
    const uint32_t dim = in.ConsumeBool() ? 4 : Dim();
    const std::vector<float> q = Vector(dim);
    pomai_kv_hits_t* hits = nullptr;
    pomai_hnsw_stats_t stats;
    if (Take(pomai_index_search(db, "ix", q.data(), dim, in.ConsumeIntegralInRange<uint32_t>(0, 20),
                                in.ConsumeIntegralInRange<uint32_t>(0, 300), &hits, &stats)) == 0) {
      pomai_kv_hits_free(hits);
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  std::error_code ec;
  std::filesystem::remove_all(TempDir(), ec);
  Fuzz f{in};
  f.disk = in.ConsumeBool();
  f.Open();
  for (int step = 0; step < 64 && in.remaining_bytes() > 0; ++step) {
    switch (in.ConsumeIntegralInRange<int>(0, 17)) {
      case 0: f.Open(); break;
      case 1: f.Close(); break;
      case 2: f.Close(); f.Open(); f.CheckModel(); break;
      case 3: case 4: f.Begin(); break;
      case 5: case 6: f.Put(); break;
      case 7: f.Delete(); break;
      case 8: f.UpsertVector(); break;
      case 9: f.Commit(); break;
      case 10: f.Rollback(); break;
      case 11: f.CheckModel(); break;
      case 12: f.Flush(); f.CheckModel(); break;
      case 13: f.IndexCreate(); break;
      case 14: f.IndexUpsert(); f.IndexDelete(); break;
      case 15: f.IndexSearch(); f.GetVector(); break;
      case 16: f.SearchSimilar(); break;
      case 17: f.Scan(); break;
    }
  }
  f.Commit();
  f.CheckModel();
  f.Close();
  std::filesystem::remove_all(TempDir(), ec);
  return 0;
}
