#include "engine/kv_index.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "engine/collection.h"
#include "index/params.h"
#include "segment/segment.h"
#include "simd/distance.h"
#include "util/coding.h"
#include "util/limits.h"

namespace pomai::engine::kv {

using segment::KindNumber;
using segment::SectionKind;

namespace {

float ReportedScore(simd::Metric metric, float s) {
  return metric == simd::Metric::kL2 ? -std::sqrt(std::max(0.0f, -s)) : s;
}

}  // namespace

Result<std::shared_ptr<IndexRuntime>> IndexRuntime::Build(
    const IndexConfig& config, uint64_t config_seq, const std::map<std::string, IndexEntry, std::less<>>& entries,
    ThreadPool* pool, const std::function<void(uint64_t done, uint64_t total)>& progress) {
  std::shared_ptr<IndexRuntime> rt(new IndexRuntime());
  rt->config_ = config;
  rt->config_seq_ = config_seq;
  const size_t n = entries.size();
  const size_t dim = config.dim;
  rt->base_vecs_.resize(n * dim);
  rt->base_keys_.reserve(n);
  rt->base_seqs_.reserve(n);
  rt->base_meta_.reserve(n);
  rt->base_has_meta_.reserve(n);
  size_t row = 0;
  for (const auto& [key, e] : entries) {
    std::memcpy(rt->base_vecs_.data() + row * dim, e.vec, dim * sizeof(float));
    rt->base_keys_.push_back(key);
    rt->base_seqs_.push_back(e.seq);
    rt->base_meta_.emplace_back(e.metadata);
    rt->base_has_meta_.push_back(e.has_metadata ? 1 : 0);
    ++row;
  }
  if (n > 0) {
    index::HnswParams params;
    params.m = config.m;
    params.ef_construction = config.ef_construction;
    params.sq8 = false;  // the walk scores float32 rows: recall first
    POMAI_ASSIGN_OR_RETURN(rt->sections_, index::BuildHnsw(rt->base_vecs_.data(), n, config.dim, config.metric, params,
                                                           n >= 2048 ? pool : nullptr, progress));
  }
  POMAI_RETURN_IF_ERROR(rt->FinishBase());
  return rt;
}

Status IndexRuntime::FinishBase() {
  const size_t n = base_keys_.size();
  base_row_.clear();
  base_row_.reserve(n);
  for (size_t row = 0; row < n; ++row) base_row_.emplace(base_keys_[row], static_cast<uint32_t>(row));
  dead_.assign(n, 0);
  dead_count_ = 0;
  base_max_seq_ = 0;
  for (uint64_t s : base_seqs_) base_max_seq_ = std::max(base_max_seq_, s);
  if (n > 0) {
    auto section = [this](uint32_t kind) -> std::string_view {
      for (const auto& s : sections_) {
        if (s.kind == kind) return s.bytes;
      }
      return {};
    };
    auto graph = index::HnswGraph::Open(section, base_vecs_.data(), n, config_.dim, config_.metric, "index graph");
    if (!graph.ok()) return graph.status();
    graph_.emplace(std::move(graph).value());
    POMAI_ASSIGN_OR_RETURN(index::HnswStats gs, graph_->Stats());
    base_levels_ = gs.nodes_per_level;
    base_avg_degree0_ = gs.avg_degree0;
  }
  uint64_t b = sizeof(IndexRuntime) + base_vecs_.capacity() * sizeof(float) + dead_.capacity();
  for (size_t i = 0; i < base_keys_.size(); ++i) b += base_keys_[i].capacity() + base_meta_[i].capacity() + 80;
  b += base_seqs_.capacity() * 8 + base_has_meta_.capacity();
  for (const auto& sec : sections_) b += sec.bytes.capacity();
  base_bytes_ = b;
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Graph files

namespace {

uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

std::string IndexGraphFilePrefix(std::string_view name) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "idx-%016llx-", static_cast<unsigned long long>(Fnv1a64(name)));
  return buf;
}

std::string IndexGraphFileName(std::string_view name, uint64_t config_seq) {
  return IndexGraphFilePrefix(name) + std::to_string(config_seq) + ".pgraph";
}

bool IsIndexGraphFileName(std::string_view file) {
  constexpr std::string_view kPrefix = "idx-", kSuffix = ".pgraph";
  return file.size() > kPrefix.size() + kSuffix.size() && file.substr(0, kPrefix.size()) == kPrefix &&
         file.substr(file.size() - kSuffix.size()) == kSuffix;
}

Status IndexRuntime::WriteGraphFile(Env* env, const std::string& dir, std::string_view name) const {
  const size_t n = base_keys_.size();
  if (n == 0) return Status::OK();
  std::vector<uint64_t> ids(n), meta_offsets(n + 1), key_offsets(n + 1);
  std::string meta_blob, keys;
  for (size_t i = 0; i < n; ++i) {
    ids[i] = i;
    meta_offsets[i] = meta_blob.size();
    meta_blob += base_meta_[i];
    key_offsets[i] = keys.size();
    keys += base_keys_[i];
  }
  meta_offsets[n] = meta_blob.size();
  key_offsets[n] = keys.size();
  std::string key_offsets_bytes, seqs;
  for (uint64_t o : key_offsets) PutFixed64(&key_offsets_bytes, o);
  for (uint64_t q : base_seqs_) PutFixed64(&seqs, q);
  segment::SegmentContents c;
  c.info.dim = config_.dim;
  c.info.metric = config_.metric;
  c.info.shard = kIndexGraphMarker;
  c.info.min_seq = config_seq_;
  c.info.max_seq = base_max_seq();
  c.row_count = n;
  c.ids = ids.data();
  c.vectors = base_vecs_.data();
  c.meta_offsets = meta_offsets.data();
  c.meta_blob = reinterpret_cast<const uint8_t*>(meta_blob.data());
  for (const auto& sec : sections_) c.extra.push_back({sec.kind, sec.bytes});
  const std::string_view has_meta(reinterpret_cast<const char*>(base_has_meta_.data()), base_has_meta_.size());
  c.extra.push_back({KindNumber(SectionKind::kGraphFileName), name});
  c.extra.push_back({KindNumber(SectionKind::kGraphFileKeyOffsets), key_offsets_bytes});
  c.extra.push_back({KindNumber(SectionKind::kGraphFileKeys), keys});
  c.extra.push_back({KindNumber(SectionKind::kGraphFileSeqs), seqs});
  c.extra.push_back({KindNumber(SectionKind::kGraphFileHasMeta), has_meta});
  return segment::WriteSegment(env, dir, IndexGraphFileName(name, config_seq_), c);
}

Result<std::shared_ptr<IndexRuntime>> IndexRuntime::OpenGraphFile(Env* env, const std::string& path,
                                                                  std::string_view name, const IndexConfig& config,
                                                                  uint64_t config_seq) {
  POMAI_ASSIGN_OR_RETURN(std::shared_ptr<segment::Segment> seg, segment::Segment::Open(env, path));
  POMAI_RETURN_IF_ERROR(seg->Verify());
  auto bad = [&path](const std::string& what) { return Status::Corruption(path + ": " + what); };
  const segment::SegmentInfo& info = seg->info();
  if (info.shard != kIndexGraphMarker) return bad("not an index graph file");
  if (info.dim != config.dim || info.metric != config.metric)
    return bad("dim " + std::to_string(info.dim) + " / metric " + std::to_string(static_cast<int>(info.metric)) +
               " differ from the index's");
  if (info.min_seq != config_seq) return bad("written for another configuration of the index");
  if (seg->Section(SectionKind::kGraphFileName) != name) return bad("written for another index");
  const uint64_t n = seg->row_count();
  if (n == 0 || seg->tombstone_count() != 0) return bad("no rows, or tombstones");
  const std::string_view key_offsets = seg->Section(SectionKind::kGraphFileKeyOffsets);
  const std::string_view keys = seg->Section(SectionKind::kGraphFileKeys);
  const std::string_view seqs = seg->Section(SectionKind::kGraphFileSeqs);
  const std::string_view has_meta = seg->Section(SectionKind::kGraphFileHasMeta);
  if (key_offsets.size() != (n + 1) * 8 || seqs.size() != n * 8 || has_meta.size() != n)
    return bad("key offset, seq or metadata flag section of the wrong size for " + std::to_string(n) + " rows");
  std::shared_ptr<IndexRuntime> rt(new IndexRuntime());
  rt->config_ = config;
  rt->config_seq_ = config_seq;
  rt->base_vecs_.assign(seg->vectors(), seg->vectors() + n * config.dim);
  rt->base_keys_.reserve(n);
  rt->base_seqs_.reserve(n);
  rt->base_meta_.reserve(n);
  rt->base_has_meta_.reserve(n);
  const auto* ko = reinterpret_cast<const uint8_t*>(key_offsets.data());
  const auto* sq = reinterpret_cast<const uint8_t*>(seqs.data());
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t lo = DecodeFixed64(ko + i * 8);
    const uint64_t hi = DecodeFixed64(ko + (i + 1) * 8);
    if (lo > hi || hi > keys.size() || (i == 0 && lo != 0) || (i + 1 == n && hi != keys.size()))
      return bad("key offsets of row " + std::to_string(i) + " are out of order or out of bounds");
    rt->base_keys_.emplace_back(keys.substr(lo, hi - lo));
    if (i > 0 && !(rt->base_keys_[i - 1] < rt->base_keys_[i]))
      return bad("keys are not strictly ascending at row " + std::to_string(i));
    const uint64_t q = DecodeFixed64(sq + i * 8);
    if (q == 0) return bad("row " + std::to_string(i) + " has seq 0");
    rt->base_seqs_.push_back(q);
    const uint8_t flag = static_cast<uint8_t>(has_meta[i]);
    if (flag > 1) return bad("metadata flag of row " + std::to_string(i) + " is " + std::to_string(flag));
    rt->base_has_meta_.push_back(flag);
    POMAI_ASSIGN_OR_RETURN(std::string_view meta, seg->Metadata(i));
    rt->base_meta_.emplace_back(meta);
  }
  for (const segment::Segment::SectionRef& ref : seg->sections()) {
    if (ref.kind < segment::kFirstIndexKind || ref.kind >= KindNumber(SectionKind::kGraphFileName)) continue;
    rt->sections_.push_back(index::GraphSection{ref.kind, std::string(seg->Section(ref.kind))});
  }
  Status graph = rt->FinishBase();
  if (!graph.ok()) return bad(graph.message());
  if (rt->base_max_seq() != info.max_seq)
    return bad("max_seq " + std::to_string(info.max_seq) + " is not the rows' largest seq");
  return rt;
}

void IndexRuntime::CatchUp(const std::map<std::string, IndexEntry, std::less<>>& now) {
  WriterLock l(&mu_);
  for (size_t row = 0; row < base_keys_.size(); ++row) {
    auto it = now.find(base_keys_[row]);
    if (it == now.end() || it->second.seq != base_seqs_[row]) {
      if (!dead_[row]) {
        dead_[row] = 1;
        ++dead_count_;
      }
    }
  }
  for (const auto& [key, e] : now) {
    auto br = base_row_.find(key);
    if (br != base_row_.end() && base_seqs_[br->second] == e.seq) continue;
    DeltaEntry d{e.seq, std::vector<float>(e.vec, e.vec + config_.dim), e.has_metadata, std::string(e.metadata)};
    delta_bytes_ += key.size() + d.vec.size() * sizeof(float) + d.metadata.size() + 96;
    delta_[key] = std::move(d);
  }
}

void IndexRuntime::Apply(std::string_view key, uint64_t seq, const Value& v) {
  WriterLock l(&mu_);
  auto br = base_row_.find(std::string(key));
  if (br != base_row_.end() && !dead_[br->second]) {
    dead_[br->second] = 1;
    ++dead_count_;
  }
  auto it = delta_.find(key);
  if (it != delta_.end()) {
    delta_bytes_ -= it->first.size() + it->second.vec.size() * sizeof(float) + it->second.metadata.size() + 96;
    delta_.erase(it);
  }
  if (v.kind == ValueKind::kVector && v.vec.size() == config_.dim) {
    DeltaEntry d{seq, v.vec, v.has_metadata, v.bytes};
    delta_bytes_ += key.size() + d.vec.size() * sizeof(float) + d.metadata.size() + 96;
    delta_.emplace(std::string(key), std::move(d));
  }
}

Status IndexRuntime::Search(const float* query, uint32_t k, uint32_t ef, std::vector<KvHit>* out) const {
  out->clear();
  if (k == 0) return Status::OK();
  ReaderLock l(&mu_);
  struct Cand {
    float score;
    const std::string* key;
    bool has_meta;
    const std::string* meta;
  };
  std::vector<Cand> cands;
  if (graph_) {
    std::vector<index::Neighbor> nbrs;
    const uint8_t* dead = dead_.data();
    auto live = [dead](uint32_t row) { return dead[row] == 0; };
    // Neither k nor ef can usefully exceed the graph's size (and a huge
    // caller value must not size the search's queues).
    const size_t rows = base_keys_.size();
    const size_t gk = std::min<size_t>(k, rows);
    const size_t gef = std::min<size_t>(std::max<size_t>(ef, k), std::max<size_t>(rows, 1));
    if (dead_count_ == 0) {
      POMAI_RETURN_IF_ERROR(graph_->Search(query, gk, gef, nullptr, &nbrs));
    } else {
      POMAI_RETURN_IF_ERROR(graph_->Search(query, gk, gef, live, &nbrs));
    }
    for (const index::Neighbor& nb : nbrs)
      cands.push_back(Cand{nb.score, &base_keys_[nb.row], base_has_meta_[nb.row] != 0, &base_meta_[nb.row]});
  }
  if (!delta_.empty()) {
    std::vector<const float*> rows;
    std::vector<const std::pair<const std::string, DeltaEntry>*> refs;
    rows.reserve(delta_.size());
    refs.reserve(delta_.size());
    for (const auto& kvp : delta_) {
      rows.push_back(kvp.second.vec.data());
      refs.push_back(&kvp);
    }
    std::vector<float> scores(rows.size());
    simd::ScoreGather(config_.metric, query, rows.data(), rows.size(), config_.dim, scores.data());
    for (size_t i = 0; i < rows.size(); ++i)
      cands.push_back(Cand{scores[i], &refs[i]->first, refs[i]->second.has_metadata, &refs[i]->second.metadata});
  }
  const size_t n = std::min<size_t>(k, cands.size());
  std::partial_sort(cands.begin(), cands.begin() + static_cast<std::ptrdiff_t>(n), cands.end(),
                    [](const Cand& a, const Cand& b) { return a.score > b.score || (a.score == b.score && *a.key < *b.key); });
  out->reserve(n);
  for (size_t i = 0; i < n; ++i) {
    KvHit h;
    h.key = *cands[i].key;
    h.score = ReportedScore(config_.metric, cands[i].score);
    h.has_metadata = cands[i].has_meta;
    if (h.has_metadata) h.metadata = *cands[i].meta;
    out->push_back(std::move(h));
  }
  return Status::OK();
}

IndexStats IndexRuntime::Stats() const {
  ReaderLock l(&mu_);
  IndexStats s;
  s.node_count = base_keys_.size() - dead_count_ + delta_.size();
  s.deleted_count = dead_count_;
  s.level_distribution = base_levels_;
  s.avg_edges_per_node = base_avg_degree0_;
  // Entries committed since the graph was built are searched exactly: they
  // count as level-0 nodes, so the distribution sums to node_count + deleted_count.
  s.delta_count = delta_.size();
  if (!delta_.empty()) {
    if (s.level_distribution.empty()) s.level_distribution.push_back(0);
    s.level_distribution[0] += delta_.size();
  }
  s.memory_bytes = base_bytes_ + delta_bytes_;
  return s;
}

uint64_t IndexRuntime::MemoryBytes() const {
  ReaderLock l(&mu_);
  return base_bytes_ + delta_bytes_;
}

bool IndexRuntime::ClaimRebuild() {
  WriterLock l(&mu_);
  if (rebuilding_) return false;
  const size_t threshold = std::max<size_t>(1024, base_keys_.size() / 8);
  if (delta_.size() + dead_count_ / 2 < threshold) return false;
  rebuilding_ = true;
  return true;
}

void IndexRuntime::RebuildDone() {
  WriterLock l(&mu_);
  rebuilding_ = false;
}

// ---------------------------------------------------------------------------
// Registry

std::shared_ptr<IndexRuntime> IndexRegistry::Find(std::string_view name) const {
  MutexLock l(&mu_);
  auto it = loaded_.find(name);
  return it == loaded_.end() ? nullptr : it->second;
}

void IndexRegistry::Install(const std::string& name, std::shared_ptr<IndexRuntime> rt) {
  MutexLock l(&mu_);
  loaded_[name] = std::move(rt);
  any_loaded_.store(true);
}

void IndexRegistry::Erase(std::string_view name) {
  MutexLock l(&mu_);
  auto it = loaded_.find(name);
  if (it != loaded_.end()) loaded_.erase(it);
  any_loaded_.store(!loaded_.empty());
}

void IndexRegistry::OnCommit(uint64_t seq, const std::vector<Write>& writes) {
  if (!any_loaded_.load()) return;
  std::vector<std::string> rebuild;
  {
    MutexLock l(&mu_);
    if (loaded_.empty()) return;
    std::string_view last_name;
    IndexRuntime* last = nullptr;
    for (const Write& w : writes) {
      if (w.key.empty()) continue;
      const uint8_t ns = static_cast<uint8_t>(w.key[0]);
      if (ns == kIndexConfigNs) {
        // A new configuration (create) or its removal (drop): reload lazily.
        auto it = loaded_.find(std::string_view(w.key).substr(1));
        if (it != loaded_.end()) loaded_.erase(it);
        any_loaded_.store(!loaded_.empty());
        last = nullptr;
        last_name = {};
      }
    }
    // Rows name their collection by cid, the seq of its configuration, which
    // is the loaded runtime's config_seq (a row of another cid has no
    // runtime: its collection was replaced or dropped).
    uint64_t last_cid = 0;
    for (const Write& w : writes) {
      uint64_t cid = 0;
      std::string_view key;
      if (!ParseRowKey(w.key, &cid, &key)) continue;
      if (last == nullptr || cid != last_cid) {
        if (last != nullptr && last->ClaimRebuild()) rebuild.emplace_back(last_name);
        last = nullptr;
        last_cid = cid;
        for (const auto& [name, rt] : loaded_) {
          if (rt->config_seq() == cid) {
            last = rt.get();
            last_name = name;
            break;
          }
        }
        if (last == nullptr) continue;
      }
      last->Apply(key, seq, *w.value);
    }
    if (last != nullptr && last->ClaimRebuild()) rebuild.emplace_back(last_name);
  }
  for (const std::string& name : rebuild) rebuild_(name);
}

uint64_t IndexRegistry::MemoryBytes() const {
  std::vector<std::shared_ptr<IndexRuntime>> all;
  {
    MutexLock l(&mu_);
    for (const auto& [name, rt] : loaded_) all.push_back(rt);
  }
  uint64_t b = 0;
  for (const auto& rt : all) b += rt->MemoryBytes();
  return b;
}

}  // namespace pomai::engine::kv
