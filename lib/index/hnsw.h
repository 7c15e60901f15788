// HNSW (hierarchical navigable small world) graphs over a segment's vectors:
// built in memory at freeze, serialized as segment sections
// (index/hnsw_format.h), and searched in place from the mmap.
//
// The algorithm is hnswlib's: levels drawn as floor(-ln(U) / ln(M)), the
// heuristic neighbour selection on insert and when a full list is shrunk,
// degree 2M on layer 0 and M above, greedy descent through the upper layers
// and a best-first search with a queue of `ef` on layer 0. Node ids are row
// numbers. Scores are the engine's, higher is better (simd/distance.h); the
// graph works on distance = -score.
#pragma once

#include <algorithm>
#include <cstddef>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "index/hnsw_format.h"
#include "simd/distance.h"
#include "util/bitmap.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace pomai::index {

struct HnswParams {
  uint32_t m = 32;  // degree bound of the upper layers; layer 0 has 2m
  uint32_t ef_construction = 200;
  uint64_t seed = 42;  // a row's level depends only on (seed, row)
  // Also store an 8-bit copy of the vectors (index/sq8.h) for searches to walk with.
  bool sq8 = true;
  // When set, a build checks it between rows and, once it reads true, stops
  // and returns Closed "hnsw: the build was stopped" (a closing database
  // does not wait for a graph nobody will search).
  const std::atomic<bool>* stop = nullptr;
};

// One serialized section, to be stored in the segment under `kind`.
struct GraphSection {
  uint32_t kind;
  std::string bytes;
};

// Builds the graph of `rows` row-major vectors of `dim` floats (row i is node
// i; rows <= kMaxRows) and returns its sections, header first (the graph is
// built with exact float32 distances whether or not params.sq8 is set). `vectors` must
// stay valid and unchanged during the call. With `pool` the rows are inserted
// concurrently (the graph then depends on the scheduling); with pool ==
// nullptr the build is sequential in row order and its bytes depend only on
// the inputs and params. `progress`, if set, is called from one thread at a
// time (possibly a pool thread) with (rows inserted, rows), at most about a
// thousand times, and last with (rows, rows); it must not throw. Bad params
// (m < 2 or > 2048, ef_construction 0, dim 0) are InvalidArgument.
Result<std::vector<GraphSection>> BuildHnsw(const float* vectors, size_t rows, uint32_t dim, simd::Metric metric,
                                            const HnswParams& params, ThreadPool* pool,
                                            const std::function<void(uint64_t done, uint64_t total)>& progress);

class HnswGraph;

// The graph of an earlier row set to start a build from (compaction reuses
// its largest input's graph). new_row[r], for each of graph->rows() old
// rows, is the row old row r became in the new set (the same vector), or
// kNoRow when it was dropped; no two old rows map to one new row.
struct GraphBase {
  const HnswGraph* graph = nullptr;
  const uint32_t* new_row = nullptr;
};

// BuildHnswFrom reuses a base only when at least this share of the new rows are its rows.
constexpr double kMinReusedShare = 0.5;

// The rows BuildHnswFrom would carry over from `base` into a graph of `rows`
// rows: the mapped rows when the base was built with the same m,
// ef_construction, metric and representation (params.sq8) and they are at
// least kMinReusedShare of `rows`; else 0 (the build starts from nothing).
uint64_t ReusableRows(const GraphBase& base, size_t rows, simd::Metric metric, const HnswParams& params);

// BuildHnsw's result for the same inputs, built starting from `base` when
// ReusableRows is not 0: the base rows keep their levels and links
// (renumbered); a list that linked dropped rows keeps its other links and
// refills the freed slots from the dropped rows' links on that layer,
// closest first, with the heuristic's test; then the other rows are inserted
// (on `pool` when given) in row order. The header records the reused rows (HnswGraph::reused_rows). With
// pool == nullptr the bytes depend only on the inputs. The base graph is
// Verify()'d first: a damaged base is its Corruption error; a bad new_row
// map is InvalidArgument. `progress` as for BuildHnsw (reused rows count as
// done once repaired).
Result<std::vector<GraphSection>> BuildHnswFrom(const GraphBase& base, const float* vectors, size_t rows,
                                                uint32_t dim, simd::Metric metric, const HnswParams& params,
                                                ThreadPool* pool,
                                                const std::function<void(uint64_t done, uint64_t total)>& progress);

// One result: the engine's score (higher is better) and the row.
struct Neighbor {
  float score;
  uint32_t row;
};

// A non-owning reference to a callable `bool(uint32_t row)` that says whether
// a row may be returned. Default (or nullptr): every row is live. The callable
// must outlive every use of the RowFilter (pass a lambda straight to Search).
class RowFilter {
 public:
  RowFilter() = default;
  RowFilter(std::nullptr_t) {}  // NOLINT: implicit by design
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, RowFilter> &&
                                              std::is_invocable_r_v<bool, const F&, uint32_t>>>
  RowFilter(const F& f)  // NOLINT: implicit by design
      : obj_(&f), fn_([](const void* obj, uint32_t row) { return (*static_cast<const F*>(obj))(row); }) {}

  bool all_live() const { return fn_ == nullptr; }
  bool operator()(uint32_t row) const { return fn_ == nullptr || fn_(obj_, row); }

 private:
  const void* obj_ = nullptr;
  bool (*fn_)(const void*, uint32_t) = nullptr;
};

// The rows a filtered search may return (SearchFiltered, SearchGated): a
// bitmap holding every row's bit, or a deferred filter, whose bit for a
// row is decided by `decide(row)` the first time a walk asks and remembered
// in the caller's memo: `known` and `bits`, one bit per row each (row r is
// bit r % 64 of word r / 64), zeroed before the first search, used by one
// thread at a time, and kept across searches with the same filter.
// passing() is the count of passing rows when every bit is known, else an
// upper bound (a walk stops early once it has visited that many).
class PassTest {
 public:
  PassTest(const Bitmap& pass, uint64_t passing)
      : bits_(pass.words()), rows_(pass.size()), passing_(passing) {}
  PassTest(const Bitmap& pass) : PassTest(pass, pass.Count()) {}  // NOLINT: implicit by design
  PassTest(uint64_t rows, uint64_t passing_bound, uint64_t* known, uint64_t* bits, RowFilter decide)
      : known_(known), memo_bits_(bits), bits_(bits), rows_(rows), passing_(passing_bound), decide_(decide) {}

  uint64_t rows() const { return rows_; }
  uint64_t passing() const { return passing_; }
  // Whether row `row` < rows() passes.
  bool operator()(uint32_t row) const {
    const uint64_t bit = uint64_t{1} << (row & 63);
    if (known_ != nullptr && (known_[row >> 6] & bit) == 0) return Decide(row);
    return (bits_[row >> 6] & bit) != 0;
  }

 private:
  bool Decide(uint32_t row) const {
    const uint64_t bit = uint64_t{1} << (row & 63);
    const bool pass = decide_(row);
    known_[row >> 6] |= bit;
    if (pass) memo_bits_[row >> 6] |= bit;
    return pass;
  }

  uint64_t* known_ = nullptr;  // null: bits_ holds every row's bit
  uint64_t* memo_bits_ = nullptr;  // deferred: bits_, written as rows are decided
  const uint64_t* bits_ = nullptr;
  uint64_t rows_ = 0;
  uint64_t passing_ = 0;
  RowFilter decide_;
};

// Which vectors a search scores while it walks the graph.
enum class Traversal : uint8_t {
  kFloat32,  // the segment's vectors
  kSq8,      // the graph's 8-bit codes; the best re-scored in float32 (RerankCount, HnswGraph::SearchFiltered)
};

// How many of the ef rows Search's SQ8 walk keeps are re-scored in float32
// for a search of k: max(4k, 32), or all ef when fewer. The code distances
// order the query's own neighbourhood well enough that the exact top k is
// among them (recall@10 identical to re-scoring all ef at 4 decimals on the
// ANN benchmark's 200k x 128 and x 384 sets, ef 32 to 256, with as few as
// 20), and the float32 rows are the expensive reads of a search at high
// dimensions. Filtered searches do not rely on it (SearchFiltered).
constexpr size_t RerankCount(size_t k) { return std::max<size_t>(4 * k, 32); }

// The filtered walk expands a node through two hops when fewer than this
// many of its m0 layer-0 neighbours pass the filter (m0 / 4: measured in
// bench/filtered_bench.cc; see index/filtered.h).
constexpr uint32_t TwoHopBelow(uint32_t m0) { return std::max<uint32_t>(m0 / 4, 1); }

// The work of the searches run on the calling thread, summed until the
// caller resets it: what index/filtered.h's cost model counts.
struct SearchWork {
  uint64_t walk_scored = 0;   // rows scored by walks, in the walk's representation (SQ8 codes or float32)
  uint64_t exact_scored = 0;  // rows scored in float32 outside a walk's representation: SQ8 walks' re-scores, SearchExact
  uint64_t links = 0;         // layer-0 link ids read (two-hop reads included)
};
SearchWork& ThreadSearchWork();

// What `pomai-inspect graph` shows. Computed in O(rows).
struct HnswStats {
  uint64_t rows = 0;
  uint32_t dim = 0;
  uint32_t m = 0;
  uint32_t m0 = 0;
  uint32_t max_level = 0;
  uint32_t entry_point = kNoRow;
  uint64_t seed = 0;
  uint32_t ef_construction = 0;
  std::vector<uint64_t> nodes_per_level;  // [l] = rows whose top layer is l
  uint64_t layer0_edges = 0;
  uint64_t upper_edges = 0;
  double avg_degree0 = 0;       // layer-0 links per row
  double avg_degree_upper = 0;  // links per upper block
  bool sq8 = false;             // the SQ8 sections are present
  uint64_t reused_rows = 0;     // rows carried over from an input's graph by a compaction
  uint64_t bytes = 0;           // all graph sections
};

// A read-only view over the graph sections of one segment; copies nothing.
// The sections and the vectors must outlive the view (hold the segment).
// Thread-safe: Search may run on many threads at once.
class HnswGraph {
 public:
  // `section(kind)` returns the bytes of a section, empty when absent; it is
  // called only during Open. `vectors` (rows x dim floats, row-major) are the
  // segment's. Checks the header (magic, version, CRC, bounds, that rows, dim
  // and metric match), that every section has exactly the size the header
  // implies (overflow-checked) and the entry point; reads nothing else: O(1).
  // No graph (no header section) is NotFound; damage is Corruption naming
  // `file_for_errors` and an offset. If `file_base` is the start of the
  // mapping the sections live in, offsets are file offsets, else offsets
  // within the named section. u32 sections must be 4-byte aligned in memory
  // (InvalidArgument otherwise; segment sections are 64-byte aligned).
  static Result<HnswGraph> Open(const std::function<std::string_view(uint32_t kind)>& section,
                                const float* vectors, size_t rows, uint32_t dim, simd::Metric metric,
                                const std::string& file_for_errors, const char* file_base = nullptr);

  // The min(k, live rows found) rows nearest to `query` (dim floats), best
  // first, into *out (cleared first). `ef` is the size of the layer-0 queue;
  // ef < k counts as k. Rows for which is_live(row) is false are walked
  // through but never returned, and the walk goes on past ef candidates
  // until it has k live rows or has run out of candidates; is_live is called
  // only for rows that would enter the result set. Every link read is
  // bounds-checked: a damaged graph is Corruption (with no partial result),
  // never an out-of-bounds read. Every returned score is computed from
  // `vectors` (an SQ8 walk re-scores the RerankCount(k) best rows it keeps
  // in float32): the graph's own sections only choose the rows, so a caller
  // that checked `vectors` gets true scores even from a damaged graph (maybe
  // other rows).
  Status Search(const float* query, size_t k, size_t ef, RowFilter is_live, std::vector<Neighbor>* out) const;

  // Filtered searches (docs/FILTERS.md, "Execution"; index/filtered.h
  // chooses between them and an exact scan). `pass` covers every row
  // (InvalidArgument otherwise); a row may be returned only when it passes
  // and is_live(row). Both return the min(k, found) best such rows, best
  // first, float32 scores, and check every link read as Search does.
  //
  // Both walk an SQ8 graph by code distance but answer in float32: every
  // passing live row whose code distance is below the k-th best float32
  // distance so far plus three times the RMS code-vs-float32 difference
  // measured on the rows re-scored so far is re-scored as the walk meets it
  // (is_live is asked for those rows too), and the k best of those are
  // returned. A filter may exclude the query's neighbourhood: far from the
  // query distances crowd together and the codes' error exceeds the gaps
  // between passing rows, where Search's fixed RerankCount would lose most of
  // the true top k (index/filtered.h).
  //
  // SearchFiltered: the filtered walk. The upper layers are descended as in
  // Search (the filter plays no part there); on layer 0 only passing rows
  // are scored and returned, and a node with fewer than TwoHopBelow(m0)
  // passing neighbours also reaches the passing neighbours of its
  // non-passing ones (two hops, as ACORN-1). When the passing rows reachable
  // that way run out before ef are found, the non-passing rows met so far
  // are scored and walked through as bridges, and from then on the walk
  // scores non-passing neighbours too (as the gated walk does).
  //
  // Both walks clamp ef to [k, passing rows] (a longer queue cannot fill).
  // Guarantee: a walk stops only with ef live passing rows in hand, when
  // every passing row has been visited, or when no unvisited row is
  // reachable; so it returns min(k, L) rows, L = the live passing rows
  // reachable from the entry point on layer 0 (every row of an intact graph
  // built by BuildHnsw in practice, but HNSW does not promise it: a caller
  // that must return k when k pass compares the count with min(k, passing
  // live rows) and falls back to SearchExact). No bit set: nothing, after
  // PassTest(Bitmap) counts the bits, O(rows / 64).
  Status SearchFiltered(const float* query, size_t k, size_t ef, const PassTest& pass, RowFilter is_live,
                        std::vector<Neighbor>* out) const;
  // SearchGated: Search with pass && is_live as its row filter: every row
  // it meets is scored, failing rows are walked through and never returned.
  Status SearchGated(const float* query, size_t k, size_t ef, const PassTest& pass, RowFilter is_live,
                     std::vector<Neighbor>* out) const;

  // The walk's vectors: kSq8 (the default when the graph has codes) or kFloat32.
  // Asking for kSq8 without codes keeps kFloat32. Not thread-safe with Search.
  void set_traversal(Traversal t) { traversal_ = (t == Traversal::kSq8 && sq8_codes_ != nullptr) ? t : Traversal::kFloat32; }
  Traversal traversal() const { return traversal_; }
  bool has_sq8() const { return sq8_codes_ != nullptr; }

  // Checks every level, upper index entry and link (counts, ids < rows, no
  // self or duplicate links, links on layer l point at rows reaching layer
  // l, unused slots zero) and the SQ8 params (finite, scale >= 0) and code
  // padding. O(edges). After it succeeds, Search cannot fail.
  Status Verify() const;

  // Level distribution, degrees, sizes. Corruption if a count or level read
  // is out of range.
  Result<HnswStats> Stats() const;

  // Row `row`'s links on `level` (0 = layer 0): *ids points at *count row
  // ids in the mapping. Bounds-checked like Search: a row out of range or a
  // level above the row's is InvalidArgument, a bad count or upper index is
  // Corruption; the ids themselves are not checked (Verify does that).
  Status Links(uint32_t row, uint32_t level, const uint32_t** ids, uint32_t* count) const;
  // The row's top layer; row must be < rows().
  uint32_t level(uint32_t row) const { return levels_[row]; }

  uint64_t rows() const { return rows_; }
  uint32_t dim() const { return dim_; }
  simd::Metric metric() const { return metric_; }
  uint32_t m() const { return m_; }
  uint32_t m0() const { return m0_; }
  uint32_t max_level() const { return max_level_; }
  uint32_t entry_point() const { return entry_; }
  uint64_t seed() const { return seed_; }
  uint32_t ef_construction() const { return ef_construction_; }
  uint64_t reused_rows() const { return reused_rows_; }

  // Raw reads for building a new graph from this one (BuildHnswFrom): in
  // bounds only after Verify() succeeded. The list is [count, ids...].
  uint8_t LevelUnchecked(uint32_t row) const { return levels_[row]; }
  const uint32_t* LinksUnchecked(uint32_t row, uint32_t level) const {
    return level == 0 ? layer0_ + uint64_t{row} * (m0_ + 1)
                      : upper_links_ + (uint64_t{upper_index_[row]} + level - 1) * (uint64_t{m_} + 1);
  }

 private:
  HnswGraph() = default;

  Status LinkCorruption(segment::SectionKind kind, uint64_t byte_in_section, const std::string& what) const;
  // Points *links at the block of `row` on `level` >= 1 after checking it exists.
  Status UpperBlock(uint32_t row, uint32_t level, const uint32_t** links) const;
  // The greedy descent through the upper layers from the entry point: the
  // closest row found on layer 1 (the entry point when there is no upper
  // layer) and its distance.
  template <class Scorer>
  Status Descend(const Scorer& scorer, uint32_t* entry, float* entry_d) const;
  // Layer 0 of one search (hnsw.cc): queue, results, marks, the batch being scored.
  template <class Scorer>
  class Layer0Walk;
  // The descent and layer 0 with the traversal's scorer: the filtered walk
  // when `pass` is set (pass->passing() > 0), else the plain walk
  // (RunWalk); the min(k, found) best into *out. ef is already clamped.
  // `keep_exact`: an SQ8 walk keeps the exact top k on the way (filtered
  // searches) instead of re-scoring RerankCount(k) rows at the end.
  Status RunSearch(const float* query, size_t k, size_t ef, RowFilter is_live, const PassTest* pass, bool keep_exact,
                   std::vector<Neighbor>* out) const;
  template <class Scorer>
  Status RunWalk(const Scorer& scorer, const float* query, size_t k, size_t ef, RowFilter is_live,
                 const PassTest* pass, bool keep_exact, std::vector<Neighbor>* out) const;
  // Search's checks and clamps, then RunSearch's plain walk (SearchGated: with keep_exact).
  Status PlainSearch(const float* query, size_t k, size_t ef, RowFilter is_live, bool keep_exact,
                     std::vector<Neighbor>* out) const;
  // Layer 0 from the descent's row `cur` (distance cur_d): Search's walk and SearchFiltered's.
  template <class Scorer>
  Status Walk(Layer0Walk<Scorer>& w, uint32_t cur, float cur_d) const;
  template <class Scorer>
  Status WalkFiltered(Layer0Walk<Scorer>& w, uint32_t cur, float cur_d, const PassTest& pass) const;

  static constexpr uint32_t kNumSections = 8;
  std::string file_;
  uint64_t section_offset_[kNumSections] = {};  // file offset of each section, or 0
  bool file_offsets_ = false;

  const float* vectors_ = nullptr;
  uint64_t rows_ = 0;
  uint32_t dim_ = 0;
  simd::Metric metric_ = simd::Metric::kL2;

  uint32_t m_ = 0;
  uint32_t m0_ = 0;
  uint32_t max_level_ = 0;
  uint32_t entry_ = kNoRow;
  uint64_t seed_ = 0;
  uint32_t ef_construction_ = 0;
  uint64_t upper_blocks_ = 0;
  uint64_t reused_rows_ = 0;

  const uint8_t* levels_ = nullptr;
  const uint32_t* layer0_ = nullptr;
  const uint32_t* upper_index_ = nullptr;
  const uint32_t* upper_links_ = nullptr;
  const float* sq8_params_ = nullptr;  // dim mins, then dim scales
  const uint8_t* sq8_codes_ = nullptr;
  const float* sq8_norms_ = nullptr;  // null: scored with the float kernel
  Traversal traversal_ = Traversal::kFloat32;
};

}  // namespace pomai::index
