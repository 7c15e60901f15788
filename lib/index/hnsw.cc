// Reading side of HNSW graphs: Open (O(1) checks), Search (bounds-checked
// walk in place), Verify and Stats (full scans).
#include "index/hnsw.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>

#include "index/sq8.h"
#include "index/walk.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace pomai::index {

// Links are read as host u32 straight from the mapping.
static_assert(std::endian::native == std::endian::little, "pomai graphs need a little-endian host");

using internal::Cand;
using internal::ClosestOnTop;
using internal::Distance;
using internal::FarthestOnTop;
using segment::KindNumber;
using segment::SectionKind;
using enum segment::SectionKind;

namespace {

// The graph's kinds are consecutive, header first: section i is GraphKind(i).
constexpr uint32_t kNumKinds = 8;
static_assert(KindNumber(kHnswSq8Norms) == KindNumber(kHnswHeader) + kNumKinds - 1);

SectionKind GraphKind(uint32_t i) { return static_cast<SectionKind>(KindNumber(kHnswHeader) + i); }

// Per-thread buffers of a search, grown on first use and reused.
struct SearchScratch {
  std::vector<Cand> candidates;  // closest on top
  std::vector<Cand> results;     // farthest on top
  std::vector<Cand> exact;       // an SQ8 walk's k best in float32, farthest (by CloserThan) on top
  std::vector<const float*> rows;
  std::vector<const uint8_t*> codes;
  std::vector<uint32_t> ids;
  std::vector<float> scores;
  // An SQ8 walk's rows to re-score in float32: vectors, ids, code distances, scores.
  std::vector<const float*> exact_rows;
  std::vector<uint32_t> exact_ids;
  std::vector<float> exact_codes;
  std::vector<float> exact_scores;
  std::vector<uint32_t> frontier;  // the filtered walk's non-passing rows seen and not yet scored
  sq8::Query sq8_query;

  void Reserve(size_t degree, size_t k, size_t ef) {
    // A filtered walk's batch holds fewer than three link lists' worth
    // (passing rows one and two hops away until it has one list's worth,
    // then maybe its bridges); the plain walk's one list. Search's final
    // re-score takes min(ef, RerankCount(k)) rows at once (4k > ef when k > ef / 4).
    const size_t n = std::max(3 * degree, k > ef / 4 ? ef : std::min(ef, RerankCount(k)));
    if (rows.size() < n) {
      for (auto* v : {&rows, &exact_rows}) v->resize(n);
      codes.resize(n);
      for (auto* v : {&ids, &exact_ids}) v->resize(n);
      for (auto* v : {&scores, &exact_codes, &exact_scores}) v->resize(n);
    }
    if (results.capacity() < ef + 1) results.reserve(ef + 1);
    // The exact top k holds at most min(k, ef) rows (ef >= min(k, rows)).
    const size_t top = std::min(k, ef);
    if (exact.capacity() < top + 1) exact.reserve(top + 1);
    const size_t queue = std::min<size_t>(4 * ef, 1 << 16);  // grows further if a walk needs it
    if (candidates.capacity() < queue) candidates.reserve(queue);
  }
};

SearchScratch& ThreadScratch() {
  thread_local SearchScratch scratch;
  return scratch;
}

// All lines of a link block (count first, so a short list needs fewer).
inline void PrefetchLinks(const uint32_t* links, uint64_t words) {
  const char* p = reinterpret_cast<const char*>(links);
  const char* end = p + words * 4;
  for (; p < end; p += 64) __builtin_prefetch(p);
}

// What a walk scores: the float32 vectors, or the SQ8 codes.
struct FloatScorer {
  using Row = const float*;
  const float* vectors;
  uint64_t dim;
  simd::Metric metric;
  const float* query;

  Row At(uint32_t id) const { return vectors + id * dim; }
  // The first line: the kernel prefetches the rest of the rows it scores.
  void Prefetch(Row r) const { __builtin_prefetch(r); }
  std::vector<Row>& Rows(SearchScratch& s) const { return s.rows; }
  void Score(const Row* rows, const uint32_t* /*ids*/, size_t n, float* out) const {
    simd::ScoreGather(metric, query, rows, n, dim, out);
  }
  static constexpr bool kExact = true;
};

struct Sq8Scorer {
  using Row = const uint8_t*;
  const uint8_t* codes;
  uint64_t stride;
  const sq8::Query* query;

  Row At(uint32_t id) const { return codes + id * stride; }
  void Prefetch(Row r) const {
    for (uint64_t b = 0; b < stride; b += 64) __builtin_prefetch(r + b);
  }
  std::vector<Row>& Rows(SearchScratch& s) const { return s.codes; }
  void Score(const Row* rows, const uint32_t* ids, size_t n, float* out) const {
    sq8::ScoreGather(*query, rows, ids, n, out);
  }
  static constexpr bool kExact = false;  // the walk keeps the exact top k beside (Layer0Walk)
};

}  // namespace

SearchWork& ThreadSearchWork() {
  thread_local SearchWork work;
  return work;
}

Result<HnswGraph> HnswGraph::Open(const std::function<std::string_view(uint32_t kind)>& section,
                                  const float* vectors, size_t rows, uint32_t dim, simd::Metric metric,
                                  const std::string& file_for_errors, const char* file_base) {
  HnswGraph g;
  g.file_ = file_for_errors;
  g.file_offsets_ = file_base != nullptr;
  g.metric_ = metric;
  std::string_view views[kNumKinds];
  for (uint32_t i = 0; i < kNumKinds; ++i) {
    views[i] = section(KindNumber(GraphKind(i)));
    if (file_base != nullptr && !views[i].empty()) {
      g.section_offset_[i] = static_cast<uint64_t>(views[i].data() - file_base);
    }
  }
  auto corrupt = [&](SectionKind kind, uint64_t offset, const std::string& what) {
    return g.LinkCorruption(kind, offset, what);
  };

  const std::string_view hdr = views[0];
  if (hdr.empty()) return Status::NotFound(file_for_errors + ": no hnsw graph");
  if (hdr.size() != kHnswHeaderSize) {
    return corrupt(kHnswHeader, 0, "header is " + std::to_string(hdr.size()) + " bytes, expected " +
                                       std::to_string(kHnswHeaderSize));
  }
  const uint8_t* h = reinterpret_cast<const uint8_t*>(hdr.data());
  if (std::memcmp(h + hnsw_header::kMagic, kHnswMagic, sizeof(kHnswMagic)) != 0) {
    return corrupt(kHnswHeader, hnsw_header::kMagic, "bad magic");
  }
  const uint32_t crc = DecodeFixed32(h + hnsw_header::kCrc);
  if (crc32c::Value(h, hnsw_header::kCrc) != crc) return corrupt(kHnswHeader, hnsw_header::kCrc, "header checksum mismatch");
  const uint32_t version = DecodeFixed32(h + hnsw_header::kVersion);
  if (version != kHnswFormatVersion) {
    return corrupt(kHnswHeader, hnsw_header::kVersion,
                   "unsupported format version " + std::to_string(version) + " (this build reads " +
                       std::to_string(kHnswFormatVersion) + ")");
  }
  if (DecodeFixed32(h + hnsw_header::kHeaderSize) != kHnswHeaderSize) {
    return corrupt(kHnswHeader, hnsw_header::kHeaderSize, "bad header size");
  }
  g.m_ = DecodeFixed32(h + hnsw_header::kM);
  g.m0_ = DecodeFixed32(h + hnsw_header::kM0);
  g.max_level_ = DecodeFixed32(h + hnsw_header::kMaxLevelField);
  g.entry_ = DecodeFixed32(h + hnsw_header::kEntryPoint);
  g.rows_ = DecodeFixed64(h + hnsw_header::kRows);
  g.dim_ = DecodeFixed32(h + hnsw_header::kDim);
  const uint8_t metric_byte = h[hnsw_header::kMetric];
  const uint8_t flags = h[hnsw_header::kFlags];
  g.seed_ = DecodeFixed64(h + hnsw_header::kSeed);
  g.ef_construction_ = DecodeFixed32(h + hnsw_header::kEfConstruction);
  g.upper_blocks_ = DecodeFixed64(h + hnsw_header::kUpperBlocks);
  g.reused_rows_ = DecodeFixed64(h + hnsw_header::kReusedRows);

  if (g.m_ < 1 || g.m_ > kMaxDegree) return corrupt(kHnswHeader, hnsw_header::kM, "m out of range");
  if (g.m0_ < 1 || g.m0_ > kMaxDegree) return corrupt(kHnswHeader, hnsw_header::kM0, "m0 out of range");
  if (g.max_level_ > kMaxLevel) {
    return corrupt(kHnswHeader, hnsw_header::kMaxLevelField, "max level " + std::to_string(g.max_level_) + " > " +
                                                                 std::to_string(kMaxLevel));
  }
  if (g.rows_ != rows) {
    return corrupt(kHnswHeader, hnsw_header::kRows, "graph has " + std::to_string(g.rows_) +
                                                        " rows, the segment " + std::to_string(rows));
  }
  if (g.dim_ != dim) {
    return corrupt(kHnswHeader, hnsw_header::kDim, "graph dim " + std::to_string(g.dim_) + ", segment dim " +
                                                       std::to_string(dim));
  }
  if (metric_byte != static_cast<uint8_t>(metric)) {
    return corrupt(kHnswHeader, hnsw_header::kMetric, "graph metric " + std::to_string(metric_byte) +
                                                          " differs from the segment's");
  }
  if ((flags & ~(kFlagSq8 | kFlagSq8Norms)) != 0) return corrupt(kHnswHeader, hnsw_header::kFlags, "unknown flags");
  if ((flags & kFlagSq8Norms) != 0 && (flags & kFlagSq8) == 0) {
    return corrupt(kHnswHeader, hnsw_header::kFlags, "sq8 norms flag without sq8");
  }
  if (g.rows_ > kMaxRows) return corrupt(kHnswHeader, hnsw_header::kRows, "too many rows");
  if (g.reused_rows_ > g.rows_) return corrupt(kHnswHeader, hnsw_header::kReusedRows, "more reused rows than rows");
  if (g.upper_blocks_ > std::numeric_limits<uint32_t>::max()) {
    return corrupt(kHnswHeader, hnsw_header::kUpperBlocks, "too many upper blocks");
  }
  if (g.rows_ > 0 && vectors == nullptr) return Status::InvalidArgument("hnsw: null vectors for a non-empty graph");

  // Exact section sizes, all products checked.
  const bool has_sq8 = (flags & kFlagSq8) != 0;
  const bool has_norms = (flags & kFlagSq8Norms) != 0;
  uint64_t sizes[kNumKinds] = {kHnswHeaderSize, g.rows_, 0, 0, 0, 0, 0, 0};
  uint64_t stride0 = 0, stride_up = 0;
  if (AddOverflows(g.m0_, 1, &stride0) || MulOverflows(g.rows_, stride0, &sizes[2]) ||
      MulOverflows(sizes[2], 4, &sizes[2]) || MulOverflows(g.rows_, 4, &sizes[3]) ||
      AddOverflows(g.m_, 1, &stride_up) || MulOverflows(g.upper_blocks_, stride_up, &sizes[4]) ||
      MulOverflows(sizes[4], 4, &sizes[4]) ||
      (has_sq8 && (MulOverflows(g.dim_, 8, &sizes[5]) || MulOverflows(g.rows_, sq8::Stride(g.dim_), &sizes[6]))) ||
      (has_norms && MulOverflows(g.rows_, 4, &sizes[7])) ||
      sizes[2] > SIZE_MAX || sizes[4] > SIZE_MAX || sizes[6] > SIZE_MAX) {
    return corrupt(kHnswHeader, hnsw_header::kRows, "section sizes overflow");
  }
  for (uint32_t i = 1; i < kNumKinds; ++i) {
    if (views[i].size() != sizes[i]) {
      return corrupt(GraphKind(i), 0, "section is " + std::to_string(views[i].size()) +
                                          " bytes, the header implies " + std::to_string(sizes[i]));
    }
    const bool words = (i >= 2 && i <= 5) || i == 7;  // u32 and f32 sections
    if (words && reinterpret_cast<uintptr_t>(views[i].data()) % alignof(uint32_t) != 0) {
      return Status::InvalidArgument(file_for_errors + ": " + segment::SectionKindName(GraphKind(i)) +
                                     " is not 4-byte aligned in memory");
    }
  }
  g.vectors_ = vectors;
  g.levels_ = reinterpret_cast<const uint8_t*>(views[1].data());
  g.layer0_ = reinterpret_cast<const uint32_t*>(views[2].data());
  g.upper_index_ = reinterpret_cast<const uint32_t*>(views[3].data());
  g.upper_links_ = reinterpret_cast<const uint32_t*>(views[4].data());
  if (has_sq8) {
    g.sq8_params_ = reinterpret_cast<const float*>(views[5].data());
    g.sq8_codes_ = reinterpret_cast<const uint8_t*>(views[6].data());
    if (has_norms) g.sq8_norms_ = reinterpret_cast<const float*>(views[7].data());
    if (g.rows_ > 0) g.traversal_ = Traversal::kSq8;
  }

  if (g.rows_ == 0) {
    if (g.entry_ != kNoRow || g.max_level_ != 0 || g.upper_blocks_ != 0) {
      return corrupt(kHnswHeader, hnsw_header::kEntryPoint, "empty graph with an entry point");
    }
    return g;
  }
  if (g.entry_ >= g.rows_) {
    return corrupt(kHnswHeader, hnsw_header::kEntryPoint, "entry point " + std::to_string(g.entry_) + " >= rows " +
                                                              std::to_string(g.rows_));
  }
  if (g.levels_[g.entry_] != g.max_level_) {
    return corrupt(kHnswLevels, g.entry_, "entry point " + std::to_string(g.entry_) + " has level " +
                                              std::to_string(g.levels_[g.entry_]) + ", the max level is " +
                                              std::to_string(g.max_level_));
  }
  if (g.max_level_ > 0 && g.upper_blocks_ < g.max_level_) {
    return corrupt(kHnswHeader, hnsw_header::kUpperBlocks, "fewer upper blocks than the entry point's levels");
  }
  return g;
}

Status HnswGraph::LinkCorruption(SectionKind kind, uint64_t byte_in_section, const std::string& what) const {
  const uint32_t i = KindNumber(kind) - KindNumber(kHnswHeader);
  const uint64_t offset = (file_offsets_ && i < kNumKinds ? section_offset_[i] : 0) + byte_in_section;
  std::string msg = std::string(segment::SectionKindName(kind)) + ": " + what;
  if (!file_offsets_) msg += " (offset within section " + std::to_string(KindNumber(kind)) + ")";
  return Status::Corruption(file_, offset, msg);
}

Status HnswGraph::UpperBlock(uint32_t row, uint32_t level, const uint32_t** links) const {
  if (levels_[row] < level) {
    return LinkCorruption(kHnswLevels, row, "row " + std::to_string(row) + " is linked on layer " +
                                                std::to_string(level) + " but has level " +
                                                std::to_string(levels_[row]));
  }
  const uint64_t block = uint64_t{upper_index_[row]} + level - 1;
  if (block >= upper_blocks_) {
    return LinkCorruption(kHnswUpperIndex, uint64_t{row} * 4, "row " + std::to_string(row) + " points at upper block " +
                                                                  std::to_string(block) + " of " +
                                                                  std::to_string(upper_blocks_));
  }
  *links = upper_links_ + block * (uint64_t{m_} + 1);
  return Status::OK();
}

// Layer 0 of one search: the candidate queue (closest on top), the ef best
// returnable live rows by the walk's distances (s.results, farthest on top:
// their farthest is the bound past which the walk stops), the visited marks
// and the batch of rows waiting to be scored. Both walks gather a node's
// rows into the batch (Add) and Flush it, which scores it and offers each
// row to the queue and the results.
//
// A filtered search's SQ8 walk (SearchFiltered, SearchGated) also keeps the
// exact answer beside: every returnable live row
// whose code distance could put it among the k best is re-scored in float32
// at once, and the k best of those float32 distances are the result
// (s.exact). "Could" means the code distance is below the k-th best float32
// distance so far plus a margin of kMarginSigmas times the RMS difference
// between the code and float32 distances of the rows re-scored so far (every
// row until kMinErrorSamples are measured). The codes only steer the walk:
// far from the query (a filter that excludes its neighbourhood), distances
// crowd together and the codes' error exceeds the gaps between the passing
// rows there, so choosing the k best among a fixed number of the best by
// code distance lost most of the true top k (bench/filtered_sweep.cc,
// index/filtered.h). Search, whose answer is the query's own neighbourhood
// where the codes order rows well, re-scores the RerankCount(k) best of its
// ef by code distance at the end instead (cheaper: 40 float32 rows at k 10
// against 60 .. 90 kept on the way, which cost it 1.2 .. 1.6x its time at
// ef 10 .. 64 on 100k x 128).
template <class Scorer>
class HnswGraph::Layer0Walk {
 public:
  using Row = typename Scorer::Row;
  static constexpr float kMarginSigmas = 3;
  static constexpr uint64_t kMinErrorSamples = 16;

  // `states` marks per node (VisitedSet::Begin); marks() + epoch() is
  // "visited". `keep_exact`: keep the exact top k (an SQ8 walk only).
  Layer0Walk(const HnswGraph& g, const Scorer& scorer, const float* query, size_t k, size_t ef, RowFilter is_live,
             uint16_t states, bool keep_exact)
      : keep_exact_(!Scorer::kExact && keep_exact),
        g_(g),
        scorer_(scorer),
        query_(query),
        k_(k),
        ef_(ef),
        is_live_(is_live),
        s_(ThreadScratch()),
        work_(ThreadSearchWork()),
        batch_(scorer.Rows(s_).data()),
        ids_(s_.ids.data()),
        capacity_(scorer.Rows(s_).size()) {
    internal::VisitedSet& visited = internal::ThreadVisitedSet();
    visited.Begin(g.rows_, states);
    marks_ = visited.marks();
    epoch_ = visited.epoch();
    s_.candidates.clear();
    s_.results.clear();
    s_.exact.clear();
  }

  uint16_t* marks() const { return marks_; }
  uint16_t epoch() const { return epoch_; }
  SearchWork& work() const { return work_; }
  size_t batched() const { return n_; }
  size_t capacity() const { return capacity_; }
  bool full() const { return s_.results.size() >= ef_; }

  // Starts from row `id` at distance d (the descent's row).
  void Start(uint32_t id, float d, bool returnable) {
    marks_[id] = epoch_;
    int live = returnable ? -1 : 0;
    if (keep_exact_ && returnable) {
      live = is_live_(id) ? 1 : 0;
      if (live != 0) {
        StageExact(0, id, d);
        RescoreExact(1);
      }
    }
    Offer(d, id, returnable, live, &bound_);
  }

  // The next node to expand, best first, into *c; false when the queue is
  // empty or its best is past the bound with ef results in hand.
  bool Pop(Cand* c) {
    std::vector<Cand>& candidates = s_.candidates;
    if (candidates.empty()) return false;
    *c = candidates.front();
    if (c->d > bound_ && full()) return false;
    std::pop_heap(candidates.begin(), candidates.end(), ClosestOnTop());
    candidates.pop_back();
    return true;
  }
  bool QueueEmpty() const { return s_.candidates.empty(); }

  // Points *links at row `id`'s layer-0 list after checking its count.
  Status List(uint32_t id, const uint32_t** links) const {
    const uint64_t at = uint64_t{id} * (uint64_t{g_.m0_} + 1);
    *links = g_.layer0_ + at;
    if ((*links)[0] > g_.m0_) {
      return g_.LinkCorruption(kHnswLayer0, at * 4, "row " + std::to_string(id) + " has " +
                                                         std::to_string((*links)[0]) + " links, more than m0 " +
                                                         std::to_string(g_.m0_));
    }
    return Status::OK();
  }
  // Link j of row `from`'s list is `id` >= rows.
  Status BadLink(uint32_t from, uint32_t j, uint32_t id) const {
    return g_.LinkCorruption(kHnswLayer0, (uint64_t{from} * (uint64_t{g_.m0_} + 1) + j) * 4,
                             "link to row " + std::to_string(id) + " >= rows " + std::to_string(g_.rows_));
  }

  // Marks row `id` visited and adds it to the batch (batched() < capacity()).
  void Add(uint32_t id) {
    marks_[id] = epoch_;
    const Row row = scorer_.At(id);
    scorer_.Prefetch(row);
    batch_[n_] = row;
    ids_[n_] = id;
    ++n_;
  }

  // Scores the batch and offers its rows; the first `returnable` of them may be returned.
  void Flush(size_t returnable) {
    const size_t n = n_;
    if (n == 0) return;
    n_ = 0;
    work_.walk_scored += n;
    // The next node to expand is most likely the best one already queued
    // (before the scoring) or just offered (after the offers).
    std::vector<Cand>& candidates = s_.candidates;
    const uint64_t stride = uint64_t{g_.m0_} + 1;
    if (!candidates.empty()) PrefetchLinks(g_.layer0_ + uint64_t{candidates.front().id} * stride, stride);
    float* const scores = s_.scores.data();
    const uint32_t* const ids = ids_;
    scorer_.Score(batch_, ids, n, scores);
    // The bounds in locals: the heaps' stores could alias the members.
    float bound = bound_;
    if (keep_exact_) {
      // A returnable row is re-scored while fewer than k are, then when its
      // code distance is below rescore_below.
      const bool rescore_all = s_.exact.size() < k_;
      const float rescore_below = exact_bound_ + margin_;
      size_t m = 0;
      for (size_t i = 0; i < n; ++i) {
        const float d = Distance(scores[i]);
        int live = i < returnable ? -1 : 0;
        if (live < 0 && (rescore_all || d < rescore_below)) {
          live = is_live_(ids[i]) ? 1 : 0;
          if (live != 0) StageExact(m++, ids[i], d);
        }
        Offer(d, ids[i], i < returnable, live, &bound);
      }
      bound_ = bound;
      if (m > 0) RescoreExact(m);
    } else {
      for (size_t i = 0; i < n; ++i) Offer(Distance(scores[i]), ids[i], i < returnable, -1, &bound);
      bound_ = bound;
    }
    if (!candidates.empty()) PrefetchLinks(g_.layer0_ + uint64_t{candidates.front().id} * stride, stride);
  }

  // The min(k, found) best into *out, best first: the exact top k when it
  // was kept; else an SQ8 walk's RerankCount(k) best by code distance
  // re-scored in float32, or a float32 walk's k best results.
  void TakeResults(std::vector<Neighbor>* out) {
    std::vector<Cand>& best = keep_exact_ ? s_.exact : s_.results;
    if (!keep_exact_ && !Scorer::kExact) {
      const size_t rerank = RerankCount(k_);
      if (best.size() > rerank) {
        std::nth_element(best.begin(), best.begin() + rerank, best.end(), internal::CloserThan);
        best.resize(rerank);
      }
      for (size_t i = 0; i < best.size(); ++i) StageExact(i, best[i].id, best[i].d);
      float* const scores = s_.exact_scores.data();
      simd::ScoreGather(g_.metric_, query_, s_.exact_rows.data(), best.size(), g_.dim_, scores);
      work_.exact_scored += best.size();
      for (size_t i = 0; i < best.size(); ++i) best[i].d = Distance(scores[i]);
      const size_t n = std::min(k_, best.size());
      std::partial_sort(best.begin(), best.begin() + n, best.end(), internal::CloserThan);
      best.resize(n);
    } else if (!keep_exact_) {
      while (best.size() > k_) {
        std::pop_heap(best.begin(), best.end(), FarthestOnTop());
        best.pop_back();
      }
    }
    std::sort(best.begin(), best.end(), internal::CloserThan);
    out->reserve(best.size());
    for (const Cand& c : best) out->push_back(Neighbor{-c.d, c.id});
  }

 private:
  // Offers a scored row to the queue and, when it is returnable and live, to
  // the results, whose farthest is *bound once they hold ef. live: 1 or 0
  // when known, -1 to ask is_live if the row enters.
  void Offer(float d, uint32_t id, bool returnable, int live, float* bound) {
    std::vector<Cand>& results = s_.results;
    if (results.size() < ef_ || d < *bound) {
      std::vector<Cand>& candidates = s_.candidates;
      candidates.push_back(Cand{d, id});
      std::push_heap(candidates.begin(), candidates.end(), ClosestOnTop());
      if (returnable && (live > 0 || (live < 0 && is_live_(id)))) {
        results.push_back(Cand{d, id});
        std::push_heap(results.begin(), results.end(), FarthestOnTop());
        if (results.size() > ef_) {
          std::pop_heap(results.begin(), results.end(), FarthestOnTop());
          results.pop_back();
        }
      }
      if (results.size() >= ef_) *bound = results.front().d;
    }
  }

  // Puts row `id` (code distance d) at slot i of the float32 batch.
  void StageExact(size_t i, uint32_t id, float d) {
    s_.exact_rows[i] = g_.vectors_ + uint64_t{id} * g_.dim_;
    s_.exact_ids[i] = id;
    s_.exact_codes[i] = d;
  }

  // Scores the first m staged rows in float32 into the exact top k and the error estimate.
  void RescoreExact(size_t m) {
    float* const scores = s_.exact_scores.data();
    simd::ScoreGather(g_.metric_, query_, s_.exact_rows.data(), m, g_.dim_, scores);
    work_.exact_scored += m;
    std::vector<Cand>& exact = s_.exact;
    for (size_t i = 0; i < m; ++i) {
      const Cand c{Distance(scores[i]), s_.exact_ids[i]};
      const float error = s_.exact_codes[i] - c.d;
      if (std::isfinite(error)) {
        error_sum2_ += double{error} * error;
        ++error_samples_;
      }
      if (exact.size() < k_ || internal::CloserThan(c, exact.front())) {
        exact.push_back(c);
        std::push_heap(exact.begin(), exact.end(), internal::CloserThan);
        if (exact.size() > k_) {
          std::pop_heap(exact.begin(), exact.end(), internal::CloserThan);
          exact.pop_back();
        }
      }
    }
    if (exact.size() >= k_) exact_bound_ = exact.front().d;
    if (error_samples_ >= kMinErrorSamples) {
      margin_ = kMarginSigmas * static_cast<float>(std::sqrt(error_sum2_ / static_cast<double>(error_samples_)));
    }
  }

  const bool keep_exact_;
  const HnswGraph& g_;
  const Scorer& scorer_;
  const float* const query_;
  const size_t k_;
  const size_t ef_;
  const RowFilter is_live_;
  SearchScratch& s_;
  SearchWork& work_;
  Row* const batch_;
  uint32_t* const ids_;
  const size_t capacity_;
  size_t n_ = 0;
  uint16_t* marks_ = nullptr;
  uint16_t epoch_ = 0;
  float bound_ = std::numeric_limits<float>::infinity();
  float exact_bound_ = std::numeric_limits<float>::infinity();
  float margin_ = std::numeric_limits<float>::infinity();
  double error_sum2_ = 0;
  uint64_t error_samples_ = 0;
};

Status HnswGraph::Search(const float* query, size_t k, size_t ef, RowFilter is_live,
                         std::vector<Neighbor>* out) const {
  return PlainSearch(query, k, ef, is_live, false, out);
}

Status HnswGraph::PlainSearch(const float* query, size_t k, size_t ef, RowFilter is_live, bool keep_exact,
                              std::vector<Neighbor>* out) const {
  out->clear();
  if (rows_ == 0 || k == 0) return Status::OK();
  if (query == nullptr) return Status::InvalidArgument("hnsw search: null query");
  // A queue longer than the graph cannot fill: ef is at most rows.
  ef = static_cast<size_t>(std::min<uint64_t>(std::max(ef, k), rows_));
  try {
    ThreadScratch().Reserve(std::max(m_, m0_), k, ef);
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("hnsw search: out of memory for ef " + std::to_string(ef));
  }
  return RunSearch(query, k, ef, is_live, nullptr, keep_exact, out);
}

Status HnswGraph::RunSearch(const float* query, size_t k, size_t ef, RowFilter is_live, const PassTest* pass,
                            bool keep_exact, std::vector<Neighbor>* out) const {
  if (traversal_ == Traversal::kSq8) {
    SearchScratch& s = ThreadScratch();
    s.sq8_query.Prepare(metric_, query, sq8_params_, sq8_params_ + dim_, dim_, sq8_norms_);
    return RunWalk(Sq8Scorer{sq8_codes_, sq8::Stride(dim_), &s.sq8_query}, query, k, ef, is_live, pass,
                   keep_exact, out);
  }
  return RunWalk(FloatScorer{vectors_, dim_, metric_, query}, query, k, ef, is_live, pass, keep_exact, out);
}

template <class Scorer>
Status HnswGraph::RunWalk(const Scorer& scorer, const float* query, size_t k, size_t ef, RowFilter is_live,
                          const PassTest* pass, bool keep_exact, std::vector<Neighbor>* out) const {
  uint32_t cur = entry_;
  float cur_d = 0;
  POMAI_RETURN_IF_ERROR(Descend(scorer, &cur, &cur_d));
  Layer0Walk<Scorer> w(*this, scorer, query, k, ef, is_live, pass != nullptr ? 2 : 1, keep_exact);
  if (pass != nullptr) {
    POMAI_RETURN_IF_ERROR(WalkFiltered(w, cur, cur_d, *pass));
  } else {
    POMAI_RETURN_IF_ERROR(Walk(w, cur, cur_d));
  }
  w.TakeResults(out);
  return Status::OK();
}

template <class Scorer>
Status HnswGraph::Descend(const Scorer& scorer, uint32_t* entry, float* entry_d) const {
  SearchScratch& s = ThreadScratch();
  using Row = typename Scorer::Row;
  Row* const rows_buf = scorer.Rows(s).data();
  float* const scores = s.scores.data();

  uint32_t cur = entry_;
  float score;
  const Row entry_row = scorer.At(cur);
  scorer.Score(&entry_row, &cur, 1, &score);
  float cur_d = Distance(score);
  for (uint32_t level = max_level_; level >= 1; --level) {
    for (bool changed = true; changed;) {
      changed = false;
      const uint32_t* links;
      POMAI_RETURN_IF_ERROR(UpperBlock(cur, level, &links));
      const uint32_t count = links[0];
      const uint64_t at = static_cast<uint64_t>(links - upper_links_) * 4;
      if (count > m_) {
        return LinkCorruption(kHnswUpperLinks, at, "row " + std::to_string(cur) + " has " + std::to_string(count) +
                                                       " links on layer " + std::to_string(level) + ", more than m " +
                                                       std::to_string(m_));
      }
      for (uint32_t j = 0; j < count; ++j) {
        const uint32_t id = links[1 + j];
        if (id >= rows_) {
          return LinkCorruption(kHnswUpperLinks, at + 4 * (1 + j), "link to row " + std::to_string(id) + " >= rows " +
                                                                       std::to_string(rows_));
        }
        rows_buf[j] = scorer.At(id);
      }
      scorer.Score(rows_buf, links + 1, count, scores);
      ThreadSearchWork().walk_scored += count;
      for (uint32_t j = 0; j < count; ++j) {
        const float d = Distance(scores[j]);
        if (d < cur_d) {
          cur_d = d;
          cur = links[1 + j];
          changed = true;
        }
      }
    }
  }
  *entry = cur;
  *entry_d = cur_d;
  return Status::OK();
}

// hnswlib's searchBaseLayerST on layer 0: best-first from the descent's
// row `cur`, every unvisited neighbour of an expanded node scored. Rows that
// are not live still become candidates.
template <class Scorer>
Status HnswGraph::Walk(Layer0Walk<Scorer>& w, uint32_t cur, float cur_d) const {
  const uint32_t rows = static_cast<uint32_t>(rows_);
  uint16_t* const marks = w.marks();
  const uint16_t visited = w.epoch();
  SearchWork& work = w.work();
  w.Start(cur, cur_d, true);
  for (Cand c; w.Pop(&c);) {
    const uint32_t* links;
    POMAI_RETURN_IF_ERROR(w.List(c.id, &links));
    const uint32_t count = links[0];
    for (uint32_t j = 1; j <= count; ++j) {
      const uint32_t id = links[j];
      if (id >= rows) return w.BadLink(c.id, j, id);
      if (j < count) __builtin_prefetch(marks + links[j + 1]);
      if (marks[id] != visited) w.Add(id);
    }
    work.links += count;
    w.Flush(w.batched());
  }
  return Status::OK();
}

Status HnswGraph::SearchFiltered(const float* query, size_t k, size_t ef, const PassTest& pass, RowFilter is_live,
                                 std::vector<Neighbor>* out) const {
  out->clear();
  if (pass.rows() != rows_) {
    return Status::InvalidArgument("hnsw filtered search: the filter covers " + std::to_string(pass.rows()) +
                                   " rows, the graph " + std::to_string(rows_));
  }
  if (rows_ == 0 || k == 0) return Status::OK();
  if (query == nullptr) return Status::InvalidArgument("hnsw filtered search: null query");
  const uint64_t passing = pass.passing();
  if (passing == 0) return Status::OK();
  // No more than `passing` rows can be found: a longer queue would only make
  // the walk visit every row before it stops.
  ef = static_cast<size_t>(std::max<uint64_t>(std::min<uint64_t>(ef, passing), k));
  ef = static_cast<size_t>(std::min<uint64_t>(ef, rows_));
  try {
    ThreadScratch().Reserve(std::max(m_, m0_), k, ef);
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("hnsw filtered search: out of memory for ef " + std::to_string(ef));
  }
  return RunSearch(query, k, ef, is_live, &pass, true, out);
}

Status HnswGraph::SearchGated(const float* query, size_t k, size_t ef, const PassTest& pass, RowFilter is_live,
                              std::vector<Neighbor>* out) const {
  out->clear();
  if (pass.rows() != rows_) {
    return Status::InvalidArgument("hnsw gated search: the filter covers " + std::to_string(pass.rows()) +
                                   " rows, the graph " + std::to_string(rows_));
  }
  const uint64_t passing = pass.passing();
  if (passing == 0 || k == 0) return Status::OK();
  ef = static_cast<size_t>(std::max<uint64_t>(std::min<uint64_t>(ef, passing), k));  // as in SearchFiltered
  if (is_live.all_live()) return PlainSearch(query, k, ef, [&pass](uint32_t row) { return pass(row); }, true, out);
  return PlainSearch(query, k, ef, [&pass, is_live](uint32_t row) { return pass(row) && is_live(row); }, true, out);
}

// Layer 0 of a filtered search. Only passing rows are scored on the way:
// expanding a node scores its passing neighbours and, when fewer than
// TwoHopBelow(m0) of its neighbours pass, the passing neighbours of its
// non-passing neighbours (two hops, ACORN-1's expansion) until its passing
// neighbourhood, visited rows included, holds m0 rows. The candidate queue
// is best-first with the plain walk's bound. Non-passing rows met on the way
// are kept unscored in s.frontier; when the queue runs dry with fewer than
// ef results and passing rows not yet visited, the frontier rows are scored
// and queued as bridges (expanded one hop, never returned), so the walk
// reaches every row the plain walk reaches. Marks: `visited` = scored (or
// the entry), `seen` = a non-passing row in the frontier.
template <class Scorer>
Status HnswGraph::WalkFiltered(Layer0Walk<Scorer>& w, uint32_t cur, float cur_d, const PassTest& pass) const {
  SearchWork& work = w.work();
  uint16_t* const marks = w.marks();
  const uint16_t visited = w.epoch();
  const uint16_t seen = static_cast<uint16_t>(visited + 1);
  std::vector<uint32_t>& frontier = ThreadScratch().frontier;
  frontier.clear();
  const uint32_t rows = static_cast<uint32_t>(rows_);
  const uint32_t two_hop_below = TwoHopBelow(m0_);
  const uint64_t passing = pass.passing();
  const PassTest& passes = pass;
  uint64_t passing_visited = 0;  // passing rows scored so far
  // Set once the queue has run dry: the passing rows near the query are not
  // connected through two hops (a filter that excludes the query's
  // neighbourhood, or very few passing rows), and the walk goes on as the
  // gated walk does, scoring non-passing neighbours as bridges.
  bool bridging = false;

  if (passes(cur)) ++passing_visited;
  w.Start(cur, cur_d, passes(cur));

  for (;;) {
    for (Cand c; w.Pop(&c);) {
      const uint32_t* links;
      POMAI_RETURN_IF_ERROR(w.List(c.id, &links));
      const uint32_t count = links[0];
      uint32_t passing_near = 0;  // passing rows among the neighbours
      for (uint32_t j = 1; j <= count; ++j) {
        const uint32_t id = links[j];
        if (id >= rows) return w.BadLink(c.id, j, id);
        if (passes(id)) {
          ++passing_near;
          if (marks[id] != visited) w.Add(id);
        } else if (marks[id] != visited && marks[id] != seen) {
          marks[id] = seen;
          frontier.push_back(id);
        }
      }
      // Bridges met after the queue ran dry go one hop: their non-passing
      // neighbours join the frontier instead (two hops from every bridge
      // would read m0 lists per row while the walk crosses a region the
      // filter excludes).
      if (passing_near < two_hop_below && (passes(c.id) || c.id == cur)) {
        // Two hops: the passing neighbours of the non-passing neighbours, in
        // link order, until the node's passing neighbourhood (visited rows
        // included) holds a list's worth, as ACORN-1 truncates it.
        for (uint32_t j = 1; j <= count && passing_near < m0_; ++j) {
          const uint32_t via = links[j];
          // A scored non-passing row is a bridge: its own expansion finds its passing neighbours.
          if (passes(via) || marks[via] == visited) continue;
          const uint32_t* links2;
          POMAI_RETURN_IF_ERROR(w.List(via, &links2));
          const uint32_t count2 = links2[0];
          work.links += count2;
          for (uint32_t i = 1; i <= count2; ++i) {
            const uint32_t id = links2[i];
            if (id >= rows) return w.BadLink(via, i, id);
            if (!passes(id)) continue;
            ++passing_near;
            if (marks[id] != visited) w.Add(id);
          }
        }
      }
      work.links += count;
      const size_t new_passing = w.batched();
      if (bridging) {
        for (uint32_t j = 1; j <= count; ++j) {
          const uint32_t id = links[j];
          if (!passes(id) && marks[id] != visited) w.Add(id);
        }
      }
      passing_visited += new_passing;
      w.Flush(new_passing);
    }
    // The queue ran dry or its best is past the bound: done when the
    // results are full or no passing row is left to find.
    if (w.full() || passing_visited >= passing) return Status::OK();
    // Score the frontier's rows still unscored and queue them as bridges;
    // from now on every expansion scores its non-passing neighbours too.
    bridging = true;
    for (const uint32_t id : frontier) {
      if (marks[id] != seen) continue;
      w.Add(id);
      if (w.batched() == w.capacity()) w.Flush(0);
    }
    w.Flush(0);
    frontier.clear();
    if (w.QueueEmpty()) return Status::OK();  // every reachable row is visited
  }
}

Status HnswGraph::Verify() const {
  if (rows_ == 0) return Status::OK();
  // Levels and the upper index (the prefix sum of the levels).
  uint64_t next_block = 0;
  for (uint64_t r = 0; r < rows_; ++r) {
    if (levels_[r] > max_level_) {
      return LinkCorruption(kHnswLevels, r, "row " + std::to_string(r) + " has level " + std::to_string(levels_[r]) +
                                                " > max level " + std::to_string(max_level_));
    }
    if (upper_index_[r] != next_block) {
      return LinkCorruption(kHnswUpperIndex, r * 4, "row " + std::to_string(r) + " starts at upper block " +
                                                        std::to_string(upper_index_[r]) + ", expected " +
                                                        std::to_string(next_block));
    }
    next_block += levels_[r];
  }
  if (next_block != upper_blocks_) {
    return LinkCorruption(kHnswHeader, hnsw_header::kUpperBlocks,
                          "the levels imply " + std::to_string(next_block) + " upper blocks, the header says " +
                              std::to_string(upper_blocks_));
  }

  // Every link list: count, ids, no self or duplicate links, targets reach the layer, zero padding.
  // seen[id] == list stamp marks ids already in the current list.
  std::vector<uint32_t> seen(rows_, 0);
  auto check_list = [&](SectionKind kind, const uint32_t* base, uint64_t block, uint32_t degree, uint64_t row,
                        uint32_t level, uint32_t stamp) -> Status {
    const uint32_t* links = base + block * (uint64_t{degree} + 1);
    const uint64_t at = block * (uint64_t{degree} + 1) * 4;
    const uint32_t count = links[0];
    if (count > degree) {
      return LinkCorruption(kind, at, "row " + std::to_string(row) + " has " + std::to_string(count) +
                                          " links on layer " + std::to_string(level) + ", more than " +
                                          std::to_string(degree));
    }
    for (uint32_t j = 1; j <= degree; ++j) {
      const uint32_t id = links[j];
      const uint64_t link_at = at + 4 * uint64_t{j};
      if (j > count) {
        if (id != 0) return LinkCorruption(kind, link_at, "unused link slot is not zero");
        continue;
      }
      if (id >= rows_) {
        return LinkCorruption(kind, link_at, "link to row " + std::to_string(id) + " >= rows " +
                                                 std::to_string(rows_));
      }
      if (id == row) return LinkCorruption(kind, link_at, "row " + std::to_string(row) + " links to itself");
      if (levels_[id] < level) {
        return LinkCorruption(kind, link_at, "link on layer " + std::to_string(level) + " to row " +
                                                 std::to_string(id) + " of level " + std::to_string(levels_[id]));
      }
      if (seen[id] == stamp) {
        return LinkCorruption(kind, link_at, "row " + std::to_string(row) + " links twice to row " +
                                                 std::to_string(id));
      }
      seen[id] = stamp;
    }
    return Status::OK();
  };
  for (uint64_t r = 0; r < rows_; ++r) {
    POMAI_RETURN_IF_ERROR(check_list(kHnswLayer0, layer0_, r, m0_, r, 0, static_cast<uint32_t>(r + 1)));
  }
  std::fill(seen.begin(), seen.end(), 0);
  for (uint64_t r = 0; r < rows_; ++r) {
    for (uint32_t level = 1; level <= levels_[r]; ++level) {
      const uint64_t block = uint64_t{upper_index_[r]} + level - 1;  // < upper_blocks_: checked above
      POMAI_RETURN_IF_ERROR(
          check_list(kHnswUpperLinks, upper_links_, block, m_, r, level, static_cast<uint32_t>(block + 1)));
    }
  }
  if (sq8_codes_ != nullptr) {
    for (uint32_t j = 0; j < 2 * dim_; ++j) {
      const float v = sq8_params_[j];
      if (!std::isfinite(v) || (j >= dim_ && v < 0)) {
        return LinkCorruption(kHnswSq8Params, uint64_t{j} * 4, "bad sq8 parameter " + std::to_string(v));
      }
    }
    const uint64_t stride = sq8::Stride(dim_);
    for (uint64_t r = 0; r < rows_ && stride > dim_; ++r) {
      for (uint64_t j = dim_; j < stride; ++j) {
        if (sq8_codes_[r * stride + j] != 0) {
          return LinkCorruption(kHnswSq8Codes, r * stride + j, "sq8 code padding is not zero");
        }
      }
    }
    // Each norm is what the codes imply (recomputed the way the build computed it).
    for (uint64_t r = 0; r < rows_ && sq8_norms_ != nullptr; ++r) {
      const float want = sq8::RowNorm(metric_, sq8_params_, sq8_params_ + dim_, sq8_codes_ + r * stride, dim_);
      const float got = sq8_norms_[r];
      if (!(std::fabs(got - want) <= 1e-6f * std::fabs(want))) {
        return LinkCorruption(kHnswSq8Norms, r * 4, "sq8 norm of row " + std::to_string(r) + " is " +
                                                      std::to_string(got) + ", its codes give " + std::to_string(want));
      }
    }
  }
  return Status::OK();
}

Result<HnswStats> HnswGraph::Stats() const {
  HnswStats st;
  st.rows = rows_;
  st.dim = dim_;
  st.m = m_;
  st.m0 = m0_;
  st.max_level = max_level_;
  st.entry_point = entry_;
  st.seed = seed_;
  st.ef_construction = ef_construction_;
  st.sq8 = sq8_codes_ != nullptr;
  st.reused_rows = reused_rows_;
  st.bytes = kHnswHeaderSize + rows_ + rows_ * (uint64_t{m0_} + 1) * 4 + rows_ * 4 +
             upper_blocks_ * (uint64_t{m_} + 1) * 4 + (st.sq8 ? 8 * uint64_t{dim_} + rows_ * sq8::Stride(dim_) : 0) +
             (sq8_norms_ != nullptr ? rows_ * 4 : 0);
  st.nodes_per_level.assign(max_level_ + 1, 0);
  for (uint64_t r = 0; r < rows_; ++r) {
    if (levels_[r] > max_level_) {
      return LinkCorruption(kHnswLevels, r, "row " + std::to_string(r) + " has level " + std::to_string(levels_[r]) +
                                                " > max level " + std::to_string(max_level_));
    }
    ++st.nodes_per_level[levels_[r]];
    const uint64_t at = r * (uint64_t{m0_} + 1);
    const uint32_t count = layer0_[at];
    if (count > m0_) return LinkCorruption(kHnswLayer0, at * 4, "link count out of range");
    st.layer0_edges += count;
  }
  for (uint64_t b = 0; b < upper_blocks_; ++b) {
    const uint64_t at = b * (uint64_t{m_} + 1);
    const uint32_t count = upper_links_[at];
    if (count > m_) return LinkCorruption(kHnswUpperLinks, at * 4, "link count out of range");
    st.upper_edges += count;
  }
  if (rows_ > 0) st.avg_degree0 = static_cast<double>(st.layer0_edges) / static_cast<double>(rows_);
  if (upper_blocks_ > 0) st.avg_degree_upper = static_cast<double>(st.upper_edges) / static_cast<double>(upper_blocks_);
  return st;
}

Status HnswGraph::Links(uint32_t row, uint32_t level, const uint32_t** ids, uint32_t* count) const {
  if (row >= rows_) {
    return Status::InvalidArgument("hnsw: row " + std::to_string(row) + " >= rows " + std::to_string(rows_));
  }
  if (level > levels_[row]) {
    return Status::InvalidArgument("hnsw: row " + std::to_string(row) + " has level " + std::to_string(levels_[row]) +
                                   ", no links on layer " + std::to_string(level));
  }
  const uint32_t* block = nullptr;
  uint32_t degree = m0_;
  SectionKind kind = kHnswLayer0;
  uint64_t at = 0;
  if (level == 0) {
    at = uint64_t{row} * (uint64_t{m0_} + 1);
    block = layer0_ + at;
  } else {
    POMAI_RETURN_IF_ERROR(UpperBlock(row, level, &block));
    degree = m_;
    kind = kHnswUpperLinks;
    at = static_cast<uint64_t>(block - upper_links_);
  }
  if (block[0] > degree) return LinkCorruption(kind, at * 4, "link count out of range");
  *count = block[0];
  *ids = block + 1;
  return Status::OK();
}

}  // namespace pomai::index
