// Building HNSW graphs: hnswlib's addPoint, with per-row locks for parallel
// inserts, written straight into the arrays that become the sections.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>

#include "index/hnsw.h"
#include "index/params.h"
#include "index/sq8.h"
#include "util/mutex.h"
#include "index/walk.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace pomai::index {

static_assert(std::endian::native == std::endian::little, "pomai graphs need a little-endian host");

using internal::Cand;
using internal::ClosestOnTop;
using internal::Distance;
using internal::FarthestOnTop;
using segment::KindNumber;
using enum segment::SectionKind;

namespace {

// The heuristic compares a candidate with the neighbours already chosen in
// batches of this many, stopping at the first batch that rules it out.
constexpr size_t kHeuristicBatch = 8;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// floor(-ln(U) * ml) with U uniform in (0, 1], from (seed, row) alone.
uint8_t DrawLevel(uint64_t seed, uint64_t row, double ml) {
  const uint64_t bits = SplitMix64(SplitMix64(seed) ^ row);
  const double u = static_cast<double>((bits >> 11) + 1) * 0x1.0p-53;
  const double level = -std::log(u) * ml;
  return level >= kMaxLevel ? static_cast<uint8_t>(kMaxLevel) : static_cast<uint8_t>(level);
}

// A 4-byte mutex (futex-style: 0 free, 1 held, 2 held with waiters), one per
// node, so that a build over many rows does not pay 40 bytes a row for std::mutex.
class NodeLock {
 public:
  void lock() {
    uint32_t c = 0;
    if (state_.compare_exchange_strong(c, 1, std::memory_order_acquire)) return;
    if (c != 2) c = state_.exchange(2, std::memory_order_acquire);
    while (c != 0) {
      state_.wait(2, std::memory_order_relaxed);
      c = state_.exchange(2, std::memory_order_acquire);
    }
  }
  void unlock() {
    if (state_.exchange(0, std::memory_order_release) == 2) state_.notify_one();
  }

 private:
  std::atomic<uint32_t> state_{0};
};

// Per-thread buffers of an insert.
struct BuildScratch {
  std::vector<Cand> candidates;  // closest on top
  std::vector<Cand> results;     // farthest on top
  std::vector<Cand> chosen;
  std::vector<Cand> shrink;
  std::vector<uint32_t> links;
  std::vector<uint32_t> ids;
  std::vector<const float*> rows;
  std::vector<float> scores;

  void Reserve(size_t degree, size_t ef) {
    if (links.size() < degree + 1) {
      links.resize(degree + 1);
      ids.resize(degree + 1);
      rows.resize(degree + 1);
      scores.resize(degree + 1);
    }
    results.reserve(ef + 1);
    candidates.reserve(4 * ef);
    chosen.reserve(std::max(ef, degree) + 1);
    shrink.reserve(degree + 1);
  }
};

BuildScratch& ThreadBuildScratch() {
  thread_local BuildScratch scratch;
  return scratch;
}

class Builder {
 public:
  Builder(const float* vectors, size_t rows, uint32_t dim, simd::Metric metric, uint32_t m, uint32_t ef_construction,
          const uint8_t* levels, uint32_t* layer0, const uint32_t* upper_index, uint32_t* upper_links)
      : vectors_(vectors),
        rows_(rows),
        dim_(dim),
        metric_(metric),
        m_(m),
        m0_(2 * m),
        ef_(std::max(ef_construction, m)),
        levels_(levels),
        layer0_(layer0),
        upper_index_(upper_index),
        upper_links_(upper_links),
        locks_(new NodeLock[std::max<size_t>(rows, 1)]) {}

  // hnswlib's addPoint for node `row`.
  void Insert(uint32_t row);
  // Starts from a graph that already has nodes (before any Insert).
  void SetEntry(uint32_t entry, uint32_t max_level) {
    MutexLock l(&global_);
    entry_ = entry;
    max_level_ = max_level;
  }
  // Writes reused row `row`'s list on `level` from `old_links` ([count, ids]
  // of the base graph, ids mapped through new_row), replacing dropped links
  // (see BuildHnswFrom). Touches only row's own list.
  void Repair(uint32_t row, uint32_t level, const HnswGraph& base, const uint32_t* old_links, const uint32_t* new_row);

  uint32_t entry() const {
    MutexLock l(&global_);
    return entry_;
  }
  uint32_t max_level() const {
    MutexLock l(&global_);
    return max_level_;
  }

 private:
  const float* Vec(uint32_t row) const { return vectors_ + uint64_t{row} * dim_; }
  NodeLock& Lock(uint32_t row) { return locks_[row]; }
  uint32_t* Links(uint32_t row, uint32_t level) {
    return level == 0 ? layer0_ + uint64_t{row} * (m0_ + 1)
                      : upper_links_ + (uint64_t{upper_index_[row]} + level - 1) * (m_ + 1);
  }
  // Copies row's list on `level` into out[0 .. count) and returns count.
  uint32_t ReadLinks(uint32_t row, uint32_t level, uint32_t* out) {
    std::lock_guard<NodeLock> l(Lock(row));
    const uint32_t* links = Links(row, level);
    const uint32_t count = links[0];
    std::memcpy(out, links + 1, count * sizeof(uint32_t));
    return count;
  }
  // dist[i] = distance from q to row ids[i], one kernel dispatch.
  void Distances(const float* q, const uint32_t* ids, size_t n, BuildScratch& s, float* dist) const {
    for (size_t i = 0; i < n; ++i) s.rows[i] = Vec(ids[i]);
    simd::ScoreGather(metric_, q, s.rows.data(), n, dim_, s.scores.data());
    for (size_t i = 0; i < n; ++i) dist[i] = Distance(s.scores[i]);
  }
  float Distance1(const float* q, uint32_t row) const {
    const float* r = Vec(row);
    float score;
    simd::ScoreGather(metric_, q, &r, 1, dim_, &score);
    return Distance(score);
  }

  void SearchLayer(const float* q, uint32_t self, Cand entry, uint32_t level, BuildScratch& s);
  void SelectNeighbors(std::vector<Cand>* cands, size_t m, BuildScratch& s) const;
  Cand Connect(uint32_t row, uint32_t level, BuildScratch& s);

  const float* const vectors_;
  const size_t rows_;
  const uint32_t dim_;
  const simd::Metric metric_;
  const uint32_t m_;
  const uint32_t m0_;
  const uint32_t ef_;
  const uint8_t* const levels_;
  uint32_t* const layer0_;
  const uint32_t* const upper_index_;
  uint32_t* const upper_links_;
  // As in hnswlib, a row's lock is held for its whole insert (so a walk that
  // reaches a row still being inserted waits for it to be linked) and briefly
  // by others to read its links or add a link to it. The global lock is
  // taken first, and held throughout only by an insert that raises the top
  // level.
  std::unique_ptr<NodeLock[]> locks_;

  mutable Mutex global_;
  uint32_t entry_ GUARDED_BY(global_) = kNoRow;
  uint32_t max_level_ GUARDED_BY(global_) = 0;
};

void Builder::Insert(uint32_t row) {
  BuildScratch& s = ThreadBuildScratch();
  s.Reserve(m0_, ef_);
  const uint32_t level = levels_[row];
  const float* q = Vec(row);
  std::lock_guard<NodeLock> self(Lock(row));

  // A row that raises the top level holds the global lock for its whole
  // insert, as hnswlib does, so the new entry point is linked before use.
  MutexLock global(&global_);
  const uint32_t top = max_level_;
  Cand cur{0, entry_};
  if (cur.id == kNoRow) {
    entry_ = row;
    max_level_ = level;
    return;
  }
  if (level <= top) global.Unlock();

  cur.d = Distance1(q, cur.id);
  for (uint32_t l = top; l > level; --l) {
    for (bool changed = true; changed;) {
      changed = false;
      const uint32_t count = ReadLinks(cur.id, l, s.links.data());
      Distances(q, s.links.data(), count, s, s.scores.data());
      for (uint32_t j = 0; j < count; ++j) {
        if (s.scores[j] < cur.d) {
          cur = Cand{s.scores[j], s.links[j]};
          changed = true;
        }
      }
    }
  }
  for (uint32_t l = std::min(level, top);; --l) {
    SearchLayer(q, row, cur, l, s);
    cur = Connect(row, l, s);
    if (l == 0) break;
  }
  if (level > top) {
    global_.AssertHeld();  // released above only when level <= top
    entry_ = row;
    max_level_ = level;
  }
}

// hnswlib's searchBaseLayer: the ef_ closest rows to q on `level`, into s.results.
void Builder::SearchLayer(const float* q, uint32_t self, Cand entry, uint32_t level, BuildScratch& s) {
  internal::VisitedSet& visited = internal::ThreadVisitedSet();
  visited.Begin(rows_);
  uint16_t* const marks = visited.marks();
  const uint16_t epoch = visited.epoch();
  marks[self] = epoch;
  marks[entry.id] = epoch;
  std::vector<Cand>& candidates = s.candidates;
  std::vector<Cand>& results = s.results;
  candidates.assign(1, entry);
  results.assign(1, entry);
  float bound = entry.d;
  while (!candidates.empty()) {
    const Cand c = candidates.front();
    if (c.d > bound && results.size() >= ef_) break;
    std::pop_heap(candidates.begin(), candidates.end(), ClosestOnTop());
    candidates.pop_back();

    const uint32_t count = ReadLinks(c.id, level, s.links.data());
    // As the search walk does: start loading the marks, then the rows to
    // score, then the links of the next node to expand, before using them.
    for (uint32_t j = 0; j < count; ++j) __builtin_prefetch(marks + s.links[j]);
    size_t n = 0;
    for (uint32_t j = 0; j < count; ++j) {
      const uint32_t id = s.links[j];
      if (marks[id] == epoch) continue;
      marks[id] = epoch;
      s.ids[n] = id;
      s.rows[n] = Vec(id);
      __builtin_prefetch(s.rows[n]);
      ++n;
    }
    if (!candidates.empty()) __builtin_prefetch(Links(candidates.front().id, level));
    if (n == 0) continue;
    simd::ScoreGather(metric_, q, s.rows.data(), n, dim_, s.scores.data());
    for (size_t i = 0; i < n; ++i) {
      const float d = Distance(s.scores[i]);
      if (results.size() < ef_ || d < bound) {
        candidates.push_back(Cand{d, s.ids[i]});
        std::push_heap(candidates.begin(), candidates.end(), ClosestOnTop());
        results.push_back(Cand{d, s.ids[i]});
        std::push_heap(results.begin(), results.end(), FarthestOnTop());
        if (results.size() > ef_) {
          std::pop_heap(results.begin(), results.end(), FarthestOnTop());
          results.pop_back();
        }
        bound = results.front().d;
      }
    }
  }
}

// hnswlib's getNeighborsByHeuristic2 over `cands` sorted closest first: keeps
// (in order) each candidate closer to the query than to every one kept
// before it, at most m. Fewer than m candidates are all kept.
void Builder::SelectNeighbors(std::vector<Cand>* cands, size_t m, BuildScratch& s) const {
  std::vector<Cand>& c = *cands;
  if (c.size() < m) return;
  size_t kept = 0;
  for (size_t i = 0; i < c.size() && kept < m; ++i) {
    const Cand cand = c[i];
    const float* v = Vec(cand.id);
    bool good = true;
    for (size_t base = 0; base < kept && good; base += kHeuristicBatch) {
      const size_t n = std::min(kHeuristicBatch, kept - base);
      for (size_t j = 0; j < n; ++j) s.rows[j] = Vec(c[base + j].id);
      simd::ScoreGather(metric_, v, s.rows.data(), n, dim_, s.scores.data());
      for (size_t j = 0; j < n; ++j) {
        if (Distance(s.scores[j]) < cand.d) {
          good = false;
          break;
        }
      }
    }
    if (good) c[kept++] = cand;
  }
  c.resize(kept);
}

// hnswlib's mutuallyConnectNewElement: links `row` on `level` to the heuristic's
// choice among s.results, and each chosen row back to `row`, shrinking full
// lists with the heuristic. Returns the closest chosen row (the next entry).
Cand Builder::Connect(uint32_t row, uint32_t level, BuildScratch& s) {
  std::vector<Cand>& chosen = s.chosen;
  chosen.assign(s.results.begin(), s.results.end());
  std::sort(chosen.begin(), chosen.end(), internal::CloserThan);
  SelectNeighbors(&chosen, m_, s);
  {
    // Our own lock is held by Insert; nobody has linked to us on this level yet.
    uint32_t* links = Links(row, level);
    links[0] = static_cast<uint32_t>(chosen.size());
    for (size_t j = 0; j < chosen.size(); ++j) links[1 + j] = chosen[j].id;
  }
  const uint32_t max_degree = level == 0 ? m0_ : m_;
  std::vector<Cand>& shrink = s.shrink;
  for (const Cand& nb : chosen) {
    std::lock_guard<NodeLock> l(Lock(nb.id));
    uint32_t* links = Links(nb.id, level);
    const uint32_t count = links[0];
    if (count < max_degree) {
      links[1 + count] = row;
      links[0] = count + 1;
      continue;
    }
    // Full: keep the heuristic's choice among the current links and `row`.
    std::memcpy(s.ids.data(), links + 1, count * sizeof(uint32_t));
    s.ids[count] = row;
    float* dist = s.scores.data();
    Distances(Vec(nb.id), s.ids.data(), count + 1, s, dist);
    shrink.resize(count + 1);
    for (uint32_t j = 0; j <= count; ++j) shrink[j] = Cand{dist[j], s.ids[j]};
    std::sort(shrink.begin(), shrink.end(), internal::CloserThan);
    SelectNeighbors(&shrink, max_degree, s);
    links[0] = static_cast<uint32_t>(shrink.size());
    for (size_t j = 0; j < shrink.size(); ++j) links[1 + j] = shrink[j].id;
    std::fill(links + 1 + shrink.size(), links + 1 + max_degree, 0u);
  }
  return chosen.front();
}

void Builder::Repair(uint32_t row, uint32_t level, const HnswGraph& base, const uint32_t* old_links,
                     const uint32_t* new_row) {
  BuildScratch& s = ThreadBuildScratch();
  const uint32_t max_degree = level == 0 ? m0_ : m_;
  s.Reserve(max_degree, ef_);
  uint32_t* links = Links(row, level);
  const uint32_t count = old_links[0];
  uint32_t kept = 0;
  for (uint32_t j = 1; j <= count; ++j) {
    const uint32_t id = new_row[old_links[j]];
    if (id != kNoRow) links[1 + kept++] = id;
  }
  links[0] = kept;
  if (kept == count) return;
  // Replacements come from what the dropped rows linked to (FreshDiskANN's
  // delete consolidation), closest first, each only if no kept link is
  // closer to it than `row` is (the heuristic's test), until the list is as
  // long as it was. The surviving links all stay: re-selecting them among
  // the new candidates loses more recall than it gains.
  std::vector<Cand>& cands = s.chosen;
  cands.clear();
  for (uint32_t j = 1; j <= count; ++j) {
    if (new_row[old_links[j]] != kNoRow) continue;
    const uint32_t* second = base.LinksUnchecked(old_links[j], level);
    for (uint32_t i = 1; i <= second[0]; ++i) {
      const uint32_t id = new_row[second[i]];
      if (id != kNoRow && id != row && std::find(links + 1, links + 1 + kept, id) == links + 1 + kept) {
        cands.push_back(Cand{0, id});
      }
    }
  }
  if (cands.empty()) return;
  std::sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) { return a.id < b.id; });
  cands.erase(std::unique(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) { return a.id == b.id; }),
              cands.end());
  const float* q = Vec(row);
  const size_t batch = s.rows.size();
  for (size_t b = 0; b < cands.size(); b += batch) {
    const size_t n = std::min(batch, cands.size() - b);
    for (size_t i = 0; i < n; ++i) s.rows[i] = Vec(cands[b + i].id);
    simd::ScoreGather(metric_, q, s.rows.data(), n, dim_, s.scores.data());
    for (size_t i = 0; i < n; ++i) cands[b + i].d = Distance(s.scores[i]);
  }
  std::sort(cands.begin(), cands.end(), internal::CloserThan);
  for (size_t c = 0; c < cands.size() && kept < count; ++c) {
    const Cand cand = cands[c];
    const float* v = Vec(cand.id);
    bool good = true;
    for (uint32_t b = 0; b < kept && good; b += kHeuristicBatch) {
      const uint32_t n = std::min<uint32_t>(kHeuristicBatch, kept - b);
      for (uint32_t j = 0; j < n; ++j) s.rows[j] = Vec(links[1 + b + j]);
      simd::ScoreGather(metric_, v, s.rows.data(), n, dim_, s.scores.data());
      for (uint32_t j = 0; j < n && good; ++j) good = !(Distance(s.scores[j]) < cand.d);
    }
    if (good) links[1 + kept++] = cand.id;
  }
  links[0] = kept;
}

std::string EncodeHeader(uint32_t m, uint32_t max_level, uint32_t entry, uint64_t rows, uint32_t dim,
                         simd::Metric metric, uint8_t flags, uint64_t seed, uint32_t ef_construction,
                         uint64_t upper_blocks, uint64_t reused_rows) {
  std::string h(kHnswHeaderSize, '\0');
  uint8_t* p = reinterpret_cast<uint8_t*>(h.data());
  std::memcpy(p + hnsw_header::kMagic, kHnswMagic, sizeof(kHnswMagic));
  EncodeFixed32(p + hnsw_header::kVersion, kHnswFormatVersion);
  EncodeFixed32(p + hnsw_header::kHeaderSize, kHnswHeaderSize);
  EncodeFixed32(p + hnsw_header::kM, m);
  EncodeFixed32(p + hnsw_header::kM0, 2 * m);
  EncodeFixed32(p + hnsw_header::kMaxLevelField, max_level);
  EncodeFixed32(p + hnsw_header::kEntryPoint, entry);
  EncodeFixed64(p + hnsw_header::kRows, rows);
  EncodeFixed32(p + hnsw_header::kDim, dim);
  p[hnsw_header::kMetric] = static_cast<uint8_t>(metric);
  p[hnsw_header::kFlags] = flags;
  EncodeFixed64(p + hnsw_header::kSeed, seed);
  EncodeFixed32(p + hnsw_header::kEfConstruction, ef_construction);
  EncodeFixed64(p + hnsw_header::kUpperBlocks, upper_blocks);
  EncodeFixed64(p + hnsw_header::kReusedRows, reused_rows);
  EncodeFixed32(p + hnsw_header::kCrc, crc32c::Value(p, hnsw_header::kCrc));
  return h;
}

// The arrays that become the sections, sized for the rows' levels.
struct Arrays {
  std::string levels;
  std::string upper_index;
  std::string layer0;
  std::string upper_links;
  uint64_t upper_blocks = 0;

  uint8_t* level_data() { return reinterpret_cast<uint8_t*>(levels.data()); }
  uint32_t* index_data() { return reinterpret_cast<uint32_t*>(upper_index.data()); }
  uint32_t* layer0_data() { return reinterpret_cast<uint32_t*>(layer0.data()); }
  uint32_t* upper_data() { return reinterpret_cast<uint32_t*>(upper_links.data()); }
};

// Fills levels (level_of(r) for each row) and the upper index, and allocates zeroed link arrays.
template <class LevelOf>
Status Allocate(size_t rows, uint32_t m, const LevelOf& level_of, Arrays* a) {
  const uint32_t m0 = 2 * m;
  a->levels.assign(rows, '\0');
  a->upper_index.assign(rows * sizeof(uint32_t), '\0');
  uint32_t* index = a->index_data();
  uint64_t upper_blocks = 0;
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t level = level_of(r);
    a->levels[r] = static_cast<char>(level);
    index[r] = static_cast<uint32_t>(upper_blocks);
    upper_blocks += level;
    if (upper_blocks > std::numeric_limits<uint32_t>::max()) {
      return Status::ResourceExhausted("hnsw: too many upper-layer blocks");
    }
  }
  uint64_t layer0_bytes = 0, upper_bytes = 0;
  if (MulOverflows(rows, uint64_t{m0} + 1, &layer0_bytes) || MulOverflows(layer0_bytes, 4, &layer0_bytes) ||
      MulOverflows(upper_blocks, uint64_t{m} + 1, &upper_bytes) || MulOverflows(upper_bytes, 4, &upper_bytes) ||
      layer0_bytes > SIZE_MAX || upper_bytes > SIZE_MAX) {
    return Status::ResourceExhausted("hnsw: graph too large");
  }
  a->layer0.assign(layer0_bytes, '\0');
  a->upper_links.assign(upper_bytes, '\0');
  a->upper_blocks = upper_blocks;
  return Status::OK();
}

// Reports (done, total) to `progress` at most about a thousand times, one call at a time.
class ProgressReporter {
 public:
  ProgressReporter(const std::function<void(uint64_t, uint64_t)>& fn, uint64_t total)
      : fn_(fn), total_(total), step_(std::max<uint64_t>(1, total / 1000)) {}
  // `n` more rows are done.
  void Add(uint64_t n) {
    const uint64_t before = done_.fetch_add(n, std::memory_order_relaxed);
    const uint64_t now = before + n;
    if (!fn_ || now >= total_ || now / step_ == before / step_) return;
    MutexLock l(&mu_);
    if (now > reported_) {
      reported_ = now;
      fn_(now, total_);
    }
  }
  void Finish() {
    if (fn_) fn_(total_, total_);
  }

 private:
  const std::function<void(uint64_t, uint64_t)>& fn_;
  const uint64_t total_;
  const uint64_t step_;
  std::atomic<uint64_t> done_{0};
  Mutex mu_;
  uint64_t reported_ GUARDED_BY(mu_) = 0;
};

// Runs fn(i) for i in [0, n), on `pool` when given, else in order, until
// `*stop` (when given) reads true; false if any call threw (std::bad_alloc,
// std::system_error).
template <class Fn>
bool RunAll(size_t n, ThreadPool* pool, const std::atomic<bool>* stop, const Fn& fn) {
  std::atomic<bool> failed{false};
  auto guarded = [&](size_t i) {
    if (failed.load(std::memory_order_relaxed) || (stop && stop->load(std::memory_order_relaxed))) return;
    try {
      fn(i);
    } catch (...) {
      failed.store(true);
    }
  };
  if (pool == nullptr || n < 2) {
    for (size_t i = 0; i < n; ++i) guarded(i);
  } else {
    pool->ParallelFor(n, guarded);
  }
  return !failed.load();
}

bool Stopped(const HnswParams& params) { return params.stop && params.stop->load(std::memory_order_relaxed); }
Status StoppedStatus() { return Status::Closed("hnsw: the build was stopped"); }

std::vector<GraphSection> Sections(Arrays* a, const Builder& builder, const float* vectors, size_t rows, uint32_t dim,
                                   simd::Metric metric, const HnswParams& params, uint64_t reused_rows) {
  std::vector<GraphSection> sections;
  sections.reserve(8);
  const uint8_t flags = params.sq8 ? kFlagSq8 | kFlagSq8Norms : 0;
  sections.push_back(GraphSection{KindNumber(kHnswHeader),
                                  EncodeHeader(params.m, builder.max_level(), builder.entry(), rows, dim, metric, flags,
                                               params.seed, params.ef_construction, a->upper_blocks, reused_rows)});
  sections.push_back(GraphSection{KindNumber(kHnswLevels), std::move(a->levels)});
  sections.push_back(GraphSection{KindNumber(kHnswLayer0), std::move(a->layer0)});
  sections.push_back(GraphSection{KindNumber(kHnswUpperIndex), std::move(a->upper_index)});
  sections.push_back(GraphSection{KindNumber(kHnswUpperLinks), std::move(a->upper_links)});
  if (params.sq8) {
    GraphSection sq8_params{KindNumber(kHnswSq8Params), {}};
    GraphSection sq8_codes{KindNumber(kHnswSq8Codes), {}};
    GraphSection sq8_norms{KindNumber(kHnswSq8Norms), {}};
    sq8::Encode(vectors, rows, dim, &sq8_params.bytes, &sq8_codes.bytes);
    sq8::EncodeNorms(metric, sq8_params.bytes, sq8_codes.bytes, rows, dim, &sq8_norms.bytes);
    sections.push_back(std::move(sq8_params));
    sections.push_back(std::move(sq8_codes));
    sections.push_back(std::move(sq8_norms));
  }
  return sections;
}

Result<std::vector<GraphSection>> Build(const float* vectors, size_t rows, uint32_t dim, simd::Metric metric,
                                        const HnswParams& params, ThreadPool* pool,
                                        const std::function<void(uint64_t, uint64_t)>& progress) {
  const uint32_t m = params.m;
  // Levels first: they fix where every upper block lives.
  const double ml = 1.0 / std::log(static_cast<double>(m));
  Arrays a;
  POMAI_RETURN_IF_ERROR(Allocate(rows, m, [&](size_t r) { return DrawLevel(params.seed, r, ml); }, &a));
  Builder builder(vectors, rows, dim, metric, m, params.ef_construction, a.level_data(), a.layer0_data(),
                  a.index_data(), a.upper_data());

  ProgressReporter reporter(progress, rows);
  auto insert = [&](size_t r) {
    builder.Insert(static_cast<uint32_t>(r));
    reporter.Add(1);
  };
  // The first row is the entry point the others start from.
  if (rows > 0 && !RunAll(1, nullptr, params.stop, insert)) {
    return Status::ResourceExhausted("hnsw: out of memory while building the graph");
  }
  if (rows > 1 && !RunAll(rows - 1, pool, params.stop, [&](size_t i) { insert(i + 1); })) {
    return Status::ResourceExhausted("hnsw: out of memory while building the graph");
  }
  if (Stopped(params)) return StoppedStatus();
  reporter.Finish();
  return Sections(&a, builder, vectors, rows, dim, metric, params, 0);
}

Result<std::vector<GraphSection>> BuildFrom(const GraphBase& base, const float* vectors, size_t rows, uint32_t dim,
                                            simd::Metric metric, const HnswParams& params, ThreadPool* pool,
                                            const std::function<void(uint64_t, uint64_t)>& progress) {
  const HnswGraph& g = *base.graph;
  const uint32_t* const new_row = base.new_row;
  POMAI_RETURN_IF_ERROR(g.Verify());
  // The base row of each new row, or kNoRow for a row to insert.
  std::vector<uint32_t> old_of(rows, kNoRow);
  for (uint64_t r = 0; r < g.rows(); ++r) {
    const uint32_t n = new_row[r];
    if (n == kNoRow) continue;
    if (n >= rows || old_of[n] != kNoRow) {
      return Status::InvalidArgument("hnsw: base row " + std::to_string(r) + " maps to row " + std::to_string(n) +
                                     (n >= rows ? ", out of range" : ", already taken"));
    }
    old_of[n] = static_cast<uint32_t>(r);
  }
  std::vector<uint32_t> reused, inserted;
  for (size_t r = 0; r < rows; ++r) (old_of[r] != kNoRow ? reused : inserted).push_back(static_cast<uint32_t>(r));

  const uint32_t m = params.m;
  const double ml = 1.0 / std::log(static_cast<double>(m));
  Arrays a;
  POMAI_RETURN_IF_ERROR(Allocate(
      rows, m,
      [&](size_t r) { return old_of[r] != kNoRow ? g.LevelUnchecked(old_of[r]) : DrawLevel(params.seed, r, ml); },
      &a));
  Builder builder(vectors, rows, dim, metric, m, params.ef_construction, a.level_data(), a.layer0_data(),
                  a.index_data(), a.upper_data());

  // The base's entry point if it stays, else the first reused row of the highest level.
  uint32_t entry = kNoRow, top = 0;
  if (new_row[g.entry_point()] != kNoRow) {
    entry = new_row[g.entry_point()];
    top = g.max_level();
  } else {
    for (uint32_t r : reused) {
      if (entry == kNoRow || a.level_data()[r] > top) {
        entry = r;
        top = a.level_data()[r];
      }
    }
  }
  builder.SetEntry(entry, top);

  ProgressReporter reporter(progress, rows);
  const bool repaired = RunAll(reused.size(), pool, params.stop, [&](size_t i) {
    const uint32_t r = reused[i];
    const uint32_t old = old_of[r];
    for (uint32_t level = 0; level <= g.LevelUnchecked(old); ++level) {
      builder.Repair(r, level, g, g.LinksUnchecked(old, level), new_row);
    }
    reporter.Add(1);
  });
  if (!repaired) return Status::ResourceExhausted("hnsw: out of memory while building the graph");
  old_of = {};
  const bool built = RunAll(inserted.size(), pool, params.stop, [&](size_t i) {
    builder.Insert(inserted[i]);
    reporter.Add(1);
  });
  if (!built) return Status::ResourceExhausted("hnsw: out of memory while building the graph");
  if (Stopped(params)) return StoppedStatus();
  reporter.Finish();
  return Sections(&a, builder, vectors, rows, dim, metric, params, reused.size());
}

}  // namespace

namespace {

Status CheckBuildArgs(const float* vectors, size_t rows, uint32_t dim, simd::Metric metric, const HnswParams& params) {
  if (Status s = CheckHnswParams(params.m, params.ef_construction); !s.ok()) return Status::InvalidArgument("hnsw: " + s.message());
  if (dim == 0) return Status::InvalidArgument("hnsw: dim must be > 0");
  if (rows > kMaxRows) return Status::InvalidArgument("hnsw: too many rows for u32 node ids");
  if (rows > 0 && vectors == nullptr) return Status::InvalidArgument("hnsw: null vectors");
  if (static_cast<uint8_t>(metric) > static_cast<uint8_t>(simd::Metric::kCosine)) {
    return Status::InvalidArgument("hnsw: unknown metric");
  }
  return Status::OK();
}

}  // namespace

Result<std::vector<GraphSection>> BuildHnsw(const float* vectors, size_t rows, uint32_t dim, simd::Metric metric,
                                            const HnswParams& params, ThreadPool* pool,
                                            const std::function<void(uint64_t done, uint64_t total)>& progress) {
  POMAI_RETURN_IF_ERROR(CheckBuildArgs(vectors, rows, dim, metric, params));
  try {
    return Build(vectors, rows, dim, metric, params, pool, progress);
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("hnsw: out of memory while building the graph");
  }
}

uint64_t ReusableRows(const GraphBase& base, size_t rows, simd::Metric metric, const HnswParams& params) {
  if (base.graph == nullptr || base.new_row == nullptr || rows == 0) return 0;
  const HnswGraph& g = *base.graph;
  if (g.rows() == 0 || g.m() != params.m || g.m0() != 2 * params.m || g.ef_construction() != params.ef_construction ||
      g.has_sq8() != params.sq8 || g.metric() != metric) {
    return 0;
  }
  uint64_t mapped = 0;
  for (uint64_t r = 0; r < g.rows(); ++r) mapped += base.new_row[r] != kNoRow;
  return static_cast<double>(mapped) >= kMinReusedShare * static_cast<double>(rows) ? mapped : 0;
}

Result<std::vector<GraphSection>> BuildHnswFrom(const GraphBase& base, const float* vectors, size_t rows,
                                                uint32_t dim, simd::Metric metric, const HnswParams& params,
                                                ThreadPool* pool,
                                                const std::function<void(uint64_t done, uint64_t total)>& progress) {
  POMAI_RETURN_IF_ERROR(CheckBuildArgs(vectors, rows, dim, metric, params));
  if (ReusableRows(base, rows, metric, params) == 0) return BuildHnsw(vectors, rows, dim, metric, params, pool, progress);
  if (base.graph->dim() != dim) return Status::InvalidArgument("hnsw: base graph dim differs");
  try {
    return BuildFrom(base, vectors, rows, dim, metric, params, pool, progress);
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("hnsw: out of memory while building the graph");
  }
}

}  // namespace pomai::index
