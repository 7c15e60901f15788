// The extern "C" functions of include/pomai/pomai.h: argument checks,
// struct_size rules, handle lifetime, status objects. No engine logic here:
// the pomai_* row functions are the default collection's calls of
// engine::DB (docs/ENGINE.md 5.1).
#include "pomai/pomai.h"

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "capi/arrow_export.h"
#include "capi/handles.h"
#include "engine/db.h"
#include "index/params.h"
#include "inspect/inspect.h"
#include "simd/distance.h"
#include "util/attributes.h"
#include "util/limits.h"
#include "util/version.h"

namespace {

using pomai::MutexLock;
using pomai::Status;
using pomai::WriterLock;
using namespace pomai::capi;

using pomai::engine::DB;

// Runs fn(engine) with the handle held open (shared), when its default
// collection is open (a pomai_open handle).
template <typename Fn>
pomai_status_t* WithDefaultCollection(pomai_db_t* db, Fn&& fn) noexcept {
  return WithDbSlot(db, "db is not a handle returned by pomai_open", [&](DbSlot& slot) -> pomai_status_t* {
    if (slot.kv->dim() == 0)
      return Invalid("db has no default collection (it was opened with pomai_db_open_ex): open the directory with "
                     "pomai_open to use pomai_put, pomai_search, ...");
    return fn(*slot.kv);
  });
}

// The memtable budget of a pomai_open database whose memory_budget_bytes is 0.
constexpr uint64_t kDefaultMemoryBudget = uint64_t{256} << 20;

// A copy of `s` in memory the caller frees with pomai_free.
char* MallocString(const std::string& s) {
  char* buf = static_cast<char*>(std::malloc(s.size() + 1));
  if (buf == nullptr) throw std::bad_alloc();
  std::memcpy(buf, s.c_str(), s.size() + 1);
  return buf;
}

// Whether a struct whose first field says `size` bytes covers `field`.
#define POMAI_COVERS(ptr, type, field) \
  ((ptr)->struct_size >= offsetof(type, field) + sizeof(((type*)nullptr)->field))

constexpr uint32_t kMinOptionsSize = offsetof(pomai_options_t, dim) + sizeof(uint32_t);
constexpr uint32_t kMinUpsertSize = offsetof(pomai_upsert_t, dim) + sizeof(uint32_t);
constexpr uint32_t kMinQuerySize = offsetof(pomai_query_t, topk) + sizeof(uint32_t);
constexpr uint32_t kMinFilterSize = offsetof(pomai_filter_t, expression) + sizeof(const char*);
constexpr uint32_t kMinRowsSize = offsetof(pomai_rows_t, vectors) + sizeof(const float*);
constexpr uint32_t kMinScanSize = offsetof(pomai_scan_options_t, flags) + sizeof(uint32_t);

std::string TooSmall(const char* what, uint32_t got, uint32_t need) {
  return std::string(what) + "->struct_size is too small (" + std::to_string(got) + " < " + std::to_string(need) + ")";
}

// In an array of n > 1 input structs the first element's struct_size is the
// stride; a C array of structs always keeps its elements aligned, so a stride
// that does not is a wrong struct_size (reading through it would be undefined
// behaviour, and would read garbage): the error for it, or nullptr.
template <typename T>
pomai_status_t* CheckStride(const char* what, uint32_t stride, size_t n) {
  if (n <= 1 || stride % alignof(T) == 0) return nullptr;
  return Invalid(std::string(what) + "[0].struct_size is " + std::to_string(stride) +
                 ", which is the stride of the array of " + std::to_string(n) + " and must be a multiple of " +
                 std::to_string(alignof(T)) + " (set struct_size = sizeof the struct)");
}

// The error for a count `n` of elements of `size` bytes that no array can
// hold (more than PTRDIFF_MAX bytes), or nullptr. Checked before anything is
// sized by n, so a huge n is a clear INVALID_ARGUMENT, not a failed allocation.
pomai_status_t* CheckArrayLength(const char* what, size_t n, size_t size) {
  if (size == 0 || n <= static_cast<size_t>(PTRDIFF_MAX) / size) return nullptr;
  return Invalid("n is " + std::to_string(n) + ": " + what + " of " + std::to_string(n) + " elements of " +
                 std::to_string(size) + " bytes would be larger than any array");
}

// The error for a write batch of more items than one batch can hold, or nullptr.
pomai_status_t* CheckBatchLength(size_t n) {
  if (n <= UINT32_MAX) return nullptr;
  return Invalid("n is " + std::to_string(n) + "; a batch holds at most " + std::to_string(UINT32_MAX) +
                 " items: split it");
}

// Element i of an array of input structs laid out with the first element's struct_size as stride.
template <typename T>
const T* Element(const T* base, size_t i, uint32_t stride) {
  return reinterpret_cast<const T*>(reinterpret_cast<const char*>(base) + i * stride);
}

pomai_search_results_t FillResults(const std::vector<pomai::engine::Hit>& hits) {
  pomai_search_results_t r{};
  r.struct_size = sizeof(pomai_search_results_t);
  r.count = hits.size();
  if (hits.empty()) return r;
  const size_t n = hits.size();
  void* block = std::malloc(n * (sizeof(uint64_t) + sizeof(float) + sizeof(uint32_t)));
  if (block == nullptr) throw std::bad_alloc();
  r.ids = static_cast<uint64_t*>(block);
  r.scores = reinterpret_cast<float*>(r.ids + n);
  r.shard_ids = reinterpret_cast<uint32_t*>(r.scores + n);
  for (size_t i = 0; i < n; ++i) {
    r.ids[i] = hits[i].id;
    r.scores[i] = hits[i].score;
    r.shard_ids[i] = hits[i].shard;
  }
  return r;
}

// A query's filter: its expression (NUL-terminated) and id allow-list.
struct QueryFilter {
  const char* expression = "";
  const uint64_t* ids = nullptr;
  size_t id_count = 0;
  bool operator==(const QueryFilter& o) const {
    return std::strcmp(expression, o.expression) == 0 && ids == o.ids && id_count == o.id_count;
  }
};

// Checks the queries and gathers them into a dense matrix with their topks and filters.
pomai_status_t* GatherQueries(const pomai_query_t* queries, size_t n, uint32_t dim, std::vector<float>* matrix,
                              std::vector<uint32_t>* topks, std::vector<QueryFilter>* filters, uint32_t* deadline_ms,
                              uint32_t* ef_search) {
  const uint32_t stride = queries[0].struct_size;
  if (stride < kMinQuerySize) return Invalid(TooSmall("query", stride, kMinQuerySize));
  if (pomai_status_t* bad = CheckStride<pomai_query_t>("queries", stride, n)) return bad;
  if (pomai_status_t* bad = CheckArrayLength("queries", n, stride)) return bad;
  if (pomai_status_t* bad = CheckArrayLength("the query matrix", n, size_t{dim} * sizeof(float))) return bad;
  matrix->resize(n * size_t{dim});
  topks->resize(n);
  filters->assign(n, QueryFilter());
  *deadline_ms = 0;
  *ef_search = 0;
  for (size_t i = 0; i < n; ++i) {
    const pomai_query_t* q = Element(queries, i, stride);
    const std::string name = "queries[" + std::to_string(i) + "]";
    if (q->struct_size != stride)
      return Invalid(name + ".struct_size is " + std::to_string(q->struct_size) + " but queries[0].struct_size is " +
                     std::to_string(stride));
    if (q->vector == nullptr) return Invalid(name + ".vector is NULL");
    if (q->dim != dim)
      return Invalid(name + ".dim is " + std::to_string(q->dim) + " but the database's dim is " + std::to_string(dim));
    QueryFilter& f = (*filters)[i];
    if (POMAI_COVERS(q, pomai_query_t, filter_expression) && q->filter_expression != nullptr)
      f.expression = q->filter_expression;
    if (POMAI_COVERS(q, pomai_query_t, filter_id_count) && q->filter_id_count > 0) {
      if (q->filter_ids == nullptr)
        return Invalid(name + ".filter_ids is NULL but filter_id_count is " + std::to_string(q->filter_id_count));
      f.ids = q->filter_ids;
      f.id_count = q->filter_id_count;
    }
    if (POMAI_COVERS(q, pomai_query_t, flags) && q->flags != 0)
      return Invalid(name + ".flags is " + std::to_string(q->flags) + "; no flags are defined, it must be 0");
    if (POMAI_COVERS(q, pomai_query_t, deadline_ms) && q->deadline_ms != 0)
      *deadline_ms = *deadline_ms == 0 ? q->deadline_ms : std::min(*deadline_ms, q->deadline_ms);
    if (POMAI_COVERS(q, pomai_query_t, ef_search) && q->ef_search != 0)
      *ef_search = std::max(*ef_search, q->ef_search);
    std::memcpy(matrix->data() + i * dim, q->vector, size_t{dim} * sizeof(float));
    (*topks)[i] = q->topk;
  }
  return nullptr;
}

// The engine's filter for a C filter (NULL: none), checked.
pomai_status_t* FilterSpecOf(const pomai_filter_t* f, const char* what, pomai::engine::RowFilterSpec* out) {
  *out = pomai::engine::RowFilterSpec();
  if (f == nullptr) return nullptr;
  const std::string w(what);
  if (f->struct_size < kMinFilterSize) return Invalid(TooSmall(what, f->struct_size, kMinFilterSize));
  if (f->expression != nullptr) out->expression = f->expression;
  if (POMAI_COVERS(f, pomai_filter_t, id_count) && f->id_count > 0) {
    if (f->ids == nullptr) return Invalid(w + "->ids is NULL but id_count is " + std::to_string(f->id_count));
    if (pomai_status_t* bad = CheckArrayLength("filter ids", f->id_count, sizeof(uint64_t))) return bad;
    out->ids = f->ids;
    out->id_count = f->id_count;
  } else if (POMAI_COVERS(f, pomai_filter_t, ids) && f->ids != nullptr) {
    out->ids = f->ids;  // an empty allow-list: no row passes
  }
  return nullptr;
}

}  // namespace

namespace pomai::capi {

// Rebased offsets: n + 1 offsets `in` (any start, checked non-negative and
// non-decreasing) as offsets from in[0]; `what` names them in errors.
pomai_status_t* Rebase(const int64_t* in, size_t n, const std::string& what, std::vector<uint64_t>* out) {
  if (in == nullptr) return Invalid(what + " is NULL");
  if (in[0] < 0) return Invalid(what + "[0] is " + std::to_string(in[0]) + " (offsets are non-negative)");
  out->resize(n + 1);
  for (size_t i = 0; i <= n; ++i) {
    if (i > 0 && in[i] < in[i - 1])
      return Invalid(what + " decrease at " + std::to_string(i) + " (" + std::to_string(in[i - 1]) + " then " +
                     std::to_string(in[i]) + ")");
    (*out)[i] = static_cast<uint64_t>(in[i] - in[0]);
  }
  return nullptr;
}

pomai_status_t* ConvertColumns(const pomai_column_t* columns, size_t count, size_t n, std::vector<pomai::AttrColumn>* out) {
  using pomai::AttrColumn;
  using pomai::AttrType;
  out->clear();
  if (count == 0) return nullptr;
  if (columns == nullptr) return Invalid("columns is NULL but column_count is " + std::to_string(count));
  if (count > pomai::kMaxAttrColumns)
    return Invalid("column_count is " + std::to_string(count) + " (at most " + std::to_string(pomai::kMaxAttrColumns) + ")");
  const uint32_t stride = columns[0].struct_size;
  if (stride < sizeof(pomai_column_t)) return Invalid(TooSmall("columns", stride, sizeof(pomai_column_t)));
  if (pomai_status_t* bad = CheckStride<pomai_column_t>("columns", stride, count)) return bad;
  out->reserve(count);
  for (size_t c = 0; c < count; ++c) {
    const pomai_column_t* col = Element(columns, c, stride);
    std::string name = "columns[" + std::to_string(c) + "]";
    if (col->struct_size != stride)
      return Invalid(name + ".struct_size is " + std::to_string(col->struct_size) + " but columns[0].struct_size is " +
                     std::to_string(stride));
    if (col->name == nullptr) return Invalid(name + ".name is NULL");
    const size_t len = strnlen(col->name, pomai::kMaxAttrNameLen + 1);
    name += " ('" + pomai::Printable(std::string_view(col->name, len)) + "')";
    if (col->type < POMAI_ATTR_INT64 || col->type > POMAI_ATTR_TAGS)
      return Invalid(name + ".type is " + std::to_string(col->type) +
                     " (POMAI_ATTR_INT64 1, FLOAT64 2, BOOL 3, STRING 4 or TAGS 5)");
    AttrColumn a = AttrColumn::Make(std::string(col->name, len), static_cast<AttrType>(col->type));
    if (n == 0) {
      out->push_back(std::move(a));
      continue;
    }
    if (col->values == nullptr) return Invalid(name + ".values is NULL");
    if (col->validity != nullptr) {
      a.valid.resize(n);
      bool any_null = false;
      for (size_t r = 0; r < n; ++r) {
        a.valid[r] = (col->validity[r >> 3] >> (r & 7)) & 1;
        any_null |= a.valid[r] == 0;
      }
      if (!any_null) a.valid.clear();
    }
    auto has = [&a](size_t r) { return a.valid.empty() || a.valid[r] != 0; };
    switch (a.type) {
      case AttrType::kInt64: {
        const auto* v = static_cast<const int64_t*>(col->values);
        a.ints.resize(n);
        for (size_t r = 0; r < n; ++r) a.ints[r] = has(r) ? v[r] : 0;
        break;
      }
      case AttrType::kFloat64: {
        const auto* v = static_cast<const double*>(col->values);
        a.floats.resize(n);
        for (size_t r = 0; r < n; ++r) a.floats[r] = has(r) ? v[r] : 0;
        break;
      }
      case AttrType::kBool: {
        const auto* v = static_cast<const uint8_t*>(col->values);
        a.bools.resize(n);
        for (size_t r = 0; r < n; ++r) a.bools[r] = has(r) ? v[r] : 0;
        break;
      }
      case AttrType::kString: {
        std::vector<uint64_t> off;
        if (pomai_status_t* bad = Rebase(col->offsets, n, name + ".offsets", &off)) return bad;
        const char* base = static_cast<const char*>(col->values) + col->offsets[0];
        a.offsets.assign(1, 0);
        for (size_t r = 0; r < n; ++r) {
          if (has(r)) a.bytes.append(base + off[r], off[r + 1] - off[r]);
          a.offsets.push_back(a.bytes.size());
        }
        break;
      }
      case AttrType::kTags: {
        std::vector<uint64_t> lists;
        if (pomai_status_t* bad = Rebase(col->offsets, n, name + ".offsets", &lists)) return bad;
        std::vector<uint64_t> tags;
        if (pomai_status_t* bad = Rebase(col->tag_offsets + (col->tag_offsets ? col->offsets[0] : 0), lists[n],
                                         name + ".tag_offsets", &tags))
          return bad;
        const char* base = static_cast<const char*>(col->values) + col->tag_offsets[col->offsets[0]];
        a.offsets.assign(1, 0);
        a.tag_offsets.assign(1, 0);
        for (size_t r = 0; r < n; ++r) {
          if (has(r)) {
            for (uint64_t t = lists[r]; t < lists[r + 1]; ++t) {
              a.bytes.append(base + tags[t], tags[t + 1] - tags[t]);
              a.tag_offsets.push_back(a.bytes.size());
            }
          }
          a.offsets.push_back(a.tag_offsets.size() - 1);
        }
        break;
      }
    }
    out->push_back(std::move(a));
  }
  return nullptr;
}

}  // namespace pomai::capi

namespace {

// Searches the gathered queries, one engine search per distinct filter
// (queries that share one share its bitmaps), into hits[i] per query.
Status SearchGathered(DB& engine, const std::vector<float>& matrix, const std::vector<uint32_t>& topks,
                      const std::vector<QueryFilter>& filters, uint32_t deadline, uint32_t ef,
                      std::vector<std::vector<pomai::engine::Hit>>* hits) {
  const size_t n = topks.size(), dim = engine.dim();
  hits->assign(n, {});
  std::vector<bool> done(n, false);
  for (size_t i = 0; i < n; ++i) {
    if (done[i]) continue;
    std::vector<size_t> group;
    for (size_t j = i; j < n; ++j) {
      if (!done[j] && filters[j] == filters[i]) group.push_back(j);
    }
    std::vector<float> qs(group.size() * dim);
    std::vector<uint32_t> ks(group.size());
    for (size_t g = 0; g < group.size(); ++g) {
      std::memcpy(qs.data() + g * dim, matrix.data() + group[g] * dim, dim * sizeof(float));
      ks[g] = topks[group[g]];
      done[group[g]] = true;
    }
    pomai::engine::RowFilterSpec spec;
    spec.expression = filters[i].expression;
    spec.ids = filters[i].ids;
    spec.id_count = filters[i].id_count;
    std::vector<std::vector<pomai::engine::Hit>> out;
    POMAI_RETURN_IF_ERROR(engine.Search(qs.data(), group.size(), ks.data(), deadline, ef, &out, &spec));
    for (size_t g = 0; g < group.size(); ++g) (*hits)[group[g]] = std::move(out[g]);
  }
  return Status::OK();
}

}  // namespace

extern "C" {

int pomai_status_code(const pomai_status_t* status) { return status ? status->code : POMAI_STATUS_OK; }

const char* pomai_status_message(const pomai_status_t* status) { return status ? status->message.c_str() : ""; }

void pomai_status_free(pomai_status_t* status) {
  if (status == nullptr || status == &pomai::capi::g_out_of_memory) return;
  delete status;
}

uint32_t pomai_abi_version(void) { return 1; }

const char* pomai_version_string(void) { return POMAI_VERSION; }

const char* pomai_simd_target(void) {
  try {
    return pomai::simd::TargetName();
  } catch (...) {
    return "unknown";
  }
}

void pomai_free(void* ptr) { std::free(ptr); }

void pomai_options_init(pomai_options_t* opts) {
  if (opts == nullptr) return;
  std::memset(opts, 0, sizeof(*opts));
  opts->struct_size = sizeof(pomai_options_t);
  opts->path = nullptr;
  opts->shards = 4;
  opts->dim = 512;
  opts->search_threads = 0;
  opts->fsync_policy = POMAI_FSYNC_POLICY_NEVER;
  opts->memory_budget_bytes = 0;
  opts->deadline_ms = 0;
  opts->index_type = POMAI_INDEX_TYPE_HNSW;
  opts->hnsw_m = 32;
  opts->hnsw_ef_construction = 200;
  opts->hnsw_ef_search = 64;
  opts->adaptive_threshold = 5000;
  opts->metric = POMAI_METRIC_L2;
  opts->hnsw_vectors = POMAI_HNSW_VECTORS_SQ8;
}

pomai_status_t* pomai_open(const pomai_options_t* opts, pomai_db_t** out_db) {
  return Guard([&]() -> pomai_status_t* {
    if (out_db == nullptr) return Invalid("out_db is NULL");
    *out_db = nullptr;
    if (opts == nullptr) return Invalid("opts is NULL");
    if (opts->struct_size < kMinOptionsSize) return Invalid(TooSmall("opts", opts->struct_size, kMinOptionsSize));
    pomai_options_t o;
    pomai_options_init(&o);
    // Copy the fields the caller's struct covers; the rest keep their defaults.
    std::memcpy(&o, opts, std::min<size_t>(opts->struct_size, sizeof(o)));
    // A 48-byte struct is PomaiDB's older layout, which ends at deadline_ms:
    // byte 44 is its padding, not index_type.
    if (opts->struct_size < offsetof(pomai_options_t, hnsw_m) + sizeof(uint32_t)) o.index_type = POMAI_INDEX_TYPE_HNSW;
    o.struct_size = sizeof(o);
    if (o.path == nullptr || o.path[0] == '\0') return Invalid("opts->path is NULL or empty");
    if (o.dim == 0) return Invalid("opts->dim is 0");
    if (o.shards == 0) return Invalid("opts->shards is 0");
    // Read as an integer: a C caller may store any value in the enum field,
    // and loading an out-of-range enum is undefined behaviour in C++.
    uint32_t fsync_policy = 0;
    static_assert(sizeof(o.fsync_policy) == sizeof(fsync_policy));
    std::memcpy(&fsync_policy, &o.fsync_policy, sizeof(fsync_policy));
    if (fsync_policy != POMAI_FSYNC_POLICY_NEVER && fsync_policy != POMAI_FSYNC_POLICY_ALWAYS)
      return Invalid("opts->fsync_policy is " + std::to_string(fsync_policy) + "; expected 0 (NEVER) or 1 (ALWAYS)");
    if (o.index_type > POMAI_INDEX_TYPE_HNSW)
      return Invalid("opts->index_type is " + std::to_string(o.index_type) + "; expected 0 (IVF) or 1 (HNSW)");
    if (o.metric > POMAI_METRIC_COSINE)
      return Invalid("opts->metric is " + std::to_string(o.metric) + "; expected 0 (L2), 1 (IP) or 2 (COSINE)");
    if (opts->struct_size < offsetof(pomai_options_t, hnsw_vectors) + 1) o.hnsw_vectors = POMAI_HNSW_VECTORS_SQ8;
    if (o.hnsw_vectors > POMAI_HNSW_VECTORS_FLOAT32)
      return Invalid("opts->hnsw_vectors is " + std::to_string(o.hnsw_vectors) + "; expected 0 (SQ8) or 1 (FLOAT32)");
    pomai::engine::DefaultCollectionOptions co;
    co.dim = o.dim;
    co.metric = static_cast<pomai::simd::Metric>(o.metric);
    co.shards = o.shards;
    co.build_graphs = o.index_type == POMAI_INDEX_TYPE_HNSW;
    co.hnsw_m = o.hnsw_m;
    co.hnsw_ef_construction = o.hnsw_ef_construction;
    co.hnsw_vectors = o.hnsw_vectors == POMAI_HNSW_VECTORS_FLOAT32 ? pomai::engine::GraphVectors::kFloat32
                                                                    : pomai::engine::GraphVectors::kSq8;
    co.hnsw_ef_search = o.hnsw_ef_search;
    co.adaptive_threshold = o.adaptive_threshold;
    co.deadline_ms = o.deadline_ms;
    // The collection's own checks, before the directory is touched: bad
    // options create no files.
    if (pomai_status_t* bad = FromStatus(pomai::CheckDim(co.dim, "database"))) return bad;
    if (pomai_status_t* bad = FromStatus(pomai::CheckShards(co.shards, "shards"))) return bad;
    if (co.build_graphs) {
      if (pomai_status_t* bad = FromStatus(pomai::index::CheckHnswParams(co.hnsw_m, co.hnsw_ef_construction, "hnsw_m",
                                                                         "hnsw_ef_construction")))
        return bad;
    }
    pomai::engine::Options eo;
    eo.path = o.path;
    eo.fsync = fsync_policy == POMAI_FSYNC_POLICY_ALWAYS;
    eo.search_threads = o.search_threads;
    eo.memtable_budget_bytes = o.memory_budget_bytes != 0 ? o.memory_budget_bytes : kDefaultMemoryBudget;
    auto db = DB::Open(eo);
    if (!db.ok()) return FromStatus(db.status());
    std::unique_ptr<DB> kv = std::move(db).value();
    Status s = kv->OpenDefaultCollection(co);
    if (!s.ok()) {
      static_cast<void>(kv->Close());  // its error is not the one to report
      return FromStatus(s);
    }
    *out_db = AddDatabase(std::move(kv));
    return nullptr;
  });
}

pomai_status_t* pomai_close(pomai_db_t* db) {
  if (db == nullptr) return nullptr;
  return Guard([&]() -> pomai_status_t* {
    uint32_t generation;
    DbSlot* slot = DbTable::Get().Find(TokenOf(db), &generation);
    if (slot == nullptr) return Invalid("db is not a handle returned by pomai_open");
    if (!MadeHere(slot->owner)) return nullptr;  // an ancestor's database, left alone (see handles.h)
    std::unique_ptr<DB> kv;
    MarkClosing(*slot, generation);  // new calls on this handle answer CLOSED from now on
    {
      WriterLock l(&slot->mu);  // waits for running calls
      if (slot->generation != generation || !slot->open()) return nullptr;  // already closed
      // The database's active transactions are rolled back first: their
      // handles give CLOSED from now on.
      std::vector<uint64_t> txns;
      {
        MutexLock tl(&slot->txns_mu);
        txns.swap(slot->txns);
      }
      for (uint64_t token : txns) {
        uint32_t tgen;
        TxnSlot* ts = TxnTable::Get().Find(token, &tgen);
        if (ts == nullptr) continue;
        MutexLock tl(&ts->mu);
        if (ts->generation != tgen || !ts->txn) continue;
        ts->txn.reset();
        BumpGeneration(ts);
        TxnTable::Get().Release(token);
      }
      kv = std::move(slot->kv);
      BumpGeneration(slot);
    }
    Status s = kv->Close();
    kv.reset();
    DbTable::Get().Release(TokenOf(db));
    return FromStatus(s);
  });
}

pomai_status_t* pomai_put(pomai_db_t* db, const pomai_upsert_t* item) {
  if (item == nullptr) return Invalid("item is NULL");
  return pomai_put_batch(db, item, 1);
}

pomai_status_t* pomai_put_batch(pomai_db_t* db, const pomai_upsert_t* items, size_t n) {
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (n == 0) return nullptr;
    if (items == nullptr) return Invalid("items is NULL but n is " + std::to_string(n));
    const uint32_t stride = items[0].struct_size;
    if (stride < kMinUpsertSize) return Invalid(TooSmall("items", stride, kMinUpsertSize));
    if (pomai_status_t* bad = CheckStride<pomai_upsert_t>("items", stride, n)) return bad;
    if (pomai_status_t* bad = CheckArrayLength("items", n, stride)) return bad;
    if (pomai_status_t* bad = CheckBatchLength(n)) return bad;
    std::vector<pomai::engine::WriteOp> ops(n);
    for (size_t i = 0; i < n; ++i) {
      const pomai_upsert_t* it = Element(items, i, stride);
      const std::string name = "items[" + std::to_string(i) + "]";
      if (it->struct_size != stride)
        return Invalid(name + ".struct_size is " + std::to_string(it->struct_size) + " but items[0].struct_size is " +
                       std::to_string(stride));
      if (it->vector == nullptr) return Invalid(name + ".vector is NULL");
      if (it->dim != engine.dim())
        return Invalid(name + ".dim is " + std::to_string(it->dim) + " but the database's dim is " + std::to_string(engine.dim()));
      ops[i].kind = pomai::engine::WriteOp::Kind::kPut;
      ops[i].id = it->id;
      ops[i].vector = it->vector;
      if (POMAI_COVERS(it, pomai_upsert_t, metadata_len) && it->metadata_len > 0) {
        if (it->metadata == nullptr)
          return Invalid(name + ".metadata is NULL but metadata_len is " + std::to_string(it->metadata_len));
        ops[i].metadata = std::string_view(reinterpret_cast<const char*>(it->metadata), it->metadata_len);
      }
    }
    return FromStatus(engine.Write(ops.data(), n));
  });
}

pomai_status_t* pomai_put_array(pomai_db_t* db, const uint64_t* ids, const float* vectors, size_t n, uint32_t dim) {
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (n == 0) return nullptr;
    if (ids == nullptr) return Invalid("ids is NULL but n is " + std::to_string(n));
    if (vectors == nullptr) return Invalid("vectors is NULL but n is " + std::to_string(n));
    if (dim != engine.dim())
      return Invalid("dim is " + std::to_string(dim) + " but the database's dim is " + std::to_string(engine.dim()));
    return FromStatus(engine.PutArray(ids, vectors, n));
  });
}

pomai_status_t* pomai_delete(pomai_db_t* db, uint64_t id) { return pomai_delete_batch(db, &id, 1); }

pomai_status_t* pomai_delete_batch(pomai_db_t* db, const uint64_t* ids, size_t n) {
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (n == 0) return nullptr;
    if (ids == nullptr) return Invalid("ids is NULL but n is " + std::to_string(n));
    if (pomai_status_t* bad = CheckBatchLength(n)) return bad;
    std::vector<pomai::engine::WriteOp> ops(n);
    for (size_t i = 0; i < n; ++i) {
      ops[i].kind = pomai::engine::WriteOp::Kind::kDelete;
      ops[i].id = ids[i];
    }
    return FromStatus(engine.Write(ops.data(), n));
  });
}

pomai_status_t* pomai_freeze(pomai_db_t* db) {
  return WithDefaultCollection(db, [&](DB& engine) { return FromStatus(engine.Flush()); });
}

pomai_status_t* pomai_compact(pomai_db_t* db) { return pomai_compact_with_progress(db, nullptr, nullptr); }

}  // extern "C"

extern "C" {

pomai_status_t* pomai_freeze_with_progress(pomai_db_t* db, pomai_progress_fn fn, void* user_data) {
  return WithDefaultCollection(db, [&](DB& engine) { return FromStatus(engine.Flush(ProgressOf(fn, user_data))); });
}

pomai_status_t* pomai_compact_with_progress(pomai_db_t* db, pomai_progress_fn fn, void* user_data) {
  return WithDefaultCollection(db, [&](DB& engine) { return FromStatus(engine.Compact(true, ProgressOf(fn, user_data))); });
}

pomai_status_t* pomai_stats_json(pomai_db_t* db, char** out_json) {
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (out_json == nullptr) return Invalid("out_json is NULL");
    *out_json = nullptr;
    auto r = engine.StatsJson();
    if (!r.ok()) return FromStatus(r.status());
    char* buf = static_cast<char*>(std::malloc(r->size() + 1));
    if (buf == nullptr) throw std::bad_alloc();
    std::memcpy(buf, r->c_str(), r->size() + 1);
    *out_json = buf;
    return nullptr;
  });
}

pomai_status_t* pomai_exists(pomai_db_t* db, uint64_t id, bool* out_exists) {
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (out_exists == nullptr) return Invalid("out_exists is NULL");
    auto r = engine.Exists(id);
    if (!r.ok()) return FromStatus(r.status());
    *out_exists = r.value();
    return nullptr;
  });
}

pomai_status_t* pomai_get(pomai_db_t* db, uint64_t id, pomai_record_t** out_record) {
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (out_record == nullptr) return Invalid("out_record is NULL");
    *out_record = nullptr;
    std::vector<float> vec;
    std::string meta;
    Status s = engine.Get(id, &vec, &meta);
    if (!s.ok()) return FromStatus(s);
    // One block: the record, the vector, the metadata.
    const size_t vec_bytes = vec.size() * sizeof(float);
    char* block = static_cast<char*>(std::malloc(sizeof(pomai_record_t) + vec_bytes + meta.size() + 1));
    if (block == nullptr) throw std::bad_alloc();
    auto* rec = reinterpret_cast<pomai_record_t*>(block);
    std::memset(rec, 0, sizeof(*rec));
    rec->struct_size = sizeof(pomai_record_t);
    rec->id = id;
    rec->dim = static_cast<uint32_t>(vec.size());
    float* v = reinterpret_cast<float*>(block + sizeof(pomai_record_t));
    std::memcpy(v, vec.data(), vec_bytes);
    rec->vector = v;
    if (!meta.empty()) {
      uint8_t* m = reinterpret_cast<uint8_t*>(block + sizeof(pomai_record_t) + vec_bytes);
      std::memcpy(m, meta.data(), meta.size());
      rec->metadata = m;
    }
    rec->metadata_len = static_cast<uint32_t>(meta.size());
    rec->is_deleted = false;
    *out_record = rec;
    return nullptr;
  });
}

void pomai_record_free(pomai_record_t* record) { std::free(record); }

pomai_status_t* pomai_count(pomai_db_t* db, uint64_t* out_count) {
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (out_count == nullptr) return Invalid("out_count is NULL");
    auto r = engine.Count();
    if (!r.ok()) return FromStatus(r.status());
    *out_count = r.value();
    return nullptr;
  });
}

pomai_status_t* pomai_search(pomai_db_t* db, const pomai_query_t* query, pomai_search_results_t** out_results) {
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (out_results == nullptr) return Invalid("out_results is NULL");
    *out_results = nullptr;
    if (query == nullptr) return Invalid("query is NULL");
    std::vector<float> matrix;
    std::vector<uint32_t> topks;
    std::vector<QueryFilter> filters;
    uint32_t deadline = 0, ef = 0;
    if (pomai_status_t* st = GatherQueries(query, 1, engine.dim(), &matrix, &topks, &filters, &deadline, &ef)) return st;
    std::vector<std::vector<pomai::engine::Hit>> hits;
    Status s = SearchGathered(engine, matrix, topks, filters, deadline, ef, &hits);
    if (!s.ok()) return FromStatus(s);
    auto* r = static_cast<pomai_search_results_t*>(std::malloc(sizeof(pomai_search_results_t)));
    if (r == nullptr) throw std::bad_alloc();
    *r = FillResults(hits[0]);
    *out_results = r;
    return nullptr;
  });
}

void pomai_search_results_free(pomai_search_results_t* results) {
  if (results == nullptr) return;
  std::free(results->ids);
  std::free(results);
}

pomai_status_t* pomai_search_batch(pomai_db_t* db, const pomai_query_t* queries, size_t n,
                                   pomai_search_results_t** out_results) {
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (out_results == nullptr) return Invalid("out_results is NULL");
    *out_results = nullptr;
    if (n == 0) return nullptr;
    if (queries == nullptr) return Invalid("queries is NULL but n is " + std::to_string(n));
    std::vector<float> matrix;
    std::vector<uint32_t> topks;
    std::vector<QueryFilter> filters;
    uint32_t deadline = 0, ef = 0;
    if (pomai_status_t* st = GatherQueries(queries, n, engine.dim(), &matrix, &topks, &filters, &deadline, &ef)) return st;
    std::vector<std::vector<pomai::engine::Hit>> hits;
    Status s = SearchGathered(engine, matrix, topks, filters, deadline, ef, &hits);
    if (!s.ok()) return FromStatus(s);
    auto* arr = static_cast<pomai_search_results_t*>(std::calloc(n, sizeof(pomai_search_results_t)));
    if (arr == nullptr) throw std::bad_alloc();
    try {
      for (size_t i = 0; i < n; ++i) arr[i] = FillResults(hits[i]);
    } catch (...) {
      pomai_search_batch_free(arr, n);
      throw;
    }
    *out_results = arr;
    return nullptr;
  });
}

void pomai_search_batch_free(pomai_search_results_t* results, size_t n) {
  if (results == nullptr) return;
  for (size_t i = 0; i < n; ++i) std::free(results[i].ids);
  std::free(results);
}

pomai_status_t* pomai_search_array(pomai_db_t* db, const float* queries, size_t n, uint32_t dim, uint32_t topk,
                                   uint32_t ef_search, uint64_t* out_ids, float* out_scores, uint32_t* out_counts) {
  return pomai_search_array_filtered(db, queries, n, dim, topk, ef_search, nullptr, out_ids, out_scores, out_counts);
}

pomai_status_t* pomai_search_array_filtered(pomai_db_t* db, const float* queries, size_t n, uint32_t dim,
                                            uint32_t topk, uint32_t ef_search, const pomai_filter_t* filter,
                                            uint64_t* out_ids, float* out_scores, uint32_t* out_counts) {
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    pomai::engine::RowFilterSpec spec;
    if (pomai_status_t* bad = FilterSpecOf(filter, "filter", &spec)) return bad;
    if (n == 0) return nullptr;
    if (queries == nullptr) return Invalid("queries is NULL but n is " + std::to_string(n));
    if (dim != engine.dim())
      return Invalid("dim is " + std::to_string(dim) + " but the database's dim is " + std::to_string(engine.dim()));
    size_t cells;
    if (__builtin_mul_overflow(n, size_t{topk}, &cells) || cells > (SIZE_MAX / sizeof(uint64_t)))
      return Invalid("n * topk overflows (n " + std::to_string(n) + ", topk " + std::to_string(topk) + ")");
    if (pomai_status_t* bad = CheckArrayLength("queries", n, size_t{dim} * sizeof(float))) return bad;
    if (out_counts == nullptr) return Invalid("out_counts is NULL");
    if (cells > 0 && out_ids == nullptr) return Invalid("out_ids is NULL");
    if (cells > 0 && out_scores == nullptr) return Invalid("out_scores is NULL");
    std::vector<uint32_t> topks(n, topk);
    std::vector<std::vector<pomai::engine::Hit>> hits;
    Status s = engine.Search(queries, n, topks.data(), 0, ef_search, &hits, &spec);
    if (!s.ok()) return FromStatus(s);
    for (size_t i = 0; i < n; ++i) {
      const auto& h = hits[i];
      for (size_t j = 0; j < topk; ++j) {
        const bool have = j < h.size();
        out_ids[i * topk + j] = have ? h[j].id : UINT64_MAX;
        out_scores[i * topk + j] = have ? h[j].score : -INFINITY;
      }
      out_counts[i] = static_cast<uint32_t>(h.size());
    }
    return nullptr;
  });
}

pomai_status_t* pomai_put_rows(pomai_db_t* db, const pomai_rows_t* rows) {
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (rows == nullptr) return Invalid("rows is NULL");
    if (rows->struct_size < kMinRowsSize) return Invalid(TooSmall("rows", rows->struct_size, kMinRowsSize));
    const size_t n = rows->n;
    if (rows->dim != engine.dim())
      return Invalid("rows->dim is " + std::to_string(rows->dim) + " but the database's dim is " +
                     std::to_string(engine.dim()));
    if (n == 0) return nullptr;
    if (rows->ids == nullptr) return Invalid("rows->ids is NULL but n is " + std::to_string(n));
    if (rows->vectors == nullptr) return Invalid("rows->vectors is NULL but n is " + std::to_string(n));
    if (pomai_status_t* bad = CheckBatchLength(n)) return bad;
    if (pomai_status_t* bad = CheckArrayLength("rows", n, size_t{rows->dim} * sizeof(float))) return bad;
    pomai::engine::RowsIn in;
    in.n = n;
    in.ids = rows->ids;
    in.vectors = rows->vectors;
    std::vector<uint64_t> meta_off;
    if (POMAI_COVERS(rows, pomai_rows_t, metadata) && rows->metadata_offsets != nullptr) {
      if (pomai_status_t* bad = Rebase(rows->metadata_offsets, n, "rows->metadata_offsets", &meta_off)) return bad;
      if (meta_off[n] > 0 && rows->metadata == nullptr)
        return Invalid("rows->metadata is NULL but the offsets span " + std::to_string(meta_off[n]) + " bytes");
      in.metadata_offsets = meta_off.data();
      in.metadata = rows->metadata != nullptr ? rows->metadata + rows->metadata_offsets[0] : nullptr;
    }
    if (POMAI_COVERS(rows, pomai_rows_t, column_count)) {
      if (pomai_status_t* bad = ConvertColumns(rows->columns, rows->column_count, n, &in.columns)) return bad;
    }
    return FromStatus(engine.PutRows(in));
  });
}

pomai_status_t* pomai_update_attributes(pomai_db_t* db, const uint64_t* ids, size_t n, const pomai_column_t* columns,
                                        size_t column_count) {
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (n == 0) return nullptr;
    if (ids == nullptr) return Invalid("ids is NULL but n is " + std::to_string(n));
    if (pomai_status_t* bad = CheckBatchLength(n)) return bad;
    std::vector<pomai::AttrColumn> cols;
    if (pomai_status_t* bad = ConvertColumns(columns, column_count, n, &cols)) return bad;
    return FromStatus(engine.UpdateAttributes(ids, n, std::move(cols)));
  });
}

pomai_status_t* pomai_schema_json(pomai_db_t* db, char** out_json) {
  if (out_json != nullptr) *out_json = nullptr;
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (out_json == nullptr) return Invalid("out_json is NULL");
    pomai::inspect::Json cols = pomai::inspect::Json::Array();
    for (const auto& [name, type] : engine.Schema())
      cols.Push(pomai::inspect::Json::Object({{"name", name}, {"type", pomai::AttrTypeName(type)}}));
    *out_json = MallocString(pomai::inspect::Json::Object({{"columns", std::move(cols)}}).Dump());
    return nullptr;
  });
}

pomai_status_t* pomai_count_where(pomai_db_t* db, const pomai_filter_t* filter, uint64_t* out_count) {
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (out_count == nullptr) return Invalid("out_count is NULL");
    pomai::engine::RowFilterSpec spec;
    if (pomai_status_t* bad = FilterSpecOf(filter, "filter", &spec)) return bad;
    auto r = engine.Count(&spec);
    if (!r.ok()) return FromStatus(r.status());
    *out_count = r.value();
    return nullptr;
  });
}

pomai_status_t* pomai_delete_where(pomai_db_t* db, const pomai_filter_t* filter, uint64_t* out_deleted) {
  if (out_deleted != nullptr) *out_deleted = 0;
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (filter == nullptr) return Invalid("filter is NULL (delete_where needs an expression or ids)");
    pomai::engine::RowFilterSpec spec;
    if (pomai_status_t* bad = FilterSpecOf(filter, "filter", &spec)) return bad;
    auto r = engine.DeleteWhere(spec);
    if (!r.ok()) return FromStatus(r.status());
    if (out_deleted != nullptr) *out_deleted = r.value();
    return nullptr;
  });
}

pomai_status_t* pomai_scan(pomai_db_t* db, const pomai_scan_options_t* options, struct ArrowArrayStream* out_stream) {
  if (out_stream != nullptr) out_stream->release = nullptr;
  return WithDefaultCollection(db, [&](DB& engine) -> pomai_status_t* {
    if (out_stream == nullptr) return Invalid("out_stream is NULL");
    pomai::engine::ScanSpec spec;
    if (options != nullptr) {
      if (options->struct_size < kMinScanSize) return Invalid(TooSmall("options", options->struct_size, kMinScanSize));
      if ((options->flags & ~uint32_t{POMAI_SCAN_VECTORS | POMAI_SCAN_METADATA}) != 0)
        return Invalid("options->flags is " + std::to_string(options->flags) +
                       "; only POMAI_SCAN_VECTORS (1) and POMAI_SCAN_METADATA (2) are defined");
      spec.vectors = (options->flags & POMAI_SCAN_VECTORS) != 0;
      spec.metadata = (options->flags & POMAI_SCAN_METADATA) != 0;
      if (POMAI_COVERS(options, pomai_scan_options_t, filter)) {
        if (pomai_status_t* bad = FilterSpecOf(options->filter, "options->filter", &spec.filter)) return bad;
      }
      if (POMAI_COVERS(options, pomai_scan_options_t, column_count) && options->columns != nullptr) {
        spec.all_columns = false;
        for (size_t c = 0; c < options->column_count; ++c) {
          if (options->columns[c] == nullptr) return Invalid("options->columns[" + std::to_string(c) + "] is NULL");
          spec.columns.emplace_back(options->columns[c]);
        }
      }
      if (POMAI_COVERS(options, pomai_scan_options_t, batch_rows) && options->batch_rows != 0)
        spec.batch_rows = options->batch_rows;
    }
    auto r = engine.Scan(spec);
    if (!r.ok()) return FromStatus(r.status());
    std::shared_ptr<pomai::engine::RowScan> scan = std::move(r.value());
    ScanShape shape;
    shape.dim = engine.dim();
    shape.vectors = spec.vectors;
    shape.metadata = spec.metadata;
    shape.columns = scan->columns();
    // Each batch is read with the handle held open, like any call: after
    // pomai_close (or in a child of fork()) the stream fails with CLOSED's message.
    ExportStream(std::move(shape),
                 [db, scan](pomai::engine::ScanBatch* batch, bool* done) -> Status {
                   Status result;
                   pomai_status_t* st = WithDefaultCollection(db, [&](DB&) -> pomai_status_t* {
                     result = scan->Next(batch, done);
                     return nullptr;
                   });
                   if (st != nullptr) {
                     result = Status(static_cast<pomai::Code>(st->code), st->message);
                     pomai_status_free(st);
                   }
                   return result;
                 },
                 out_stream);
    return nullptr;
  });
}

pomai_status_t* pomai_verify(pomai_db_t* db, char** out_report_json) {
  if (out_report_json != nullptr) *out_report_json = nullptr;
  return WithDbSlot(db, "db is not a handle returned by pomai_open or pomai_db_open_ex", [&](DbSlot& slot) -> pomai_status_t* {
    if (out_report_json == nullptr) return Invalid("out_report_json is NULL");
    pomai::inspect::Report report;
    auto verify = [&](const std::string& dir) { report = pomai::inspect::Verify(dir, pomai::inspect::InspectOptions()); };
    if (slot.kv->in_memory()) {
      report = pomai::inspect::VerifyWithoutFiles(
          "in-memory", "an in-memory database has no files: nothing to check");
    } else {
      Status s = slot.kv->WithFilesHeld(verify);
      if (!s.ok()) return FromStatus(s);
    }
    *out_report_json = MallocString(report.json.Dump());
    return nullptr;
  });
}

}  // extern "C"
