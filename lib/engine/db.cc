#include "engine/db.h"
#include "engine/db_impl.h"
#include "filter/column_source.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <list>
#include <map>
#include <set>
#include <tuple>
#include <thread>

#include "engine/collection.h"
#include "engine/compaction.h"
#include "engine/filename.h"
#include "engine/search.h"
#include "engine/version_set.h"
#include "index/params.h"
#include "filter/filter.h"
#include "memtable/attr_columns.h"
#include "memtable/key_table.h"
#include "segment/file.h"
#include "segment/writer.h"
#include "util/env_memory.h"
#include "util/limits.h"
#include "util/mutex.h"
#include "util/thread_pool.h"
#include "wal/log_format.h"
#include "wal/log_reader.h"
#include "wal/log_writer.h"
#include "wal/record_codec.h"

namespace pomai::engine {


namespace {

constexpr uint64_t kDefaultMemtableBudget = uint64_t{64} << 20;

// The metric as alopex's Metric constants name it (the keyspace face's messages).
std::string MetricConstantName(simd::Metric m) {
  switch (m) {
    case simd::Metric::kL2: return "L2";
    case simd::Metric::kIP: return "INNER_PRODUCT";
    case simd::Metric::kCosine: return "COSINE";
  }
  return "metric " + std::to_string(static_cast<int>(m));
}

Status IndexNotFound(std::string_view name) { return Status::NotFound("index not found: " + Printable(name)); }

// A named index is a byte-keyed collection (engine/collection.h) with float32 graph vectors.
CollectionConfig CollectionOf(const IndexConfig& c) {
  CollectionConfig out;
  out.key_type = KeyType::kBytes;
  out.metric = c.metric;
  out.graph_vectors = GraphVectors::kFloat32;
  out.dim = c.dim;
  out.m = c.m;
  out.ef_construction = c.ef_construction;
  return out;
}

IndexConfig IndexConfigOf(const CollectionConfig& c) {
  IndexConfig out;
  out.dim = c.dim;
  out.m = c.m;
  out.ef_construction = c.ef_construction;
  out.metric = c.metric;
  return out;
}

// The configuration of index `name` as stored (a tombstone is no index).
Status DecodeIndexConfig(const VersionView& v, std::string_view name, IndexConfig* out) {
  if (v.kind != ValueKind::kBytes) return IndexNotFound(name);
  CollectionConfig c;
  POMAI_RETURN_IF_ERROR(CollectionConfig::Decode(v.bytes, "the configuration of index '" + Printable(name) + "'", &c));
  if (c.key_type != KeyType::kBytes)
    return Status::InvalidArgument("collection '" + Printable(name) + "' has u64 ids, not the byte keys of an index");
  *out = IndexConfigOf(c);
  return Status::OK();
}

uint64_t PhysicalMemory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

// Extra bytes a commit's writes will take in the memtable (an upper bound).
uint64_t WriteCost(const std::vector<Write>& writes) {
  uint64_t n = 0;
  for (const Write& w : writes) n += w.key.capacity() + w.value->MemoryBytes() + 96;
  return n;
}

}  // namespace

Status CheckVector(const float* v, uint32_t dim, const char* what) {
  POMAI_RETURN_IF_ERROR(CheckDim(dim, what));
  if (v == nullptr) return Status::InvalidArgument(std::string(what) + " is NULL");
  if (simd::FirstRowOutOfRange(v, 1, dim) == 0) {
    // One pass when the vector is fine; the message says which rule it breaks.
    if (const size_t i = simd::FirstNonFinite(v, dim); i < dim)
      return Status::InvalidArgument(std::string(what) + "[" + std::to_string(i) + "] is " +
                                     (std::isnan(v[i]) ? "NaN" : "infinite") + "; every component must be finite");
    return Status::InvalidArgument(std::string(what) + " " + simd::RowRangeError(v, dim));
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Segments (segment/file.h, docs/ENGINE.md 3.3): one version per key; every
// entry read is checked whole (its CRC, and a vector's block).

// An entry as the version of its key.
VersionView ViewOfEntry(const segment::SegmentFile& seg, const segment::EntryView& e) {
  VersionView v;
  v.seq = e.seq;
  switch (e.kind) {
    case segment::EntryKind::kBytes:
      v.kind = ValueKind::kBytes;
      v.bytes = e.value;
      break;
    case segment::EntryKind::kVector:
      v.kind = ValueKind::kVector;
      v.metric = e.metric;
      v.has_metadata = e.has_metadata;
      v.bytes = e.value;
      v.attrs = e.attrs;
      v.vec = e.vector;
      v.dim = seg.group(e.group).dim;
      break;
    case segment::EntryKind::kTombstone:
      v.kind = ValueKind::kTombstone;
      break;
  }
  return v;
}

// The version of `key` in `seg` when its seq is <= snap (*found).
Status SegmentGet(const segment::SegmentFile& seg, std::string_view key, uint64_t snap, VersionView* out, bool* found) {
  segment::EntryView e;
  POMAI_RETURN_IF_ERROR(seg.Get(key, &e, found));
  if (*found && e.seq > snap) *found = false;
  if (*found) *out = ViewOfEntry(seg, e);
  return Status::OK();
}

// Calls fn(key, version) for every entry of `seg` with a key in [lo, hi),
// in key order, each checked whole.
template <class Fn>
Status ForEachEntry(const segment::SegmentFile& seg, std::string_view lo, std::string_view hi, Fn&& fn) {
  uint64_t from = 0, to = 0;
  POMAI_RETURN_IF_ERROR(seg.LowerBound(lo, &from));
  POMAI_RETURN_IF_ERROR(seg.LowerBound(hi, &to));
  for (uint64_t i = from; i < to; ++i) {
    segment::EntryView e;
    POMAI_RETURN_IF_ERROR(seg.ReadEntry(i, &e));
    fn(e.key, ViewOfEntry(seg, e));
  }
  return Status::OK();
}

// One version of a key, to write into a segment.
struct SegmentInput {
  std::string_view key;
  VersionView v;
  // A merge's input: the run segment it comes from (an index into
  // GraphBuild::from) and its group and row there; -1 for a memtable's.
  int source = -1;
  uint32_t group = 0;
  uint64_t row = 0;
};

// How a flush or a merge builds the graphs of the collection groups it
// writes (docs/ENGINE.md 4.6 and 4.7).
struct GraphBuild {
  // The live collections' configurations by cid: a collection group of
  // another cid (a dropped or replaced collection) gets no graph.
  const std::map<uint64_t, CollectionConfig>* live = nullptr;
  // A merge's run (SegmentInput::source indexes it): the largest input group
  // of a collection with a graph is the base its new graph starts from.
  const std::vector<std::shared_ptr<const segment::SegmentFile>>* from = nullptr;
  ThreadPool* pool = nullptr;
  // (rows linked, rows) over every graph of the segment, from one thread at a time.
  const std::function<void(uint64_t done, uint64_t total)>* progress = nullptr;
  std::atomic<uint64_t>* builds = nullptr;  // counts the graphs built
  // Read between rows: once true, a build stops and the write fails (Closed).
  const std::atomic<bool>* stop = nullptr;
};

// The default collection's rows for a segment: a flush's row set, or a
// merge's rows (each id's newest version in the run).
struct U64Group {
  uint64_t cid = 0;
  uint32_t dim = 0;
  simd::Metric metric = simd::Metric::kL2;
  RowTable::Sorted rows;
  // A merge: the largest input graph of the collection, and the row each of
  // its rows became (index::kNoRow: replaced or dropped).
  const index::HnswGraph* base = nullptr;
  std::vector<uint32_t> new_row;
  // Its graph: built when `graph` and it has at least min_rows rows (RowGraphSettings).
  bool graph = false;
  uint64_t min_rows = 0;
  index::HnswParams params;
};

// How the graph of u64 collection `cid` is built (ENGINE.md 4.6): with this
// open's settings when it is the open default collection, else with its
// stored configuration and the default threshold; a dead collection (not in
// `live`) gets none.
static void RowGraphSettings(const DBImpl& d, const std::map<uint64_t, CollectionConfig>& live, U64Group* g) {
  g->graph = false;
  if (d.rows_open.load(std::memory_order_acquire) && g->cid == d.rows_cid) {
    const DefaultCollectionOptions& o = d.rows_opt;
    g->graph = o.build_graphs;
    g->min_rows = std::max<uint64_t>(1, o.adaptive_threshold);
    g->params.m = o.hnsw_m;
    g->params.ef_construction = o.hnsw_ef_construction;
    g->params.sq8 = o.hnsw_vectors == GraphVectors::kSq8;
    return;
  }
  auto c = live.find(g->cid);
  if (c == live.end() || c->second.key_type != KeyType::kU64) return;
  g->graph = true;
  g->min_rows = DefaultCollectionOptions{}.adaptive_threshold;
  g->params.m = c->second.m;
  g->params.ef_construction = c->second.ef_construction;
  g->params.sq8 = c->second.graph_vectors == GraphVectors::kSq8;
}

namespace {

// The graph of collection `cid`'s group whose rows are `inputs[rows[j]]`
// (row j), built with the collection's parameters; from the largest graph of
// the same group among a merge's inputs when index::BuildHnswFrom can reuse
// it. `done` rows of `total` were linked by the graphs built before.
Result<std::vector<index::GraphSection>> BuildGroupGraph(const GraphBuild& gb, uint64_t cid, const CollectionConfig& c,
                                                         const std::vector<SegmentInput>& inputs,
                                                         const std::vector<size_t>& rows, uint64_t done, uint64_t total) {
  const size_t n = rows.size(), dim = c.dim;
  std::vector<float> vectors(n * dim);
  for (size_t j = 0; j < n; ++j) std::memcpy(vectors.data() + j * dim, inputs[rows[j]].v.vec, dim * sizeof(float));
  index::HnswParams params;
  params.m = c.m;
  params.ef_construction = c.ef_construction;
  params.sq8 = c.graph_vectors == GraphVectors::kSq8;
  params.stop = gb.stop;
  std::function<void(uint64_t, uint64_t)> progress;
  if (gb.progress != nullptr && *gb.progress) {
    progress = [&gb, done, total](uint64_t d, uint64_t) { (*gb.progress)(done + d, total); };
  }
  ThreadPool* pool = n >= 2048 ? gb.pool : nullptr;
  if (gb.builds != nullptr) gb.builds->fetch_add(1);
  // A merge: the largest input group of the collection with a graph, its
  // rows mapped to the rows they became (kNoRow: replaced or dropped).
  const segment::SegmentFile* base_seg = nullptr;
  uint32_t base_group = 0;
  int base_source = -1;
  if (gb.from != nullptr) {
    for (size_t s = 0; s < gb.from->size(); ++s) {
      const segment::SegmentFile& seg = *(*gb.from)[s];
      uint32_t g = 0;
      if (!seg.FindGroup(segment::GroupKind::kBytes, cid, c.dim, c.metric, &g) || seg.graph(g) == nullptr) continue;
      if (base_seg == nullptr || seg.group(g).rows > base_seg->group(base_group).rows) {
        base_seg = &seg;
        base_group = g;
        base_source = static_cast<int>(s);
      }
    }
  }
  if (base_seg == nullptr) return index::BuildHnsw(vectors.data(), n, c.dim, c.metric, params, pool, progress);
  // Its links are copied into the merged graph: checked whole first (a link
  // to another valid row passes the graph's structural Verify).
  POMAI_RETURN_IF_ERROR(base_seg->CheckGraph(base_group));
  std::vector<uint32_t> new_row(base_seg->group(base_group).rows, index::kNoRow);
  for (size_t j = 0; j < n; ++j) {
    const SegmentInput& in = inputs[rows[j]];
    if (in.source == base_source && in.group == base_group) new_row[in.row] = static_cast<uint32_t>(j);
  }
  const index::GraphBase base{base_seg->graph(base_group), new_row.data()};
  return index::BuildHnswFrom(base, vectors.data(), n, c.dim, c.metric, params, pool, progress);
}

}  // namespace

// Writes `inputs` (keys strictly ascending, one version each) as segment
// `number` of `dir`: plain values, configurations and tombstones as entries,
// vectors in one group per collection (0x02 keys: cid, dim, metric) or per
// (dim, metric) of vector records (0x00 keys); a live collection's group
// with a graph (gb). Every view must stay valid until it returns. On failure
// no file is left under the name.
Status WriteSegment(Env* env, const std::string& dir, uint64_t number, const std::vector<SegmentInput>& inputs,
                    const GraphBuild& gb, const std::vector<U64Group>& u64s = {}) {
  segment::SegmentWriter w;
  // The u64 collections' rows, and which of their groups get a graph.
  std::vector<std::pair<const U64Group*, segment::GroupHandle>> u64_graphs;
  uint64_t total = 0;
  for (const U64Group& g : u64s) {
    const U64Group* u64 = &g;
    if (u64->rows.ids.empty() && u64->rows.tombstones.empty()) continue;
    const RowTable::Sorted& r = u64->rows;
    segment::U64Rows cols;
    cols.cid = u64->cid;
    cols.dim = u64->dim;
    cols.metric = u64->metric;
    cols.rows = r.ids.size();
    cols.ids = r.ids.data();
    cols.seqs = r.seqs.data();
    cols.vectors = r.vectors.data();
    if (!r.meta_blob.empty()) {
      cols.metadata_offsets = r.meta_offsets.data();
      cols.metadata_blob = reinterpret_cast<const uint8_t*>(r.meta_blob.data());
    }
    cols.columns = &r.columns;
    cols.tombstones = r.tombstones.size();
    cols.tombstone_ids = r.tombstones.data();
    cols.tombstone_seqs = r.tombstone_seqs.data();
    const segment::GroupHandle handle = w.AddU64Group(cols);
    if (u64->graph && r.ids.size() >= u64->min_rows) {
      u64_graphs.emplace_back(u64, handle);
      total += r.ids.size();
    }
  }
  struct Group {
    segment::GroupHandle handle;
    std::vector<size_t> rows;  // indexes into inputs, in row order
  };
  std::map<std::tuple<uint64_t, uint32_t, simd::Metric, bool>, Group> groups;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const SegmentInput& in = inputs[i];
    const VersionView& v = in.v;
    switch (v.kind) {
      case ValueKind::kBytes:
        w.AddBytes(in.key, v.seq, v.bytes);
        break;
      case ValueKind::kTombstone:
        w.AddTombstone(in.key, v.seq);
        break;
      case ValueKind::kVector: {
        uint64_t cid = 0;
        std::string_view row_key;
        const bool row = ParseRowKey(in.key, &cid, &row_key);
        auto [it, added] = groups.try_emplace({cid, v.dim, v.metric, row});
        if (added)
          it->second.handle = row ? w.AddCollectionGroup(cid, v.dim, v.metric) : w.AddRecordGroup(v.dim, v.metric);
        if (row) it->second.rows.push_back(i);
        w.AddVector(in.key, v.seq, it->second.handle, v.vec, v.has_metadata ? &v.bytes : nullptr, v.attrs);
        break;
      }
    }
  }
  // The graphs, one collection group after the other (each build uses the pool).
  struct Build {
    uint64_t cid;
    const CollectionConfig* config;
    Group* group;
  };
  std::vector<Build> build;
  for (auto& [k, g] : groups) {
    const auto& [cid, dim, metric, row] = k;
    if (!row || gb.live == nullptr) continue;
    auto c = gb.live->find(cid);
    if (c == gb.live->end() || c->second.dim != dim || c->second.metric != metric) continue;
    build.push_back(Build{cid, &c->second, &g});
    total += g.rows.size();
  }
  uint64_t done = 0;
  for (const auto& [u64, handle] : u64_graphs) {
    const size_t n = u64->rows.ids.size();
    std::function<void(uint64_t, uint64_t)> progress;
    if (gb.progress != nullptr && *gb.progress)
      progress = [&gb, done, total](uint64_t d, uint64_t) { (*gb.progress)(done + d, total); };
    ThreadPool* pool = n >= 2048 ? gb.pool : nullptr;
    if (gb.builds != nullptr) gb.builds->fetch_add(1);
    const float* vectors = u64->rows.vectors.data();
    index::HnswParams params = u64->params;
    params.stop = gb.stop;
    std::vector<index::GraphSection> graph;
    if (u64->base != nullptr) {
      const index::GraphBase base{u64->base, u64->new_row.data()};
      POMAI_ASSIGN_OR_RETURN(graph, index::BuildHnswFrom(base, vectors, n, u64->dim, u64->metric, params, pool, progress));
    } else {
      POMAI_ASSIGN_OR_RETURN(graph, index::BuildHnsw(vectors, n, u64->dim, u64->metric, params, pool, progress));
    }
    w.SetGraph(handle, std::move(graph));
    done += n;
  }
  for (const Build& b : build) {
    POMAI_ASSIGN_OR_RETURN(std::vector<index::GraphSection> graph,
                           BuildGroupGraph(gb, b.cid, *b.config, inputs, b.group->rows, done, total));
    w.SetGraph(b.group->handle, std::move(graph));
    done += b.group->rows.size();
  }
  return w.Finish(env, JoinPath(dir, files::FileName(files::FileType::kSegment, number)), number);
}

// The newest version of `key` visible at `snap` in `layers` (*found false
// when no layer has one). A damaged segment entry is Corruption.
Status LookupLayers(const Layers& layers, std::string_view key, uint64_t snap, VersionView* out, bool* found) {
  *found = true;
  if (layers.mem->keys().Get(key, snap, out)) return Status::OK();
  if (layers.imm && layers.imm->keys().Get(key, snap, out)) return Status::OK();
  for (const auto& s : layers.segs) {
    POMAI_RETURN_IF_ERROR(SegmentGet(*s, key, snap, out, found));
    if (*found) return Status::OK();
  }
  *found = false;
  return Status::OK();
}

// The collections of a view (its memtables `mem` and `imm`, either may be
// null, and its segments `segs`) at `view_seq` (docs/ENGINE.md 4.7):
// per configuration name its newest version; the live ones' configurations
// by cid (the seq of that version), and the largest seq of any
// configuration version (0 when none). A stored configuration that fails its
// check is Corruption naming it. A merge asks the segments alone (4.7).
Status LiveCollections(const MemTable* mem, const MemTable* imm,
                       const std::vector<std::shared_ptr<const segment::SegmentFile>>& segs, uint64_t view_seq,
                       std::map<uint64_t, CollectionConfig>* live, uint64_t* newest_change) {
  const std::string lo(1, static_cast<char>(wal::kIndexConfigNs)), hi(1, static_cast<char>(wal::kIndexConfigNs + 1));
  std::set<std::string, std::less<>> seen;
  Status s;
  live->clear();
  *newest_change = 0;
  auto take = [&](std::string_view key, const VersionView& v) {
    if (v.seq > view_seq) return;
    *newest_change = std::max(*newest_change, v.seq);
    if (!seen.emplace(key).second || v.kind != ValueKind::kBytes) return;
    CollectionConfig c;
    Status d = CollectionConfig::Decode(v.bytes, "the configuration of index '" + Printable(key.substr(1)) + "'", &c);
    if (d.ok()) {
      live->emplace(v.seq, c);
    } else if (s.ok()) {
      s = d;
    }
  };
  if (mem) mem->keys().Scan(lo, hi, view_seq, take);
  if (imm) imm->keys().Scan(lo, hi, view_seq, take);
  for (const auto& seg : segs) POMAI_RETURN_IF_ERROR(ForEachEntry(*seg, lo, hi, take));
  return s;
}

// Whether `key` has a version newer than `snap` in any layer. A segment
// whose versions are all <= snap is not searched.
Status ChangedSince(const Layers& layers, std::string_view key, uint64_t snap, bool* changed) {
  *changed = layers.mem->keys().LatestSeq(key) > snap || (layers.imm && layers.imm->keys().LatestSeq(key) > snap);
  for (const auto& seg : layers.segs) {
    if (*changed) break;
    if (seg->max_seq() <= snap) continue;
    segment::EntryView e;
    bool found = false;
    POMAI_RETURN_IF_ERROR(seg->Get(key, &e, &found));
    *changed = found && e.seq > snap;
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Open, recovery, close

DB::DB() : impl_(std::make_unique<DBImpl>()) {}

DB::~DB() { (void)Close(); }

bool DB::in_memory() const { return impl_->opt.in_memory; }

Status DB::WithFilesHeld(const std::function<void(const std::string& dir)>& fn) {
  DBImpl& d = *impl_;
  if (d.closed) return Status::Closed("database is closed");
  // Merges (compact_mu) and flushes (flush_mu) change the manifest and delete files.
  MutexLock c(&d.compact_mu);
  MutexLock f(&d.flush_mu);
  if (d.closed) return Status::Closed("database is closed");
  fn(d.opt.path);
  return Status::OK();
}

Result<std::unique_ptr<DB>> DB::Open(const Options& options) {
  if (!options.in_memory && options.path.empty()) return Status::InvalidArgument("path is empty for a disk database");
  std::unique_ptr<DB> db(new DB());
  DBImpl& d = *db->impl_;
  d.opt = options;
  d.env = options.env ? options.env : Env::Default();
  if (options.in_memory) {
    // Segments and the manifest go to process memory: the same flush and
    // merge as on disk, no WAL (nothing has to survive the process).
    d.memory_env = std::make_unique<MemoryEnv>();
    d.env = d.memory_env.get();
    d.opt.path = "in-memory";
    POMAI_ASSIGN_OR_RETURN(d.versions, VersionSet::Create(d.env, d.opt.path));
  }
  if (d.opt.memtable_budget_bytes == 0) d.opt.memtable_budget_bytes = kDefaultMemtableBudget;
  const uint32_t threads =
      options.search_threads ? options.search_threads : std::max(1u, std::thread::hardware_concurrency());
  if (threads > 1) d.pool = std::make_unique<ThreadPool>(threads - 1);
  auto layers = std::make_shared<Layers>();
  layers->mem = std::make_shared<MemTable>();
  d.Publish(layers);
  if (!options.in_memory) POMAI_RETURN_IF_ERROR(d.Recover());
  d.bg_thread = std::thread([&d] { d.BackgroundLoop(); });
  d.compact_thread = std::thread([&d] { d.CompactionLoop(); });
  // A process that stopped before its merges ran left more segments than
  // the policy allows: reads should not wait for the next flush to merge them.
  if (d.Current()->segs.size() > d.opt.max_segments) d.ScheduleCompaction();
  return db;
}

Status DBImpl::Recover() {
  const std::string& dir = opt.path;
  POMAI_RETURN_IF_ERROR(CreateDirDurably(env, dir));  // a new database must not vanish with its directory
  // A directory of format version 1 is refused before anything (even LOCK) is created in it.
  POMAI_RETURN_IF_ERROR(CheckNotOldFormat(env, dir));
  POMAI_ASSIGN_OR_RETURN(lock, env->LockFile(JoinPath(dir, files::FileName(files::FileType::kLock, 0))));

  POMAI_ASSIGN_OR_RETURN(std::vector<std::string> names, env->ListDir(dir));
  // One pass over the listing: the WAL files, the first data file (a
  // directory without CURRENT must have none), and every number in use.
  std::vector<uint64_t> wal_numbers, numbers;
  const std::string* data_file = nullptr;
  for (const auto& name : names) {
    files::FileType type;
    uint64_t number;
    if (!files::ParseFileName(name, &type, &number)) continue;
    numbers.push_back(number);
    if (type == files::FileType::kLog) wal_numbers.push_back(number);
    if (data_file == nullptr && (type == files::FileType::kLog || type == files::FileType::kSegment)) data_file = &name;
  }
  auto recovered = VersionSet::Recover(env, dir);  // refuses a directory of format version 1
  if (recovered.ok()) {
    versions = std::move(recovered).value();
  } else if (recovered.status().code() == Code::kNotFound) {
    if (data_file != nullptr)
      return Status::Corruption(JoinPath(dir, "CURRENT") + " is missing but the directory holds data files (" +
                                *data_file + ")");
    POMAI_ASSIGN_OR_RETURN(versions, VersionSet::Create(env, dir));
  } else {
    return recovered.status();
  }
  // Files made after the last edit (a WAL, an unfinished segment) keep their numbers.
  for (uint64_t number : numbers) versions->MarkFileNumberUsed(number);
  const std::shared_ptr<const Version> version = versions->current();

  auto next = std::make_shared<Layers>();
  next->mem = std::make_shared<MemTable>();
  std::set<uint64_t> live_segments;
  for (const SegmentMeta& meta : version->segments) {  // newest first
    const std::string path = FilePath(files::FileType::kSegment, meta.number);
    if (!env->FileExists(path)) return Status::Corruption("the manifest of " + dir + " names " + path + ", which is missing");
    POMAI_ASSIGN_OR_RETURN(std::shared_ptr<segment::SegmentFile> seg, segment::SegmentFile::Open(env, path));
    next->segs.push_back(std::move(seg));
    live_segments.insert(meta.number);
  }

  std::sort(wal_numbers.begin(), wal_numbers.end());
  uint64_t seq = version->last_seq;
  std::vector<Write> writes;
  wal::DecodedRecord decoded;
  for (uint64_t number : wal_numbers) {
    if (number < version->log_number) continue;
    const std::string path = FilePath(files::FileType::kLog, number);
    POMAI_ASSIGN_OR_RETURN(auto file, env->MapFile(path));
    if (file->size() == 0) {
      (void)env->RemoveFile(path);
      continue;
    }
    wal::Reader reader(file->data(), file->size(), path);
    wal::Record rec;
    while (reader.Next(&rec)) {
      const std::string origin = path + " at offset " + std::to_string(rec.offset);
      if (rec.seq <= version->last_seq) {
        // Already in a segment; a record type of format version 1 or an
        // unknown one is Corruption all the same.
        if (rec.type != static_cast<uint8_t>(wal::RecordType::kWriteBatch) &&
            rec.type != static_cast<uint8_t>(wal::RecordType::kRowArray) &&
            rec.type != static_cast<uint8_t>(wal::RecordType::kRowBatch))
          POMAI_RETURN_IF_ERROR(wal::DecodeRecord(rec.type, rec.payload, origin, &decoded));
        continue;
      }
      if (rec.seq <= seq)
        return Status::Corruption(path, rec.offset, "sequence number " + std::to_string(rec.seq) + " is not above " +
                                                        std::to_string(seq));
      POMAI_RETURN_IF_ERROR(wal::DecodeRecord(rec.type, rec.payload, origin, &decoded));
      // Rows of the default collection: a row array, or a write batch of row
      // ops (no record mixes them with key ops). The first one makes the row set.
      const bool batch = decoded.type == wal::RecordType::kRowBatch;
      const bool rows = decoded.type == wal::RecordType::kRowArray || batch ||
                        (!decoded.ops.empty() && (decoded.ops[0].kind == wal::OpKind::kPutRow ||
                                                  decoded.ops[0].kind == wal::OpKind::kDeleteRow));
      if (rows) {
        const uint64_t cid = decoded.type == wal::RecordType::kRowArray ? decoded.array.cid
                             : batch                                    ? decoded.batch.cid
                                                                        : decoded.ops[0].cid;
        uint32_t dim = decoded.type == wal::RecordType::kRowArray ? decoded.array.dim
                       : batch                                    ? decoded.batch.dim
                                                                  : 0;
        if (decoded.type == wal::RecordType::kWriteBatch)
          for (const wal::RecordOp& op : decoded.ops)
            if (dim == 0 && op.kind == wal::OpKind::kPutRow) dim = op.dim;
        if (!next->mem->rows() && dim != 0) next->mem->AddRows(cid, dim, row_cache);
        if (!next->mem->rows()) {
          // Only deletes so far: nothing of the collection to hide yet, but the
          // row set needs a dim; the configuration has it.
          VersionView v;
          bool found = false;
          POMAI_RETURN_IF_ERROR(LookupLayers(*next, ConfigKey(""), rec.seq, &v, &found));
          CollectionConfig c;
          if (!found || v.kind != ValueKind::kBytes || v.seq != cid ||
              !CollectionConfig::Decode(v.bytes, "the default collection", &c).ok())
            return Status::Corruption(origin + ": rows of collection " + std::to_string(cid) +
                                      ", which is not the default collection");
          next->mem->AddRows(cid, c.dim, row_cache);
        }
        RowSet& rs = *next->mem->rows();
        if (decoded.type == wal::RecordType::kRowArray) {
          const wal::RowArray& a = decoded.array;
          if (a.cid != rs.cid || a.dim != rs.dim)
            return Status::Corruption(origin + ": row array of collection " + std::to_string(a.cid) + " and dim " +
                                      std::to_string(a.dim) + " where the default collection is " +
                                      std::to_string(rs.cid) + " of dim " + std::to_string(rs.dim));
          StageRowArray(rs, rec.seq, a.ids, a.vectors, a.rows);
        } else if (batch) {
          const wal::RowBatch& b = decoded.batch;
          if (b.cid != rs.cid || b.dim != rs.dim)
            return Status::Corruption(origin + ": row batch of collection " + std::to_string(b.cid) + " and dim " +
                                      std::to_string(b.dim) + " where the default collection is " +
                                      std::to_string(rs.cid) + " of dim " + std::to_string(rs.dim));
          // A column whose type differs from the one the memtable holds is
          // damage no write makes (writes check the schema first).
          Status st = StageRowBatch(rs, rec.seq, b.ids, b.vectors, b.rows,
                                    b.has_metadata ? b.meta_offsets.data() : nullptr, b.meta_blob, b.columns);
          if (!st.ok()) return Status::Corruption(origin + ": " + st.message());
        } else {
          POMAI_RETURN_IF_ERROR(StageRowOps(rs, rec.seq, decoded.ops, origin));
        }
      } else {
        POMAI_RETURN_IF_ERROR(WritesOf(decoded.ops, origin, &writes));
        next->mem->keys().Apply(rec.seq, writes, rec.seq);
      }
      seq = rec.seq;
    }
    POMAI_RETURN_IF_ERROR(reader.status());
    live_wals.push_back(number);
  }
  {
    // The manifest log just replayed may hold records whose fdatasync failed
    // in an earlier process: readable now from the page cache, gone after a
    // power cut. Files it no longer names are removed only once it is durable
    // (else the durable manifest could name a removed segment or need a
    // removed WAL); when that sync fails they stay for a later open.
    MutexLock l(versions->install_mu());
    const std::string manifest = FilePath(files::FileType::kManifest, versions->manifest_number());
    Status durable;
    if (env->FileExists(manifest)) {
      auto file = env->NewAppendableFile(manifest);
      durable = file.ok() ? (*file)->Sync() : file.status();
      if (file.ok()) (void)(*file)->Close();
    }
    if (durable.ok())
      files::RemoveObsoleteFiles(env, dir, names, live_segments, version->log_number, versions->manifest_number());
  }
  last_seq = seq;
  next->generation = layers->generation + 1;
  layers = next;
  // The new WAL file is created by the first commit (EnsureLogFile): an
  // open that only reads creates no file and pays no directory fsync.
  wal = std::make_unique<wal::Writer>(nullptr, opt.fsync ? wal::SyncPolicy::kAlways : wal::SyncPolicy::kNever, seq + 1);
  return Status::OK();
}

Status DBImpl::EnsureLogFile() {
  if (!wal || wal_file_open.load(std::memory_order_acquire)) return Status::OK();
  return wal->RunExclusive([this] {
    if (wal_file_open.load()) return Status::OK();
    {
      MutexLock l(&wals_mu);
      if (!log_file_error.ok()) return log_file_error;
    }
    // A failure is sticky, as a failed WAL write is: every later commit
    // reports it (a new open tries again).
    Status s = NewLogFile();
    if (!s.ok()) {
      MutexLock l(&wals_mu);
      log_file_error = s;
    }
    return s;
  });
}

Status DBImpl::NewLogFile() {
  const uint64_t number = NewFileNumber();
  const std::string path = FilePath(files::FileType::kLog, number);
  POMAI_ASSIGN_OR_RETURN(auto file, env->NewWritableFile(path));
  Status s = env->SyncDir(opt.path);
  if (s.ok()) s = wal->SwitchFile(std::move(file));
  if (!s.ok()) {
    (void)env->RemoveFile(path);
    return s;
  }
  {
    MutexLock l(&wals_mu);
    live_wals.push_back(number);
  }
  wal_file_open.store(true, std::memory_order_release);
  return Status::OK();
}

Status DB::Close() {
  DBImpl& d = *impl_;
  if (d.closed.exchange(true)) return Status::OK();
  {
    MutexLock l(&d.bg_mu);
    d.bg_stop = true;
  }
  d.bg_cv.SignalAll();
  if (d.bg_thread.joinable()) d.bg_thread.join();
  if (d.compact_thread.joinable()) d.compact_thread.join();
  Status s;
  if (d.wal && !d.opt.fsync) s = d.wal->Sync();
  d.wal.reset();
  d.lock.reset();
  return s;
}

// ---------------------------------------------------------------------------
// Transactions

Txn::Txn(std::unique_ptr<TxnState> state) : state_(std::move(state)) {}
Txn::~Txn() {
  if (state_) state_->End();
}
bool Txn::active() const { return state_->active; }
TxnMode Txn::mode() const { return state_->mode; }

Result<std::unique_ptr<Txn>> DB::Begin(TxnMode mode) {
  DBImpl& d = *impl_;
  if (d.closed) return Status::Closed("database is closed");
  auto st = std::make_unique<TxnState>();
  st->db = &d;
  st->mode = mode;
  {
    // The layers are taken while no commit can publish a newer sequence
    // number (commits store last_seq under snap_mu), as PinnedSnapshot does:
    // taken after the lock, they could include a merged segment built after
    // a newer commit was flushed, which keeps only the newest version of a
    // key and so has lost the one this snapshot must see.
    MutexLock l(&d.snap_mu);
    st->snap = d.last_seq.load();
    st->reg = d.snapshots.insert(st->snap);
    st->layers = d.Current();
  }
  return std::unique_ptr<Txn>(new Txn(std::move(st)));
}

namespace {
// The internal key of user key `key` for a lookup: on the stack for keys up
// to 255 bytes (no allocation, no thread-local access per get).
class LookupKey {
 public:
  explicit LookupKey(std::string_view key) {
    if (key.size() < sizeof(buf_)) {
      buf_[0] = static_cast<char>(kUserNs);
      std::memcpy(buf_ + 1, key.data(), key.size());
      view_ = std::string_view(buf_, key.size() + 1);
    } else {
      long_ = UserKey(key);
      view_ = long_;
    }
  }
  LookupKey(const LookupKey&) = delete;
  LookupKey& operator=(const LookupKey&) = delete;
  std::string_view view() const { return view_; }

 private:
  char buf_[256];
  std::string long_;
  std::string_view view_;
};
}  // namespace

Status Txn::GetView(std::string_view key, std::string_view* value, bool* found) {
  TxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckActive());
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  VersionView v;
  POMAI_RETURN_IF_ERROR(t.Lookup(LookupKey(key).view(), &v, found));
  *found = *found && v.kind != ValueKind::kTombstone;
  *value = *found ? v.bytes : std::string_view();
  return Status::OK();
}

Status Txn::Get(std::string_view key, std::string* value, bool* found) {
  std::string_view view;
  POMAI_RETURN_IF_ERROR(GetView(key, &view, found));
  if (*found) value->assign(view.data(), view.size());
  return Status::OK();
}

Status Txn::Put(std::string_view key, std::string_view value) {
  TxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckWritable());
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  POMAI_RETURN_IF_ERROR(CheckValueSize(value.size(), "value"));
  auto v = std::make_shared<Value>();
  v->kind = ValueKind::kBytes;
  v->bytes.assign(value);
  t.writes[UserKey(key)] = std::move(v);
  return Status::OK();
}

Status Txn::Delete(std::string_view key) {
  TxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckWritable());
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  t.writes[UserKey(key)] = std::make_shared<Value>();
  return Status::OK();
}

namespace {
Status CheckMetric(simd::Metric m) {
  if (static_cast<uint32_t>(m) > 2)
    return Status::InvalidArgument("metric " + std::to_string(static_cast<uint32_t>(m)) +
                                   " is unknown (0 L2, 1 INNER_PRODUCT, 2 COSINE)");
  return Status::OK();
}

ValuePtr MakeVector(const float* vector, uint32_t dim, simd::Metric metric, const std::string_view* metadata,
                    std::string attrs = {}) {
  auto v = std::make_shared<Value>();
  v->attrs = std::move(attrs);
  v->kind = ValueKind::kVector;
  v->metric = metric;
  v->vec.assign(vector, vector + dim);
  if (metadata != nullptr) {
    v->has_metadata = true;
    v->bytes.assign(*metadata);
  }
  return v;
}
}  // namespace

Status Txn::UpsertVector(std::string_view key, const float* vector, uint32_t dim, simd::Metric metric,
                           const std::string_view* metadata) {
  TxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckWritable());
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  POMAI_RETURN_IF_ERROR(CheckMetric(metric));
  POMAI_RETURN_IF_ERROR(CheckVector(vector, dim));
  if (metadata != nullptr) POMAI_RETURN_IF_ERROR(CheckValueSize(metadata->size(), "metadata"));
  t.writes[UserKey(key)] = MakeVector(vector, dim, metric, metadata);
  return Status::OK();
}

Status Txn::GetVector(std::string_view key, simd::Metric metric, std::vector<float>* out) {
  TxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckActive());
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  POMAI_RETURN_IF_ERROR(CheckMetric(metric));
  VersionView v;
  bool found = false;
  POMAI_RETURN_IF_ERROR(t.Lookup(LookupKey(key).view(), &v, &found));
  if (!found || v.kind == ValueKind::kTombstone)
    return Status::NotFound("key '" + Printable(key) + "' not found");
  if (v.kind != ValueKind::kVector) return Status::NotFound("key '" + Printable(key) + "' holds bytes, not a vector");
  if (v.metric != metric)
    return Status::InvalidArgument("key '" + Printable(key) + "' holds a vector stored with metric " +
                                   MetricConstantName(v.metric) + ", not " + MetricConstantName(metric));
  out->assign(v.vec, v.vec + v.dim);
  return Status::OK();
}

namespace {

Status Mismatch(std::string_view ikey, const VersionView& v, uint32_t dim, simd::Metric metric) {
  return Status::InvalidArgument("key '" + Printable(ikey.substr(1)) + "' holds a vector of metric " +
                                 MetricConstantName(v.metric) + " and dimension " + std::to_string(v.dim) +
                                 " but the query has metric " + MetricConstantName(metric) + " and dimension " +
                                 std::to_string(dim));
}

// Whether segment `seg` has an entry (a row or a tombstone) in [lo, hi).
Status SegmentHasRows(const segment::SegmentFile& seg, std::string_view lo, std::string_view hi, bool* any) {
  uint64_t from = 0, to = 0;
  POMAI_RETURN_IF_ERROR(seg.LowerBound(lo, &from));
  POMAI_RETURN_IF_ERROR(seg.LowerBound(hi, &to));
  *any = from < to;
  return Status::OK();
}

// ---------------------------------------------------------------------------
// The keyspace's layers for the search executor (search.h): rows keyed by
// internal key, each able to give the version a hit returns.

class KeyLayer : public SearchLayer<std::string_view> {
 public:
  // The version row r shows (checked, for a segment).
  virtual Status Version(uint64_t r, VersionView* v) const = 0;

  // The layer's attribute columns, one slot per row, from its rows'
  // attribute records. A damaged record, or an attribute two rows hold with
  // different types (a commit never writes one: CheckIndexAttributes), is
  // Corruption.
  Status BuildAttributes(std::shared_ptr<const memtable::AttrColumns>* out) const;
  // Where the layer's columns may be cached: a segment group's (file
  // number, group); false for a memtable's rows.
  virtual bool CacheKey(std::pair<uint64_t, uint32_t>*) const { return false; }
  void set_attributes(std::shared_ptr<const memtable::AttrColumns> a) { attrs_ = std::move(a); }
  const memtable::AttrColumns& attributes() const { return *attrs_; }
  // Evaluates `f` (compiled against the layers' columns) into the pass
  // bitmap, or, when `defer` and the layer has a graph, binds it
  // (DeferFilter: the columns are held by the layer); requires
  // set_attributes.
  Status EvaluateFilter(const filter::Filter& f, bool defer);

 private:
  std::shared_ptr<const memtable::AttrColumns> attrs_;
};

Status KeyLayer::BuildAttributes(std::shared_ptr<const memtable::AttrColumns>* out) const {
  // One column of rows_ rows per name, appended row by row (few columns: a
  // linear search by name), then handed to AttrColumns at once.
  std::vector<AttrColumn> cols;
  std::vector<uint64_t> filled;  // rows appended to cols[i]
  auto fill = [&](size_t i, uint64_t rows) {
    for (; filled[i] < rows; ++filled[i]) cols[i].AppendNull();
  };
  for (uint64_t r = 0; r < rows_; ++r) {
    VersionView v;
    POMAI_RETURN_IF_ERROR(Version(r, &v));
    if (v.attrs.empty()) continue;
    wal::AttrRecordReader reader(v.attrs);
    wal::AttrValue a;
    while (reader.Next(&a)) {
      size_t i = 0;
      while (i < cols.size() && cols[i].name != a.name) ++i;
      if (i == cols.size()) {
        cols.push_back(AttrColumn::Make(std::string(a.name), a.type));
        filled.push_back(0);
      }
      const std::string row = "row " + std::to_string(r) + ": attribute '" + Printable(a.name) + "'";
      if (cols[i].type != a.type)
        return Status::Corruption(row + " is " + AttrTypeName(a.type) + ", an earlier row's is " +
                                  AttrTypeName(cols[i].type));
      if (filled[i] > r) return Status::Corruption(row + " twice");
      fill(i, r);
      switch (a.type) {
        case AttrType::kInt64: cols[i].AppendInt(a.i); break;
        case AttrType::kFloat64: cols[i].AppendFloat(a.f); break;
        case AttrType::kBool: cols[i].AppendBool(a.b); break;
        case AttrType::kString: cols[i].AppendString(a.str); break;
        case AttrType::kTags: {
          std::vector<std::string_view> tags(a.tags);
          for (size_t j = 0; j < a.tags; ++j) tags[j] = a.Tag(j);
          cols[i].AppendTags(tags.data(), tags.size());
          break;
        }
      }
      ++filled[i];
    }
    if (!reader.status().ok()) return Status::Corruption("row " + std::to_string(r) + ": " + reader.status().message());
  }
  for (size_t i = 0; i < cols.size(); ++i) fill(i, rows_);
  auto attrs = std::make_shared<memtable::AttrColumns>();
  attrs->Append(cols, rows_);  // with no column: rows_ rows of none
  *out = std::move(attrs);
  return Status::OK();
}

Status KeyLayer::EvaluateFilter(const filter::Filter& f, bool defer) {
  struct Source final : filter::ColumnSource {
    const KeyLayer& l;
    explicit Source(const KeyLayer& layer) : l(layer) {}
    uint64_t rows() const override { return l.rows(); }
    const uint64_t* ids() const override { return nullptr; }
    Status Column(std::string_view name, filter::ColumnRef* out, bool* present) const override {
      *present = l.attrs_->Get(name, out);
      return Status::OK();
    }
  };
  return ApplyFilter(f, Source(*this), defer && graph_ != nullptr);
}

// Rows given as versions, all visible: a transaction's own writes, the
// point reads of search_similar's filter keys, a collection's memtable rows.
// `holds` says whether the layer holds a version of a key (null: it hides
// nothing).
class VersionsLayer final : public KeyLayer {
 public:
  explicit VersionsLayer(std::function<bool(std::string_view)> holds) : holds_(std::move(holds)) {
    may_hide_ = holds_ != nullptr;
  }
  void Add(std::string_view key, const VersionView& v) {
    keys_.push_back(key);
    views_.push_back(v);
    rows_ = keys_.size();
  }
  Status Vectors(uint64_t begin, size_t n, const float** matrix, const float** ptrs) const override {
    *matrix = nullptr;
    for (size_t i = 0; i < n; ++i) ptrs[i] = views_[begin + i].vec;
    return Status::OK();
  }
  Status Row(uint64_t r, std::string_view* key, bool* visible) const override {
    *key = keys_[r];
    *visible = true;
    return Status::OK();
  }
  Status Holds(const std::string_view& key, bool* holds) const override {
    *holds = holds_(key);
    return Status::OK();
  }
  Status Version(uint64_t r, VersionView* v) const override {
    *v = views_[r];
    return Status::OK();
  }

 private:
  std::function<bool(std::string_view)> holds_;
  std::vector<std::string_view> keys_;
  std::vector<VersionView> views_;
};

// A memtable's user-keyspace vector versions visible at `snap`
// (KeyTable::VisibleVectors: rows of one dimension lie in runs, which the
// executor scores with ScoreMany). Held in one of this thread's two buffers
// (`slot`), so a query does not allocate and fault in memory in proportion
// to the rows; a buffer is kept between queries up to kKeepRows rows (about
// 3 MB) and freed after larger ones.
class MemVectorsLayer final : public KeyLayer {
 public:
  MemVectorsLayer(const KeyTable& m, uint64_t snap, int slot) : m_(m), snap_(snap), items_(Buffer(slot)) {
    m.VisibleVectors(snap, &items_);
    rows_ = items_.size();
    may_hide_ = !m.empty();
    all_visible_ = true;
  }
  ~MemVectorsLayer() override {
    if (items_.capacity() > kKeepRows) std::vector<KeyTable::VisibleVector>().swap(items_);
  }
  const std::vector<KeyTable::VisibleVector>& items() const { return items_; }
  // Keeps the rows of (dim, metric) only.
  void KeepOnly(uint32_t dim, simd::Metric metric) {
    items_.erase(std::remove_if(items_.begin(), items_.end(),
                                [&](const KeyTable::VisibleVector& x) { return x.dim != dim || x.metric != metric; }),
                 items_.end());
    rows_ = items_.size();
  }
  Status Vectors(uint64_t begin, size_t n, const float** matrix, const float** ptrs) const override {
    *matrix = nullptr;
    for (size_t i = 0; i < n; ++i) ptrs[i] = items_[begin + i].row;
    return Status::OK();
  }
  Status Row(uint64_t r, std::string_view* key, bool* visible) const override {
    *key = items_[r].key;
    *visible = true;
    return Status::OK();
  }
  Status Holds(const std::string_view& key, bool* holds) const override {
    VersionView v;
    *holds = m_.Get(key, snap_, &v);
    return Status::OK();
  }
  Status Version(uint64_t r, VersionView* v) const override {
    *v = ViewOf(items_[r].seq, *items_[r].value);
    return Status::OK();
  }

 private:
  static constexpr size_t kKeepRows = 65536;
  static std::vector<KeyTable::VisibleVector>& Buffer(int slot) {
    thread_local std::vector<KeyTable::VisibleVector> buffers[2];
    return buffers[slot];
  }
  const KeyTable& m_;
  uint64_t snap_;
  std::vector<KeyTable::VisibleVector>& items_;
};

// The rows of group `g` of segment `seg` (a record group, or a
// collection's group with its graph), or no rows when
// !has_group: the segment's keys still hide older layers when `may_hide`.
// Every row is read through its checked block and entry.
class EntryGroupLayer final : public KeyLayer {
 public:
  EntryGroupLayer(const segment::SegmentFile& seg, bool has_group, uint32_t g, uint64_t snap, bool may_hide)
      : seg_(seg), g_(g), snap_(snap) {
    rows_ = has_group ? seg.group(g).rows : 0;
    graph_ = has_group ? seg.graph(g) : nullptr;
    all_visible_ = !has_group || seg.group(g).max_seq <= snap;
    may_hide_ = may_hide;
  }
  Status Vectors(uint64_t begin, size_t n, const float** matrix, const float**) const override {
    const uint64_t per = seg_.group(g_).rows_per_block;
    for (uint64_t b = begin / per; b * per < begin + n; ++b) POMAI_RETURN_IF_ERROR(seg_.CheckBlock(g_, b));
    *matrix = seg_.vector(g_, begin);
    return Status::OK();
  }
  Status Row(uint64_t r, std::string_view* key, bool* visible) const override {
    segment::EntryView e;
    POMAI_RETURN_IF_ERROR(seg_.ReadRowEntry(g_, r, &e));
    *key = e.key;
    *visible = e.seq <= snap_;
    return Status::OK();
  }
  Status CheckRow(uint64_t r) const override { return seg_.CheckRow(g_, r); }
  bool CacheKey(std::pair<uint64_t, uint32_t>* key) const override {
    *key = {seg_.file_number(), g_};
    return rows_ > 0;
  }
  Status Holds(const std::string_view& key, bool* holds) const override {
    segment::EntryView e;
    POMAI_RETURN_IF_ERROR(seg_.Get(key, &e, holds));
    *holds = *holds && e.seq <= snap_;
    return Status::OK();
  }
  Status Version(uint64_t r, VersionView* v) const override {
    segment::EntryView e;
    POMAI_RETURN_IF_ERROR(seg_.ReadRowEntry(g_, r, &e));
    *v = ViewOfEntry(seg_, e);
    return Status::OK();
  }

 private:
  const segment::SegmentFile& seg_;
  uint32_t g_;
  uint64_t snap_;
};

// Runs the executor for one query over `layers` and converts its hits,
// best first; `prefix` bytes of each internal key are left out (the
// namespace byte of a record, a row's namespace and cid).
Status SearchKeyLayers(const std::vector<std::unique_ptr<KeyLayer>>& layers, const Searcher<std::string_view>& searcher,
                       SearchSpec spec, size_t prefix, bool return_vectors, std::vector<KeyHit>* out) {
  std::vector<std::vector<SearchHit<std::string_view>>> hits;
  POMAI_RETURN_IF_ERROR(searcher.Search(spec, &hits));
  out->clear();
  out->reserve(hits[0].size());
  for (const SearchHit<std::string_view>& c : hits[0]) {
    VersionView v;
    POMAI_RETURN_IF_ERROR(layers[c.layer]->Version(c.row, &v));
    KeyHit h;
    h.key.assign(c.key.substr(prefix));
    // The kernels give -||q - r||^2 for L2; the keyspace reports -||q - r||.
    h.score = spec.metric == simd::Metric::kL2 ? -std::sqrt(std::max(0.0f, -c.score)) : c.score;
    h.has_metadata = v.has_metadata;
    if (v.has_metadata) h.metadata.assign(v.bytes);
    if (return_vectors) h.vector.assign(v.vec, v.vec + v.dim);
    out->push_back(std::move(h));
  }
  return Status::OK();
}

Searcher<std::string_view> SearcherOf(const std::vector<std::unique_ptr<KeyLayer>>& layers) {
  std::vector<const SearchLayer<std::string_view>*> ptrs;
  for (const auto& l : layers) ptrs.push_back(l.get());
  return Searcher<std::string_view>(std::move(ptrs));
}

}  // namespace

Status Txn::SearchSimilar(const float* query, uint32_t dim, simd::Metric metric, uint32_t k,
                            const std::vector<std::string_view>* filter, bool return_vectors,
                            std::vector<KeyHit>* out) {
  TxnState& t = *state_;
  out->clear();
  POMAI_RETURN_IF_ERROR(t.CheckActive());
  POMAI_RETURN_IF_ERROR(CheckMetric(metric));
  POMAI_RETURN_IF_ERROR(CheckVector(query, dim, "query"));
  SearchSpec spec;
  spec.queries = query;
  spec.n = 1;
  spec.topks = &k;
  spec.dim = dim;
  spec.metric = metric;
  spec.pool = t.db->pool.get();
  std::vector<std::unique_ptr<KeyLayer>> layers;

  if (filter != nullptr) {
    // The filter keys' versions, read by point lookups: one layer of rows.
    std::vector<std::string> filter_keys;
    filter_keys.reserve(filter->size());
    for (std::string_view f : *filter) {
      POMAI_RETURN_IF_ERROR(CheckKey(f, "filter key"));
      filter_keys.push_back(UserKey(f));
    }
    std::sort(filter_keys.begin(), filter_keys.end());
    filter_keys.erase(std::unique(filter_keys.begin(), filter_keys.end()), filter_keys.end());
    auto points = std::make_unique<VersionsLayer>(nullptr);
    for (const std::string& ik : filter_keys) {
      VersionView v;
      bool found = false;
      POMAI_RETURN_IF_ERROR(t.Lookup(ik, &v, &found));
      if (!found || v.kind != ValueKind::kVector) continue;
      if (v.dim != dim || v.metric != metric) return Mismatch(ik, v, dim, metric);
      points->Add(ik, v);
    }
    layers.push_back(std::move(points));
    return SearchKeyLayers(layers, SearcherOf(layers), spec, 1, return_vectors, out);
  }

  // Layers, newest first: the transaction's own writes (every key of which
  // hides the older layers' versions), the memtables, the segments' record
  // groups of (dim, metric). A live vector of another dim or metric in any
  // layer is INVALID_ARGUMENT naming its key.
  const Layers& ls = *t.layers;
  const std::string lo(1, static_cast<char>(kUserNs)), hi(1, static_cast<char>(kUserNs + 1));
  auto own = std::make_unique<VersionsLayer>([&t](std::string_view key) { return t.writes.count(key) != 0; });
  bool own_keys = false;
  for (auto it = t.writes.lower_bound(lo); it != t.writes.end() && it->first < hi; ++it) {
    own_keys = true;
    const VersionView v = ViewOf(t.snap + 1, *it->second);
    if (v.kind != ValueKind::kVector) continue;
    if (v.dim != dim || v.metric != metric) return Mismatch(it->first, v, dim, metric);
    own->Add(it->first, v);
  }
  if (own_keys) layers.push_back(std::move(own));
  const size_t first_mem = layers.size();
  layers.push_back(std::make_unique<MemVectorsLayer>(ls.mem->keys(), t.snap, 0));
  if (ls.imm) layers.push_back(std::make_unique<MemVectorsLayer>(ls.imm->keys(), t.snap, 1));
  const size_t first_seg = layers.size();
  for (const auto& seg : ls.segs) {
    uint32_t g = 0;
    const bool has_group = seg->FindGroup(segment::GroupKind::kRecords, 0, dim, metric, &g);
    bool any = false;
    POMAI_RETURN_IF_ERROR(SegmentHasRows(*seg, lo, hi, &any));
    layers.push_back(std::make_unique<EntryGroupLayer>(*seg, has_group, g, t.snap, any));
  }
  const Searcher<std::string_view> searcher = SearcherOf(layers);
  bool hidden = false;
  for (size_t i = first_mem; i < first_seg; ++i) {
    auto& mem = static_cast<MemVectorsLayer&>(*layers[i]);
    for (const KeyTable::VisibleVector& x : mem.items()) {
      if (x.dim == dim && x.metric == metric) continue;
      POMAI_RETURN_IF_ERROR(searcher.Hidden(x.key, i, &hidden));
      if (!hidden) return Mismatch(x.key, ViewOf(x.seq, *x.value), dim, metric);
    }
    mem.KeepOnly(dim, metric);
  }
  for (size_t i = first_seg; i < layers.size(); ++i) {
    const segment::SegmentFile& seg = *ls.segs[i - first_seg];
    for (uint32_t gi = 0; gi < seg.group_count(); ++gi) {
      const segment::GroupInfo& g = seg.group(gi);
      if (g.kind != segment::GroupKind::kRecords || (g.dim == dim && g.metric == metric)) continue;
      for (uint64_t r = 0; r < g.rows; ++r) {
        segment::EntryView e;
        POMAI_RETURN_IF_ERROR(seg.ReadRowEntry(gi, r, &e));
        if (e.seq > t.snap) continue;
        POMAI_RETURN_IF_ERROR(searcher.Hidden(e.key, i, &hidden));
        if (!hidden) return Mismatch(e.key, ViewOfEntry(seg, e), dim, metric);
      }
    }
  }
  return SearchKeyLayers(layers, searcher, spec, 1, return_vectors, out);
}

Status Txn::IndexUpsert(std::string_view name, std::string_view key, const float* vector, uint32_t dim,
                          const std::string_view* metadata, const std::vector<AttrColumn>* attrs) {
  TxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckWritable());
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  const std::string ck = ConfigKey(name);
  VersionView v;
  IndexConfig config;
  bool found = false;
  POMAI_RETURN_IF_ERROR(t.Lookup(ck, &v, &found));
  if (!found) return IndexNotFound(name);
  POMAI_RETURN_IF_ERROR(DecodeIndexConfig(v, name, &config));
  if (dim != config.dim)
    return Status::InvalidArgument("dimension mismatch: expected " + std::to_string(config.dim) + ", got " +
                                   std::to_string(dim) + " (index '" +
                                   Printable(name) + "')");
  POMAI_RETURN_IF_ERROR(CheckVector(vector, dim));
  if (metadata != nullptr) POMAI_RETURN_IF_ERROR(CheckValueSize(metadata->size(), "metadata"));
  std::string record;
  if (attrs != nullptr && !attrs->empty()) {
    POMAI_RETURN_IF_ERROR(CheckAttrColumns(*attrs, 1));
    std::vector<AttrColumn> present;  // the non-null ones, by name, without validity
    for (const AttrColumn& c : *attrs) {
      if (!c.has_value(0)) continue;
      present.push_back(c);
      present.back().valid.clear();
    }
    std::sort(present.begin(), present.end(), [](const AttrColumn& a, const AttrColumn& b) { return a.name < b.name; });
    if (!present.empty()) record = wal::EncodeAttrRecord(present);
    POMAI_RETURN_IF_ERROR(CheckValueSize(record.size(), "attributes"));
  }
  // The cid is the config's seq.
  t.writes[RowKey(v.seq, key)] = MakeVector(vector, dim, config.metric, metadata, std::move(record));
  t.checks.insert(ck);
  return Status::OK();
}

Status Txn::IndexDelete(std::string_view name, std::string_view key) {
  TxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckWritable());
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  const std::string ck = ConfigKey(name);
  VersionView v;
  bool found = false;
  POMAI_RETURN_IF_ERROR(t.Lookup(ck, &v, &found));
  if (!found || v.kind != ValueKind::kBytes) return IndexNotFound(name);
  t.writes[RowKey(v.seq, key)] = std::make_shared<Value>();
  t.checks.insert(ck);
  return Status::OK();
}

Status Txn::Rollback() {
  POMAI_RETURN_IF_ERROR(state_->CheckActive());
  state_->End();
  return Status::OK();
}

Status Txn::Commit() {
  TxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckActive());
  if (t.writes.empty()) {
    t.End();
    return Status::OK();
  }
  std::vector<Write> writes;
  writes.reserve(t.writes.size());
  for (auto& [key, value] : t.writes) writes.push_back(Write{key, value});
  const uint64_t snap = t.snap;
  std::set<std::string, std::less<>> checks = std::move(t.checks);
  std::vector<KeyRange> ranges = std::move(t.scanned);
  t.End();  // the snapshot is released first: the commit's own versions need not be kept for it
  return t.db->CommitWrites(snap, writes, checks, ranges);
}

uint64_t DBImpl::UsedBytes(const Layers& l) const {
  uint64_t used = l.mem->bytes();
  if (l.imm) used += l.imm->bytes();
  for (const auto& s : l.segs) used += s->file_size();
  return used;
}

Status DBImpl::CommitWrites(uint64_t snap, const std::vector<Write>& writes,
                              const std::set<std::string, std::less<>>& checks, const std::vector<KeyRange>& ranges) {
  auto conflict = [] { return Status(Code::kConflict, "transaction conflict"); };  // built only when returned
  const uint64_t cost = WriteCost(writes);
  MutexLock l(&commit_mu);
  if (closed) return Status::Closed("database is closed");
  // A key is taken when a newer version is applied, or when a commit that
  // passed this check is still on its way through the WAL (pending).
  auto taken = [&](const std::string& key, const Layers& cur, bool* is_taken) {
    commit_mu.AssertHeld();
    POMAI_RETURN_IF_ERROR(ChangedSince(cur, key, snap, is_taken));
    *is_taken = *is_taken || pending.count(key) != 0;
    return Status::OK();
  };
  {
    std::shared_ptr<const Layers> cur = Current();
    bool is_taken = false;
    for (const Write& w : writes) {
      POMAI_RETURN_IF_ERROR(taken(w.key, *cur, &is_taken));
      if (is_taken) return conflict();
    }
    for (const std::string& c : checks) {
      POMAI_RETURN_IF_ERROR(taken(c, *cur, &is_taken));
      if (is_taken) return conflict();
    }
    for (const KeyRange& r : ranges) {
      POMAI_RETURN_IF_ERROR(RangeChangedSince(*cur, r.lo, r.hi, snap, &is_taken));
      auto p = pending.lower_bound(r.lo);
      if (is_taken || (p != pending.end() && p->first < r.hi)) return conflict();
    }
    if (opt.memory_limit_bytes != 0 && UsedBytes(*cur) + pending_bytes + cost > opt.memory_limit_bytes)
      return Status::ResourceExhausted("memory limit exceeded");
    POMAI_RETURN_IF_ERROR(CheckIndexAttributes(*cur, writes));  // last: it records the new attributes
  }
  // Runs in log order (disk: on the WAL group's leader thread). The
  // memtable is the current one at that moment: a flush switches memtables
  // and WAL files together, inside the WAL's exclusive section.
  uint64_t mem_bytes = 0;  // of the memtable this commit went to, once applied
  bool graph_flush = false;  // a collection's memtable rows call for a flush
  auto apply = [&](uint64_t seq) {
    MutexLock al(&apply_mu);
    std::shared_ptr<const Layers> cur = Current();
    {
      // No transaction begins between choosing which old versions to drop
      // and publishing seq, so none can need a dropped one.
      MutexLock sl(&snap_mu);
      const uint64_t min_snap = snapshots.empty() ? seq : std::min(seq, *snapshots.begin());
      cur->mem->keys().Apply(seq, writes, min_snap);
      mem_bytes = cur->mem->bytes();  // both tables: a database may hold both faces' writes
      last_seq.store(seq);
    }
    graph_flush = CountRowWrites(*cur, writes);
  };
  Status s;
  if (!wal) {
    apply(last_seq.load() + 1);
  } else {
    // Leave the commit lock while the record is written (and synced), so
    // that concurrent commits share one write and one fdatasync.
    for (const Write& w : writes) ++pending[w.key];
    pending_bytes += cost;
    l.Unlock();
    std::string payload = EncodeCommit(writes);
    if (payload.size() > wal::kMaxPayload) {
      s = Status::InvalidArgument("transaction of " + std::to_string(payload.size()) +
                                  " bytes exceeds the 1 GiB commit limit");
    } else {
      s = EnsureLogFile();
      if (s.ok()) s = wal->Commit(static_cast<uint8_t>(wal::RecordType::kWriteBatch), payload, apply);
    }
    l.Lock();
    for (const Write& w : writes) {
      auto it = pending.find(w.key);
      if (--it->second == 0) pending.erase(it);
    }
    pending_bytes -= cost;
  }
  const bool over = mem_bytes > opt.memtable_budget_bytes || graph_flush;
  l.Unlock();
  if (s.ok() && over) MaybeScheduleFlush();
  return s;
}

// ---------------------------------------------------------------------------
// Flush and merge

void DBImpl::MaybeScheduleFlush() {
  MutexLock l(&bg_mu);
  if (bg_pending) return;
  bg_pending = true;
  bg_cv.SignalAll();
}

Status DBImpl::CheckWritable(const char* what) const {
  if (!wal || wal->sticky_error().ok()) return Status::OK();
  return Status(wal->sticky_error().code(), std::string("database refuses ") + what +
                                                " after a failed log write: " + wal->sticky_error().message());
}

void DBImpl::MergeIfStalled() {
  if (Current()->segs.size() <= kStallSegmentsPerMax * opt.max_segments) return;
  // Writers outpace the merges: the caller runs them now, so that the
  // segments a read visits stay bounded (a failed merge changes nothing).
  MutexLock c(&compact_mu);
  (void)MergeLocked(false, nullptr);
}

void DBImpl::ScheduleCompaction() {
  MutexLock l(&bg_mu);
  compact_pending = true;
  bg_cv.SignalAll();
}

void DBImpl::BackgroundLoop() {
  MutexLock l(&bg_mu);
  for (;;) {
    while (!bg_stop && !bg_pending) bg_cv.Wait(&bg_mu);
    if (bg_stop) return;
    // A request made while this flush runs (its commits went to the next
    // memtable) schedules the next one.
    bg_pending = false;
    bg_flushing = true;
    l.Unlock();
    bool flushed = false;
    {
      // A failure leaves the frozen memtable (and, on disk, its WAL file) in
      // place: nothing is lost, and the next trigger (a commit over the
      // budget, or Flush(), which returns its own result) writes it again.
      MutexLock f(&flush_mu);
      flushed = FlushLocked().ok();
    }
    // Writers feel a stall through the budget (back-pressure waits for the pending flush).
    if (flushed) MergeIfStalled();
    l.Lock();
    bg_flushing = false;
    bg_cv.SignalAll();  // writers held back by the budget
    if (flushed) compact_pending = true;  // the merge runs on its own thread: the next flush need not wait for it
  }
}

void DBImpl::CompactionLoop() {
  MutexLock l(&bg_mu);
  for (;;) {
    while (!bg_stop && (!compact_pending || TEST_merges_paused)) bg_cv.Wait(&bg_mu);
    if (bg_stop) return;
    compact_pending = false;
    l.Unlock();
    {
      // A failed merge leaves its inputs in place; the next flush asks again.
      MutexLock c(&compact_mu);
      (void)MergeLocked(false, nullptr);
    }
    l.Lock();
  }
}

Status DB::Flush(const ProgressFn& progress) {
  DBImpl& d = *impl_;
  if (d.opt.in_memory) return Status::InvalidArgument("in-memory database cannot be flushed");
  if (d.closed) return Status::Closed("database is closed");
  {
    MutexLock f(&d.flush_mu);
    POMAI_RETURN_IF_ERROR(d.FlushAllLocked(progress));
  }
  // The flush is done and durable; the merges the policy asks for run on
  // the compaction thread (a failed one changes nothing and is retried after
  // the next flush). Past the stall trigger they run here first: a process
  // that opens, writes, flushes and closes (its close does not wait for
  // merges it has not started) would otherwise add segments without bound.
  d.MergeIfStalled();
  d.ScheduleCompaction();
  return Status::OK();
}

Status DB::Compact(bool force, const ProgressFn& progress) {
  DBImpl& d = *impl_;
  if (d.closed) return Status::Closed("database is closed");
  MutexLock c(&d.compact_mu);
  return d.MergeLocked(force, progress);
}

Status DBImpl::FlushAllLocked(const std::function<void(uint64_t, uint64_t)>& progress) {
  // A memtable left frozen by a failed flush is written first, then the
  // current one.
  const bool leftover = Current()->imm != nullptr;
  POMAI_RETURN_IF_ERROR(FlushLocked(progress));
  if (leftover) POMAI_RETURN_IF_ERROR(FlushLocked(progress));
  return Status::OK();
}

Status DBImpl::FlushLocked(const std::function<void(uint64_t, uint64_t)>& progress) {
  std::shared_ptr<const Layers> frozen;
  {
    MutexLock l(&commit_mu);
    std::shared_ptr<const Layers> cur = Current();
    if (cur->imm) {
      // A failed flush left its memtable frozen: write that one first.
      frozen = cur;
    } else {
      if (cur->mem->empty()) return Status::OK();
      // The next memtable, its row set's id index sized for as many rows as
      // the one it replaces, made before commits are held up (a growing
      // index rehashes every id while a write waits). No row set appears
      // meanwhile: OpenDefaultCollection adds it under commit_mu.
      auto next_mem = std::make_shared<MemTable>();
      if (const RowSet* rows = cur->mem->rows()) {
        RowSet* next_rows = next_mem->AddRows(rows->cid, rows->dim, row_cache);
        size_t n = 0;
        {
          ReaderLock r(&rows->mu);
          n = rows->table.rows();
        }
        WriterLock w(&next_rows->mu);
        next_rows->table.Reserve(n);
      }
      auto freeze = [&]() -> Status {
        flush_mu.AssertHeld();
        // Staged rows of a failed log write are unpublished: they must never
        // reach a segment (the database refuses writes and flushes from then on).
        POMAI_RETURN_IF_ERROR(CheckWritable("flushes"));
        std::shared_ptr<const Layers> now = Current();
        auto next = std::make_shared<Layers>(*now);
        next->imm = now->mem;
        next->mem = std::move(next_mem);
        imm_seq = last_seq.load();
        {
          // No commit is being applied (the commit lock, and on disk the WAL's exclusive section).
          MutexLock a(&apply_mu);
          mem_rows.clear();
        }
        Publish(next);
        frozen = next;
        return Status::OK();
      };
      if (!wal) {
        // In memory: commits are applied under commit_mu, which we hold.
        POMAI_RETURN_IF_ERROR(freeze());
      } else {
        // The WAL file and the memtable switch together while no commit is
        // being written or applied: the records of the old file are exactly
        // the versions of the frozen memtable.
        POMAI_RETURN_IF_ERROR(wal->RunExclusive([&]() -> Status {
          flush_mu.AssertHeld();
          POMAI_RETURN_IF_ERROR(NewLogFile());
          {
            MutexLock m(&wals_mu);
            imm_log_number = live_wals.back();
          }
          return freeze();
        }));
      }
    }
  }
  const uint64_t log_number = imm_log_number, flush_seq = imm_seq;
  const KeyTable& imm = frozen->imm->keys();
  std::vector<SegmentInput> inputs;
  imm.Newest([&](const std::string& key, uint64_t seq, const Value& v) { inputs.push_back({key, ViewOf(seq, v)}); });
  // The collections live in the current view get graphs (a row of another
  // cid belongs to a dropped or replaced collection: merges drop it).
  std::map<uint64_t, CollectionConfig> live;
  uint64_t newest_config_change = 0;
  {
    const std::shared_ptr<const Layers> cur = Current();
    POMAI_RETURN_IF_ERROR(
        LiveCollections(cur->mem.get(), cur->imm.get(), cur->segs, last_seq.load(), &live, &newest_config_change));
  }
  GraphBuild gb;
  gb.live = &live;
  gb.pool = pool.get();
  gb.progress = &progress;
  gb.builds = &graph_builds;
  gb.stop = &closed;  // Close() does not wait for graphs nobody will search
  std::vector<U64Group> u64s;
  if (const RowSet* frozen_rows = frozen->imm->rows()) {
    const RowSet& rs = *frozen_rows;
    U64Group* rows = &u64s.emplace_back();
    rows->cid = rs.cid;
    rows->dim = rs.dim;
    // The metric is the configuration's (a dead collection's rows are written without a graph).
    auto c = live.find(rs.cid);
    rows->metric = c != live.end() ? c->second.metric : rows_opt.metric;
    {
      ReaderLock r(&rs.mu);
      rows->rows = rs.table.SortedContents();
    }
    RowGraphSettings(*this, live, rows);
  }
  const uint64_t number = NewFileNumber();
  const std::string name = files::FileName(files::FileType::kSegment, number);
  Status s = WriteSegment(env, opt.path, number, inputs, gb, u64s);
  std::shared_ptr<const segment::SegmentFile> seg;
  if (s.ok()) {
    auto r = segment::SegmentFile::Open(env, JoinPath(opt.path, name));
    if (r.ok()) {
      seg = std::move(r).value();
    } else {
      s = r.status();
    }
  }
  std::vector<uint64_t> obsolete;
  bool manifest_tried = false;
  if (s.ok()) {
    // The segment stands for the seqs after the last flush up to the frozen
    // memtable's last one (docs/ENGINE.md 3.5).
    MutexLock m(versions->install_mu());
    manifest_tried = true;
    VersionEdit edit;
    edit.log_number = log_number;
    edit.last_seq = flush_seq;
    edit.added.push_back({number, seg->file_size(), versions->current()->last_seq + 1, flush_seq});
    s = versions->LogAndApply(&edit);
  }
  if (s.ok()) {
    MutexLock w(&wals_mu);
    for (uint64_t n : live_wals) {
      if (n < log_number) obsolete.push_back(n);
    }
    live_wals.erase(std::remove_if(live_wals.begin(), live_wals.end(), [&](uint64_t n) { return n < log_number; }),
                    live_wals.end());
  }
  if (!s.ok()) {
    // The frozen memtable stays readable as imm (and its WAL files stay
    // live) until a later flush writes it. A failed LogAndApply may have
    // made its edit durable all the same (the record written, its sync
    // failed): the segment it names must stay. The next recovery removes
    // it if the manifest does not name it.
    if (!manifest_tried) (void)env->RemoveFile(JoinPath(opt.path, name));
    return s;
  }
  {
    MutexLock l(&commit_mu);  // the active memtable does not change under us
    std::shared_ptr<const Layers> cur = Current();
    auto next = std::make_shared<Layers>(*cur);
    next->imm.reset();
    next->segs.insert(next->segs.begin(), seg);
    Publish(next);
  }
  for (uint64_t w : obsolete) (void)env->RemoveFile(FilePath(files::FileType::kLog, w));
  return Status::OK();
}

Status DBImpl::MergeLocked(bool force, const ProgressFn& progress) {
  // The policy may ask for several merges in a row; a forced merge is one.
  for (bool merged = true; merged;) {
    POMAI_RETURN_IF_ERROR(MergeRunLocked(force, progress, &merged));
    if (force) force = merged = false;
  }
  return Status::OK();
}

namespace {

// Whether segment `seg` holds something a merge of it alone would drop:
// tombstones (u64 groups' or entries) or rows of a collection not in `live`.
Status HoldsGarbage(const segment::SegmentFile& seg, const std::map<uint64_t, CollectionConfig>& live,
                    bool drop_dead_rows, bool* garbage) {
  *garbage = false;
  for (uint32_t g = 0; g < seg.group_count() && !*garbage; ++g) {
    const segment::GroupInfo& info = seg.group(g);
    if (info.kind == segment::GroupKind::kRecords) continue;
    *garbage = info.tombstones > 0 || (drop_dead_rows && !live.count(info.cid));
  }
  for (uint64_t i = 0; i < seg.entry_count() && !*garbage; ++i) {
    segment::EntryView e;
    POMAI_RETURN_IF_ERROR(seg.ReadEntry(i, &e));
    *garbage = e.kind == segment::EntryKind::kTombstone;
  }
  return Status::OK();
}

// The u64 groups of collection (cid, dim, metric) in the run `in` (newest
// first) merged into `out`: each id's newest version; a tombstone kept
// unless `drop_tombstones` says so for its seq. Every block of every input
// group is checked before anything is copied, and the graph it starts from
// (the largest input's) is checked whole.
Status MergeU64Groups(const std::vector<std::shared_ptr<const segment::SegmentFile>>& in, uint64_t cid, uint32_t dim,
                      simd::Metric metric, const std::function<bool(uint64_t seq)>& drop_tombstone, U64Group* out) {
  out->cid = cid;
  out->dim = dim;
  out->metric = metric;
  struct Version {
    uint64_t id;
    uint32_t rank;  // the input's index in the run: lower is newer
    bool tombstone;
    uint64_t row_or_seq;
  };
  std::vector<Version> versions;
  std::vector<int64_t> group(in.size(), -1);
  size_t largest = in.size();
  for (size_t r = 0; r < in.size(); ++r) {
    const segment::SegmentFile& seg = *in[r];
    uint32_t g = 0;
    if (!seg.FindGroup(segment::GroupKind::kU64, cid, dim, metric, &g)) continue;
    group[r] = g;
    const segment::GroupInfo& info = seg.group(g);
    for (uint64_t b = 0; b < info.blocks(); ++b) POMAI_RETURN_IF_ERROR(seg.CheckBlock(g, b));
    const uint64_t *tomb_ids = nullptr, *tomb_seqs = nullptr;
    POMAI_RETURN_IF_ERROR(seg.Tombstones(g, &tomb_ids, &tomb_seqs));
    const uint64_t* ids = seg.ids(g);
    for (uint64_t row = 0; row < info.rows; ++row) versions.push_back({ids[row], static_cast<uint32_t>(r), false, row});
    for (uint64_t t = 0; t < info.tombstones; ++t)
      versions.push_back({tomb_ids[t], static_cast<uint32_t>(r), true, tomb_seqs[t]});
    if (seg.graph(g) != nullptr && (largest == in.size() || info.rows > in[largest]->group(group[largest]).rows))
      largest = r;
  }
  std::sort(versions.begin(), versions.end(),
            [](const Version& a, const Version& b) { return a.id < b.id || (a.id == b.id && a.rank < b.rank); });
  if (largest < in.size()) {
    const segment::SegmentFile& seg = *in[largest];
    const uint32_t g = static_cast<uint32_t>(group[largest]);
    POMAI_RETURN_IF_ERROR(seg.CheckGraph(g));
    out->base = seg.graph(g);
    out->new_row.assign(seg.group(g).rows, index::kNoRow);
  }
  RowTable::Sorted& m = out->rows;
  m.meta_offsets.push_back(0);
  // The attribute columns: every column of any input group (a row of a
  // group without one is null there), each input's checked before use.
  std::map<std::string, AttrType, std::less<>> names;
  for (size_t r = 0; r < in.size(); ++r) {
    if (group[r] < 0) continue;
    std::vector<std::pair<std::string, AttrType>> cols;
    POMAI_RETURN_IF_ERROR(in[r]->AttrColumns(static_cast<uint32_t>(group[r]), &cols));
    for (const auto& [name, type] : cols) {
      auto [it, fresh] = names.emplace(name, type);
      if (!fresh && it->second != type)
        return Status::Corruption(in[r]->path() + ": attribute column '" + Printable(name) + "' is " +
                                  AttrTypeName(type) + " where another segment has it as " + AttrTypeName(it->second));
    }
  }
  std::vector<filter::ColumnRef> refs(in.size() * names.size());
  std::vector<uint8_t> present(in.size() * names.size(), 0);
  for (const auto& [name, type] : names) m.columns.push_back(AttrColumn::Make(name, type));
  for (size_t r = 0; r < in.size(); ++r) {
    if (group[r] < 0) continue;
    for (size_t c = 0; c < m.columns.size(); ++c) {
      bool has = false;
      POMAI_RETURN_IF_ERROR(
          in[r]->Column(static_cast<uint32_t>(group[r]), m.columns[c].name, &refs[r * names.size() + c], &has));
      present[r * names.size() + c] = has;
    }
  }
  for (size_t i = 0; i < versions.size(); ++i) {
    if (i > 0 && versions[i].id == versions[i - 1].id) continue;  // an older version
    const Version& v = versions[i];
    if (v.tombstone) {
      if (!drop_tombstone(v.row_or_seq)) {
        m.tombstones.push_back(v.id);
        m.tombstone_seqs.push_back(v.row_or_seq);
      }
      continue;
    }
    const segment::SegmentFile& seg = *in[v.rank];
    const uint32_t g = static_cast<uint32_t>(group[v.rank]);
    const uint64_t row = v.row_or_seq;
    POMAI_ASSIGN_OR_RETURN(std::string_view meta, seg.Metadata(g, row));
    if (v.rank == largest) out->new_row[row] = static_cast<uint32_t>(m.ids.size());
    m.ids.push_back(v.id);
    m.seqs.push_back(seg.seqs(g)[row]);
    const float* vec = seg.vector(g, row);
    m.vectors.insert(m.vectors.end(), vec, vec + dim);
    m.meta_blob.append(meta);
    m.meta_offsets.push_back(m.meta_blob.size());
    for (size_t c = 0; c < m.columns.size(); ++c) {
      const size_t at = v.rank * names.size() + c;
      filter::AppendRow(refs[at], present[at] != 0, row, &m.columns[c]);
    }
  }
  return Status::OK();
}

// Where merge run `in` (consecutive segments, newest first) starts in
// `layers`' segments, or -1 when they do not hold it in that order.
std::ptrdiff_t FindRun(const Layers& layers, const std::vector<std::shared_ptr<const segment::SegmentFile>>& in) {
  const auto first = std::find(layers.segs.begin(), layers.segs.end(), in.front());
  if (first == layers.segs.end() || layers.segs.end() - first < static_cast<std::ptrdiff_t>(in.size()) ||
      !std::equal(in.begin(), in.end(), first))
    return -1;
  return first - layers.segs.begin();
}

}  // namespace

Status DBImpl::MergeRunLocked(bool force, const ProgressFn& progress, bool* merged) {
  *merged = false;
  // A flush may run meanwhile (and a failed one may have left its memtable
  // frozen): it only adds segments above every one read here.
  std::shared_ptr<const Layers> cur = Current();

  // Snapshots and collections (docs/ENGINE.md 4.7). A tombstone is dropped
  // only when the run reaches the oldest segment (nothing older is left for
  // it to hide) and no live transaction began before it (that one's commit
  // must still see the delete as a newer version of the key). Rows of a
  // collection no current configuration names are dropped when every live
  // transaction began after the newest configuration change.
  uint64_t oldest_snapshot = 0;
  {
    MutexLock l(&snap_mu);
    oldest_snapshot = snapshots.empty() ? last_seq.load() : *snapshots.begin();
  }
  // The configurations the segments hold decide what is dead, not the
  // memtables': a drop still in a memtable may not be durable (fsync never:
  // a power cut can take it back), while the merge's output is, and rows it
  // left out could not come back.
  std::map<uint64_t, CollectionConfig> live;
  uint64_t newest_config_change = 0;
  POMAI_RETURN_IF_ERROR(LiveCollections(nullptr, nullptr, cur->segs, last_seq.load(), &live, &newest_config_change));
  const bool drop_dead_rows = oldest_snapshot >= newest_config_change;

  std::vector<uint64_t> weights;
  for (const auto& seg : cur->segs) {
    uint64_t w = seg->entry_count() + 1;
    for (uint32_t g = 0; g < seg->group_count(); ++g)
      if (seg->group(g).kind == segment::GroupKind::kU64) w += seg->group(g).rows + seg->group(g).tombstones;
    weights.push_back(w);
  }
  bool lone_garbage = false;
  if (force && cur->segs.size() == 1)
    POMAI_RETURN_IF_ERROR(HoldsGarbage(*cur->segs[0], live, drop_dead_rows, &lone_garbage));
  const MergeRun run = PickMergeRun(weights, opt.max_segments, force, lone_garbage);
  if (run.count == 0) return Status::OK();
  const bool reaches_oldest = run.first + run.count == cur->segs.size();
  const std::vector<std::shared_ptr<const segment::SegmentFile>> in(
      cur->segs.begin() + static_cast<std::ptrdiff_t>(run.first),
      cur->segs.begin() + static_cast<std::ptrdiff_t>(run.first + run.count));

  // k-way merge of the run's entries, newest version per key (the run is
  // newest first). Every entry read is checked whole (ReadEntry: its CRC, a
  // vector's block): a damaged one fails the merge before anything is written.
  const size_t n = in.size();
  std::vector<uint64_t> pos(n, 0);
  std::vector<segment::EntryView> head(n);
  auto load = [&](size_t i) -> Status {
    if (pos[i] >= in[i]->entry_count()) return Status::OK();
    const std::string_view prev = head[i].key;
    POMAI_RETURN_IF_ERROR(in[i]->ReadEntry(pos[i], &head[i]));
    if (pos[i] > 0 && !(prev < head[i].key))
      return Status::Corruption(in[i]->path() + ": entry " + std::to_string(pos[i]) + "'s key is not above the previous one");
    return Status::OK();
  };
  for (size_t i = 0; i < n; ++i) POMAI_RETURN_IF_ERROR(load(i));
  std::vector<SegmentInput> inputs;
  for (;;) {
    int best = -1;
    for (size_t i = 0; i < n; ++i) {
      if (pos[i] < in[i]->entry_count() && (best < 0 || head[i].key < head[best].key)) best = static_cast<int>(i);
    }
    if (best < 0) break;
    const SegmentInput next{head[best].key, ViewOfEntry(*in[best], head[best]), best, head[best].group, head[best].row};
    for (size_t i = 0; i < n; ++i) {
      if (pos[i] < in[i]->entry_count() && head[i].key == next.key) {
        ++pos[i];
        POMAI_RETURN_IF_ERROR(load(i));
      }
    }
    uint64_t cid = 0;
    std::string_view row_key;
    if (drop_dead_rows && ParseRowKey(next.key, &cid, &row_key) && !live.count(cid)) continue;
    if (next.v.kind == ValueKind::kTombstone && reaches_oldest && next.v.seq <= oldest_snapshot) continue;
    inputs.push_back(next);
  }

  // The u64 collections' groups, one merged group each (a dead one's rows dropped).
  std::set<std::tuple<uint64_t, uint32_t, simd::Metric>> u64_groups;
  for (const auto& seg : in)
    for (uint32_t g = 0; g < seg->group_count(); ++g)
      if (seg->group(g).kind == segment::GroupKind::kU64)
        u64_groups.emplace(seg->group(g).cid, seg->group(g).dim, seg->group(g).metric);
  std::vector<U64Group> u64s;
  for (const auto& [cid, dim, metric] : u64_groups) {
    if (drop_dead_rows && !live.count(cid)) continue;
    U64Group& g = u64s.emplace_back();
    POMAI_RETURN_IF_ERROR(MergeU64Groups(
        in, cid, dim, metric, [&](uint64_t seq) { return reaches_oldest && seq <= oldest_snapshot; }, &g));
    RowGraphSettings(*this, live, &g);
    if (g.rows.ids.empty() && g.rows.tombstones.empty()) u64s.pop_back();
  }

  std::shared_ptr<const segment::SegmentFile> out;
  uint64_t number = 0;
  if (!inputs.empty() || !u64s.empty()) {
    number = NewFileNumber();
    GraphBuild gb;
    gb.live = &live;
    gb.from = &in;
    gb.pool = pool.get();
    gb.progress = &progress;
    gb.builds = &graph_builds;
    gb.stop = &closed;
    POMAI_RETURN_IF_ERROR(WriteSegment(env, opt.path, number, inputs, gb, u64s));
    auto opened = segment::SegmentFile::Open(env, FilePath(files::FileType::kSegment, number));
    if (!opened.ok()) {
      (void)env->RemoveFile(FilePath(files::FileType::kSegment, number));
      return opened.status();
    }
    out = std::move(opened).value();
  }
  {
    // The merged segment stands for the union of its inputs' seq intervals
    // (adjacent in the interval order). On failure the edit may be durable
    // all the same (see FlushLocked): the merged segment stays for the next
    // recovery to keep or remove.
    MutexLock m(versions->install_mu());
    // Only merges take segments out of the view, and they hold compact_mu;
    // checked before the edit is logged all the same, so that a broken rule
    // fails the merge instead of making the manifest and the view disagree.
    if (FindRun(*Current(), in) < 0) {
      if (out) (void)env->RemoveFile(FilePath(files::FileType::kSegment, number));
      return Status::Internal("merge run of " + in.front()->path() + " is no longer in the current view");
    }
    VersionEdit edit;
    SegmentMeta meta{number, out ? out->file_size() : 0, UINT64_MAX, 0};
    const std::vector<SegmentMeta>& live_segments = versions->current()->segments;
    for (const auto& seg : in) {
      auto live = std::find_if(live_segments.begin(), live_segments.end(),
                               [&](const SegmentMeta& m) { return m.number == seg->file_number(); });
      if (live == live_segments.end()) return Status::Internal("merge input " + seg->path() + " is not in the manifest");
      edit.removed.push_back(live->number);
      meta.first_seq = std::min(meta.first_seq, live->first_seq);
      meta.last_seq = std::max(meta.last_seq, live->last_seq);
    }
    if (out) edit.added.push_back(meta);
    POMAI_RETURN_IF_ERROR(versions->LogAndApply(&edit));
  }
  {
    MutexLock l(&commit_mu);
    auto next = std::make_shared<Layers>(*Current());
    // Flushes installed since the run was read put their segments in front
    // of it (checked above; flushes only add segments).
    const auto first = next->segs.begin() + FindRun(*next, in);
    auto at = next->segs.erase(first, first + static_cast<std::ptrdiff_t>(in.size()));
    if (out) next->segs.insert(at, out);
    Publish(next);
  }
  // Readers still holding the old segments keep their mappings alive.
  for (const auto& seg : in) (void)env->RemoveFile(FilePath(files::FileType::kSegment, seg->file_number()));
  *merged = true;
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Memory, indexes, test hooks

MemoryStats DB::MemoryUsage() {
  DBImpl& d = *impl_;
  MemoryStats m;
  m.used_bytes = d.UsedBytes(*d.Current());
  m.total_bytes = d.opt.memory_limit_bytes ? d.opt.memory_limit_bytes : PhysicalMemory();
  m.free_bytes = m.total_bytes > m.used_bytes ? m.total_bytes - m.used_bytes : 0;
  return m;
}

size_t DB::TEST_SegmentCount() { return impl_->Current()->segs.size(); }
void DB::TEST_PauseBackgroundMerges(bool paused) {
  MutexLock l(&impl_->bg_mu);
  impl_->TEST_merges_paused = paused;
  impl_->bg_cv.SignalAll();
}
uint64_t DB::TEST_LastSequence() { return impl_->last_seq.load(); }
void DB::TEST_WaitForBackgroundFlush() {
  DBImpl& d = *impl_;
  MutexLock l(&d.bg_mu);
  while ((d.bg_pending || d.bg_flushing) && !d.bg_stop) d.bg_cv.Wait(&d.bg_mu);
}

namespace {

// The end of the key range of `prefix`: the shortest key above every key
// that starts with it (trailing 0xff bytes carry: the rows of cid 255 end at
// 0x02 + BE64(256)). Never empty for a row prefix, whose first byte is 0x02.
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<uint8_t>(prefix.back()) == 0xFF) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<uint8_t>(prefix.back()) + 1);
  return prefix;
}

Status CheckIndexConfig(const IndexConfig& c) {
  if (!CheckDim(c.dim, "index").ok())
    return Status::InvalidArgument("invalid parameter dimension: must be between 1 and 65535 (got " +
                                   std::to_string(c.dim) + ")");
  POMAI_RETURN_IF_ERROR(index::CheckHnswParams(c.m, c.ef_construction));
  if (static_cast<uint32_t>(c.metric) > 2)
    return Status::InvalidArgument("invalid parameter metric: must be 0 (L2), 1 (INNER_PRODUCT) or 2 (COSINE) (got " +
                                   std::to_string(static_cast<uint32_t>(c.metric)) + ")");
  return Status::OK();
}

}  // namespace

// A registered snapshot, released at destruction.
struct PinnedSnapshot {
  DBImpl* db;
  uint64_t snap;
  std::shared_ptr<const Layers> layers;
  std::multiset<uint64_t>::iterator reg;
  explicit PinnedSnapshot(DBImpl* d) : db(d) {
    MutexLock l(&db->snap_mu);
    snap = db->last_seq.load();
    reg = db->snapshots.insert(snap);
    layers = db->Current();
  }
  ~PinnedSnapshot() {
    MutexLock l(&db->snap_mu);
    db->snapshots.erase(reg);
  }
};

namespace {

// The collection named `name` at `snap` in `layers`: its cid and configuration.
Status FindCollection(const Layers& layers, uint64_t snap, std::string_view name, uint64_t* cid, IndexConfig* config) {
  VersionView cv;
  bool found = false;
  POMAI_RETURN_IF_ERROR(LookupLayers(layers, ConfigKey(name), snap, &cv, &found));
  if (!found) return IndexNotFound(name);
  POMAI_RETURN_IF_ERROR(DecodeIndexConfig(cv, name, config));
  *cid = cv.seq;
  return Status::OK();
}

// Whether memtable `m` holds a version of a row of the collection whose row
// keys are [lo, hi) at `snap`; with `vectors`, only a vector counts.
bool MemtableHasRows(const KeyTable& m, std::string_view lo, std::string_view hi, uint64_t snap, bool vectors) {
  bool any = false;
  m.Scan(lo, hi, snap, [&](std::string_view, const VersionView& v) { any = any || !vectors || v.kind == ValueKind::kVector; });
  return any;
}

// The rows of one collection in a view, newest layer first: which layers
// hold any of its rows, so that a row is checked against a newer layer
// (Hidden) only when that layer could hide it.
class CollectionView {
 public:
  CollectionView(const Layers& layers, uint64_t snap, uint64_t cid)
      : layers_(layers), snap_(snap), lo_(RowPrefix(cid)), hi_(PrefixEnd(lo_)) {}

  Status Init() {
    mem_rows_ = MemtableHasRows(layers_.mem->keys(), lo_, hi_, snap_, false);
    imm_rows_ = layers_.imm && MemtableHasRows(layers_.imm->keys(), lo_, hi_, snap_, false);
    seg_rows_.assign(layers_.segs.size(), false);
    for (size_t i = 0; i < layers_.segs.size(); ++i) {
      bool any = false;
      POMAI_RETURN_IF_ERROR(SegmentHasRows(*layers_.segs[i], lo_, hi_, &any));
      seg_rows_[i] = any;
    }
    return Status::OK();
  }
  const std::string& lo() const { return lo_; }
  const std::string& hi() const { return hi_; }

  bool mem_rows() const { return mem_rows_; }
  bool imm_rows() const { return imm_rows_; }
  bool segment_rows(size_t i) const { return seg_rows_[i]; }
  // Every row version of the memtables visible at snap (mem's hide imm's),
  // tombstones included, in key order per memtable.
  void ForEachMemtableRow(const std::function<void(std::string_view key, const VersionView& v)>& fn) const {
    if (mem_rows_) layers_.mem->keys().Scan(lo_, hi_, snap_, fn);
    if (imm_rows_) {
      layers_.imm->keys().Scan(lo_, hi_, snap_, [&](std::string_view key, const VersionView& v) {
        VersionView newer;
        if (!(mem_rows_ && layers_.mem->keys().Get(key, snap_, &newer))) fn(key, v);
      });
    }
  }

 private:
  const Layers& layers_;
  uint64_t snap_;
  std::string lo_, hi_;
  bool mem_rows_ = false, imm_rows_ = false;
  std::vector<bool> seg_rows_;
};

// The attribute columns of layer `l` of `layers`: a segment group's from
// d.index_attrs when an earlier search built them (built and kept there
// otherwise, dropping the entries of segments no longer live).
Status LayerAttributes(DBImpl& d, const Layers& layers, const KeyLayer& l,
                       std::shared_ptr<const memtable::AttrColumns>* out) {
  std::pair<uint64_t, uint32_t> key;
  const bool cached = l.CacheKey(&key);
  if (cached) {
    MutexLock lock(&d.index_attrs_mu);
    auto it = d.index_attrs.find(key);
    if (it != d.index_attrs.end()) {
      *out = it->second;
      return Status::OK();
    }
  }
  POMAI_RETURN_IF_ERROR(l.BuildAttributes(out));
  if (cached) {
    std::set<uint64_t> live;
    for (const auto& seg : layers.segs) live.insert(seg->file_number());
    MutexLock lock(&d.index_attrs_mu);
    for (auto it = d.index_attrs.begin(); it != d.index_attrs.end();)
      it = live.count(it->first.first) != 0 ? std::next(it) : d.index_attrs.erase(it);
    d.index_attrs.emplace(key, *out);
  }
  return Status::OK();
}

// Compiles `where` (docs/FILTERS.md) against the attribute columns of index
// `name`'s layers `ls` and sets each layer's pass bitmap, or defers it in a
// graph layer of kDeferRowsPerQuery rows (one query). Two layers holding
// an attribute with different types is Corruption (commits fix the type).
Status FilterKeyLayers(DBImpl& d, const Layers& layers, std::string_view name, std::string_view where,
                       const std::vector<std::unique_ptr<KeyLayer>>& ls) {
  filter::Schema schema;
  for (const auto& l : ls) {
    std::shared_ptr<const memtable::AttrColumns> a;
    POMAI_RETURN_IF_ERROR(LayerAttributes(d, layers, *l, &a));
    for (const auto& [col, type] : a->columns()) {
      auto it = std::find_if(schema.begin(), schema.end(), [&col = col](const auto& c) { return c.first == col; });
      if (it == schema.end()) {
        schema.emplace_back(col, type);
      } else if (it->second != type) {
        return Status::Corruption("index '" + Printable(name) + "': attribute '" + Printable(col) + "' is " +
                                  AttrTypeName(it->second) + " in one layer and " + AttrTypeName(type) + " in another");
      }
    }
    l->set_attributes(std::move(a));
  }
  POMAI_ASSIGN_OR_RETURN(filter::Filter f, filter::Filter::Compile(where, schema));
  if (f.reads_ids())
    return Status::InvalidArgument("filter: `id` names the u64 id of a pomaidb row; the entries of index '" +
                                   Printable(name) + "' have byte keys (filter on an attribute)");
  for (const auto& l : ls) POMAI_RETURN_IF_ERROR(l->EvaluateFilter(f, l->rows() >= kDeferRowsPerQuery));
  return Status::OK();
}

// The k best live rows of collection `cid` (dim, metric of `config`) in
// `layers` at `snap`, through the executor: the memtables' rows exactly,
// each segment group through its graph (rows hidden by a newer layer are
// walked through, never returned; ef is the walk's queue). A non-empty
// `where` returns only rows it passes (FilterKeyLayers).
Status SearchCollection(DBImpl& d, const Layers& layers, uint64_t snap, uint64_t cid, std::string_view name,
                        const IndexConfig& config, const float* query, uint32_t k, uint32_t ef, std::string_view where,
                        ThreadPool* pool, std::vector<KeyHit>* out) {
  CollectionView view(layers, snap, cid);
  POMAI_RETURN_IF_ERROR(view.Init());
  std::vector<std::unique_ptr<KeyLayer>> ls;
  for (const MemTable* mt : {layers.mem.get(), layers.imm.get()}) {
    if (mt == nullptr) continue;
    const KeyTable* m = &mt->keys();
    const bool any = mt == layers.mem.get() ? view.mem_rows() : view.imm_rows();
    auto l = std::make_unique<VersionsLayer>(
        any ? std::function<bool(std::string_view)>([m, snap](std::string_view key) {
          VersionView v;
          return m->Get(key, snap, &v);
        })
            : nullptr);
    if (any) {
      m->Scan(view.lo(), view.hi(), snap, [&](std::string_view key, const VersionView& v) {
        if (v.kind == ValueKind::kVector && v.dim == config.dim) l->Add(key, v);
      });
    }
    ls.push_back(std::move(l));
  }
  for (size_t si = 0; si < layers.segs.size(); ++si) {
    const segment::SegmentFile& seg = *layers.segs[si];
    uint32_t g = 0;
    const bool has_group = seg.FindGroup(segment::GroupKind::kBytes, cid, config.dim, config.metric, &g);
    ls.push_back(std::make_unique<EntryGroupLayer>(seg, has_group, g, snap, view.segment_rows(si)));
  }
  if (!where.empty()) POMAI_RETURN_IF_ERROR(FilterKeyLayers(d, layers, name, where, ls));
  SearchSpec spec;
  spec.queries = query;
  spec.n = 1;
  spec.topks = &k;
  spec.dim = config.dim;
  spec.metric = config.metric;
  spec.ef = ef;
  spec.pool = pool;
  return SearchKeyLayers(ls, SearcherOf(ls), spec, RowPrefix(cid).size(), false, out);
}

// The segment part of collection `cid`'s statistics in `layers`.
Status ComputeSegmentStats(const Layers& layers, uint64_t cid, const IndexConfig& config, SegmentStats* out) {
  *out = SegmentStats{};
  for (size_t si = 0; si < layers.segs.size(); ++si) {
    const segment::SegmentFile& seg = *layers.segs[si];
    uint32_t g = 0;
    if (!seg.FindGroup(segment::GroupKind::kBytes, cid, config.dim, config.metric, &g)) continue;
    const segment::GroupInfo& info = seg.group(g);
    const index::HnswGraph* graph = seg.graph(g);
    out->bytes += info.rows * uint64_t{config.dim} * sizeof(float);
    if (graph != nullptr) {
      POMAI_ASSIGN_OR_RETURN(index::HnswStats gs, graph->Stats());
      if (out->levels.size() < gs.nodes_per_level.size()) out->levels.resize(gs.nodes_per_level.size());
      for (size_t l = 0; l < gs.nodes_per_level.size(); ++l) out->levels[l] += gs.nodes_per_level[l];
      out->layer0_links += gs.layer0_edges;
      out->bytes += gs.bytes;
    }
    for (uint64_t r = 0; r < info.rows; ++r) {
      segment::EntryView e;
      POMAI_RETURN_IF_ERROR(seg.ReadRowEntry(g, r, &e));
      bool hidden = false;
      for (size_t j = 0; j < si && !hidden; ++j) {
        segment::EntryView newer;
        POMAI_RETURN_IF_ERROR(layers.segs[j]->Get(e.key, &newer, &hidden));
      }
      if (graph == nullptr) {
        out->live_rows += hidden ? 0 : 1;
      } else if (hidden) {
        ++out->dead_graph_rows;
      } else {
        ++out->live_graph_rows;
      }
    }
  }
  return Status::OK();
}

}  // namespace

// ---------------------------------------------------------------------------
// Collections: first builds, statistics, searches

Status DBImpl::CheckIndexAttributes(const Layers& cur, const std::vector<Write>& writes) {
  using Types = std::map<std::string, AttrType, std::less<>>;
  std::map<uint64_t, Types> added;  // this commit's new attributes, by index
  for (const Write& w : writes) {
    const Value& v = *w.value;
    uint64_t cid = 0;
    std::string_view key;
    if (v.kind != ValueKind::kVector || v.attrs.empty() || !ParseRowKey(w.key, &cid, &key)) continue;
    auto known = index_schemas.find(cid);
    if (known == index_schemas.end()) {
      // The index's types so far: its segment groups' columns (every row),
      // then its memtable entries' records (their newest versions).
      Types types;
      auto add = [&](std::string_view name, AttrType type) { types.emplace(std::string(name), type); };
      for (const auto& seg : cur.segs) {
        for (uint32_t g = 0; g < seg->group_count(); ++g) {
          if (seg->group(g).kind != segment::GroupKind::kBytes || seg->group(g).cid != cid) continue;
          std::shared_ptr<const memtable::AttrColumns> a;
          POMAI_RETURN_IF_ERROR(LayerAttributes(*this, cur, EntryGroupLayer(*seg, true, g, last_seq.load(), false), &a));
          for (const auto& [name, type] : a->columns()) add(name, type);
        }
      }
      const std::string lo = RowPrefix(cid), hi = PrefixEnd(lo);
      Status bad;
      for (const MemTable* m : {cur.mem.get(), cur.imm.get()}) {
        if (m == nullptr) continue;
        m->keys().Scan(lo, hi, last_seq.load(), [&](std::string_view, const VersionView& e) {
          if (e.kind != ValueKind::kVector || e.attrs.empty()) return;
          wal::AttrRecordReader r(e.attrs);
          wal::AttrValue a;
          while (r.Next(&a)) add(a.name, a.type);
          if (!r.status().ok() && bad.ok()) bad = r.status();
        });
      }
      POMAI_RETURN_IF_ERROR(bad);
      known = index_schemas.emplace(cid, std::move(types)).first;
    }
    wal::AttrRecordReader r(v.attrs);
    wal::AttrValue a;
    while (r.Next(&a)) {
      auto it = known->second.find(a.name);
      const bool in_index = it != known->second.end();
      auto jt = added[cid].find(a.name);
      if (!in_index && jt == added[cid].end()) {
        added[cid].emplace(std::string(a.name), a.type);
        continue;
      }
      const AttrType have = in_index ? it->second : jt->second;
      if (have != a.type)
        return Status::InvalidArgument("attribute '" + Printable(a.name) + "' of index entry '" + Printable(key) +
                                       "' is " + AttrTypeName(a.type) + ", but the index's entries hold it as " +
                                       AttrTypeName(have) + " (an attribute's type is fixed by its first write)");
    }
    POMAI_RETURN_IF_ERROR(r.status());
  }
  for (auto& [cid, types] : added) index_schemas[cid].insert(types.begin(), types.end());
  return Status::OK();
}

bool DBImpl::CountRowWrites(const Layers& cur, const std::vector<Write>& writes) {
  bool flush = false;
  uint64_t cid = 0, last = 0;
  std::string_view key;
  for (const Write& w : writes) {
    if (!ParseRowKey(w.key, &cid, &key)) continue;
    const uint64_t n = ++mem_rows[cid];
    if (n < 1024 || cid == last) continue;
    last = cid;
    uint64_t segment_rows = 0;
    for (const auto& seg : cur.segs) {
      for (uint32_t g = 0; g < seg->group_count(); ++g) {
        const segment::GroupInfo& info = seg->group(g);
        if (info.kind == segment::GroupKind::kBytes && info.cid == cid) segment_rows += info.rows;
      }
    }
    flush = flush || n >= std::max<uint64_t>(1024, segment_rows / 8);
  }
  return flush;
}

Status DBImpl::PrepareCollection(std::string_view name, bool for_read,
                                   const std::function<void(uint64_t, uint64_t)>& progress) {
  // Whether the collection has committed rows in a memtable and no graph in
  // any segment.
  auto needs_build = [&](bool* needs) -> Status {
    PinnedSnapshot pin(this);
    uint64_t cid = 0;
    IndexConfig config;
    POMAI_RETURN_IF_ERROR(FindCollection(*pin.layers, pin.snap, name, &cid, &config));
    *needs = false;
    for (const auto& seg : pin.layers->segs) {
      uint32_t g = 0;
      if (seg->FindGroup(segment::GroupKind::kBytes, cid, config.dim, config.metric, &g) && seg->graph(g) != nullptr)
        return Status::OK();
    }
    const std::string lo = RowPrefix(cid), hi = PrefixEnd(lo);
    *needs = MemtableHasRows(pin.layers->mem->keys(), lo, hi, pin.snap, true) ||
             (pin.layers->imm && MemtableHasRows(pin.layers->imm->keys(), lo, hi, pin.snap, true));
    return Status::OK();
  };
  bool needs = false;
  POMAI_RETURN_IF_ERROR(needs_build(&needs));
  if (!needs || (for_read && failed_build_seq.load() == last_seq.load() + 1)) return Status::OK();
  MutexLock f(&flush_mu);
  POMAI_RETURN_IF_ERROR(needs_build(&needs));  // another flush may have built it meanwhile
  if (!needs) return Status::OK();
  const uint64_t seq = last_seq.load();
  Status s = FlushAllLocked(progress);
  if (!s.ok()) {
    failed_build_seq.store(seq + 1);
    return for_read ? Status::OK() : s;
  }
  ScheduleCompaction();
  return Status::OK();
}

Status DBImpl::CollectionStats(const Layers& layers, uint64_t snap, uint64_t cid, const IndexConfig& config,
                                 IndexStats* out) {
  std::vector<uint64_t> segments;
  for (const auto& seg : layers.segs) segments.push_back(seg->file_number());
  SegmentStats seg;
  bool seg_cached = false;
  {
    MutexLock l(&stats_mu);
    auto it = stats_cache.find(cid);
    if (it != stats_cache.end() && it->second.generation == layers.generation && it->second.seq == snap) {
      *out = it->second.result;
      return Status::OK();
    }
    if (it != stats_cache.end() && it->second.segments == segments) {
      seg = it->second.seg;
      seg_cached = true;
    }
  }
  if (!seg_cached) POMAI_RETURN_IF_ERROR(ComputeSegmentStats(layers, cid, config, &seg));
  // The memtable part: each row version in a memtable hides the segments'
  // version of its key; a vector is a live row outside every graph.
  CollectionView view(layers, snap, cid);
  POMAI_RETURN_IF_ERROR(view.Init());
  uint64_t live_graph = seg.live_graph_rows, live_rows = seg.live_rows, dead_graph = seg.dead_graph_rows;
  uint64_t memtable_rows = 0;
  Status error;
  view.ForEachMemtableRow([&](std::string_view key, const VersionView& v) {
    if (v.kind == ValueKind::kVector) ++memtable_rows;
    for (const auto& s : layers.segs) {
      segment::EntryView e;
      bool found = false;
      Status st = s->Get(key, &e, &found);
      if (!st.ok()) {
        if (error.ok()) error = st;
        return;
      }
      if (!found) continue;
      if (e.kind == segment::EntryKind::kVector) {
        if (s->graph(e.group) != nullptr) {
          --live_graph;
          ++dead_graph;
        } else {
          --live_rows;
        }
      }
      return;  // the newest segment's version was the visible one
    }
  });
  POMAI_RETURN_IF_ERROR(error);
  IndexStats st;
  st.node_count = live_graph + live_rows + memtable_rows;
  st.deleted_count = dead_graph;
  st.delta_count = live_rows + memtable_rows;
  st.level_distribution = seg.levels;
  if (st.delta_count > 0) {
    if (st.level_distribution.empty()) st.level_distribution.push_back(0);
    st.level_distribution[0] += st.delta_count;
  }
  const uint64_t graph_nodes = live_graph + dead_graph;
  st.avg_edges_per_node = graph_nodes > 0 ? static_cast<double>(seg.layer0_links) / static_cast<double>(graph_nodes) : 0;
  st.memory_bytes = seg.bytes + memtable_rows * (uint64_t{config.dim} * sizeof(float) + 96);
  MutexLock l(&stats_mu);
  StatsCache& c = stats_cache[cid];
  c.segments = std::move(segments);
  c.seg = std::move(seg);
  c.generation = layers.generation;
  c.seq = snap;
  c.result = st;
  *out = std::move(st);
  return Status::OK();
}

Status DBImpl::WriteIndexConfig(const std::string& name, const IndexConfig* config) {
  // One commit of the configuration key (ENGINE.md 2.4): the entries of the
  // configuration it replaces are keyed by that one's cid, so none of them
  // is reachable from the new one, and merges drop them.
  const std::string ck = ConfigKey(name);
  for (int attempt = 0;; ++attempt) {
    uint64_t snap = 0;
    {
      PinnedSnapshot pin(this);
      snap = pin.snap;
      VersionView cv;
      bool exists = false;
      POMAI_RETURN_IF_ERROR(LookupLayers(*pin.layers, ck, pin.snap, &cv, &exists));
      if (config == nullptr && (!exists || cv.kind == ValueKind::kTombstone)) return IndexNotFound(name);
    }
    auto cfg = std::make_shared<Value>();
    if (config != nullptr) {
      cfg->kind = ValueKind::kBytes;
      cfg->bytes = CollectionOf(*config).Encode();
    }
    Status s = CommitWrites(snap, {Write{ck, std::move(cfg)}}, {ck});
    if (s.code() != Code::kConflict || attempt >= 100) return s;
  }
}

Status DB::CreateIndex(std::string_view name, const IndexConfig& config) {
  if (impl_->closed) return Status::Closed("database is closed");
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  POMAI_RETURN_IF_ERROR(CheckIndexConfig(config));
  return impl_->WriteIndexConfig(std::string(name), &config);
}

Status DB::DropIndex(std::string_view name) {
  if (impl_->closed) return Status::Closed("database is closed");
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  return impl_->WriteIndexConfig(std::string(name), nullptr);
}

uint64_t DB::TEST_GraphBuilds() { return impl_->graph_builds.load(); }

Status DB::GetIndexStats(std::string_view name, IndexStats* out) {
  DBImpl& d = *impl_;
  if (d.closed) return Status::Closed("database is closed");
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  POMAI_RETURN_IF_ERROR(d.PrepareCollection(name, true, nullptr));
  PinnedSnapshot pin(&d);
  uint64_t cid = 0;
  IndexConfig config;
  POMAI_RETURN_IF_ERROR(FindCollection(*pin.layers, pin.snap, name, &cid, &config));
  return d.CollectionStats(*pin.layers, pin.snap, cid, config, out);
}

Status DB::PrepareIndex(std::string_view name, const std::function<void(uint64_t done, uint64_t total)>& progress) {
  if (impl_->closed) return Status::Closed("database is closed");
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  return impl_->PrepareCollection(name, false, progress);
}

Status DB::SearchIndex(std::string_view name, const float* query, uint32_t dim, uint32_t k, uint32_t ef_search,
                         std::string_view where, std::vector<KeyHit>* out, IndexStats* stats) {
  DBImpl& d = *impl_;
  out->clear();
  if (d.closed) return Status::Closed("database is closed");
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  POMAI_RETURN_IF_ERROR(d.PrepareCollection(name, true, nullptr));
  PinnedSnapshot pin(&d);
  uint64_t cid = 0;
  IndexConfig config;
  POMAI_RETURN_IF_ERROR(FindCollection(*pin.layers, pin.snap, name, &cid, &config));
  if (dim != config.dim)
    return Status::InvalidArgument("dimension mismatch: expected " + std::to_string(config.dim) + ", got " +
                                   std::to_string(dim) + " (index '" + Printable(name) + "')");
  POMAI_RETURN_IF_ERROR(CheckVector(query, dim, "query"));
  const uint32_t ef = std::max(k, ef_search != 0 ? ef_search : 50u);
  POMAI_RETURN_IF_ERROR(SearchCollection(d, *pin.layers, pin.snap, cid, name, config, query, k, ef, where, d.pool.get(), out));
  if (stats != nullptr) POMAI_RETURN_IF_ERROR(d.CollectionStats(*pin.layers, pin.snap, cid, config, stats));
  return Status::OK();
}

}  // namespace pomai::engine
