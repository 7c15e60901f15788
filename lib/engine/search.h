// The search executor and the top-k (docs/ENGINE.md 4.5): one search over a
// stack of layers for pomaidb search (the default collection), alopex
// search_similar (vector records) and alopex search_hnsw (named
// collections). The callers only build the layers and convert the hits.
//
// What it searches. A Searcher holds the layers of one row set at one
// snapshot, newest first: a transaction's own writes, the memtables, then
// each segment's group of the row set (a segment without one is a layer of
// no rows: its keys still hide older layers). Layer i's rows are
// [0, rows()); each has a vector of spec.dim floats, a key (Key: the u64 id,
// or the internal key) and a visibility at the snapshot (Row).
//
// Visibility rule (invariant 5). A row is live when Row says it is visible
// and no newer layer holds a version of its key at the snapshot (Hidden:
// Holds of every newer layer that may_hide). Hidden is asked only about rows
// whose score could enter a heap (TopKOf::MayAccept, then Accepts, then
// liveness), and inside a graph walk through its RowFilter; when nothing
// newer may hide and every row of the layer is visible, the walk runs
// without a filter.
//
// Graph or exact. A layer with a graph and at least spec.adaptive_threshold
// rows is walked, one task per few queries, for each query whose k is below
// a quarter of the layer's rows (else that query scans the layer exactly).
//
// Filters. A layer with a pass bitmap returns only rows in it; one that
// passes no row is skipped. A graph layer may defer its filter instead
// (SearchLayer::DeferFilter): its walks test the rows they meet, a row at a
// time, remembered per task, and the bitmap is evaluated only when a scan
// needs it (the exact plan, a far filter, a walk short of k), once for all
// tasks. Exact scans skip spans without a passing row and score the passing
// rows of a sparse span by gathering them. A graph layer is walked or
// scanned as index::ChooseFilteredPlan picks from the number of passing rows
// (exact, a filtered walk, or the plain walk gated by the filter), then,
// after a probe of the query's neighbourhood (search.cc), again from the
// share passing there, or scanned when the filter excludes it; a walk that
// returns fewer than min(k, passing) rows is redone as an exact scan of the
// passing rows, so k come back whenever k live rows pass (invariant 8).
// Every other layer is scanned exactly, in tasks of up to kChunkRows rows,
// each scoring all queries in blocks of kBlockRows rows (one query: spans of
// kSpanRows; ScoreMany over a run of consecutive rows, ScoreGather over
// scattered ones). The tasks run on spec.pool (ParallelFor) when there is
// one.
//
// Checks. A layer checks what it hands out (Vectors: the blocks of a
// segment group before their floats are scored; Row: a segment entry);
// every row a walk returns is checked (CheckRow) before its key and score
// are used. A damaged block or entry fails the search with its Corruption.
//
// Result. Per query, the min(k, live rows) best live rows by score
// descending then key ascending (a walk may miss some: it is approximate).
// Errors: the first task's error (in task order), else DEADLINE_EXCEEDED
// when the deadline passed (checked at a scan's first block and every
// 64 x kBlockRows rows after, and before each walk); never partial results.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

#include "filter/filter.h"
#include "index/hnsw.h"
#include "simd/distance.h"
#include "util/bitmap.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace pomai::engine {

// ---------------------------------------------------------------------------
// TopK

// Whether hit a ranks before hit b: higher score, then the smaller key. A
// hit type H has a `float score` and a key HitKey(h), ordered by <.
template <class H>
bool Better(const H& a, const H& b) {
  return a.score > b.score || (a.score == b.score && HitKey(a) < HitKey(b));
}

// The best k hits seen so far, by score descending then key ascending.
template <class H>
class TopKOf {
 public:
  using Key = decltype(HitKey(std::declval<const H&>()));

  explicit TopKOf(size_t k) : k_(k) {}
  size_t k() const { return k_; }
  size_t size() const { return heap_.size(); }

  // Cheap pre-test on the score alone: false only when `score` cannot enter.
  // A NaN score is turned into -infinity first, so the order stays strict.
  bool MayAccept(float& score) const {
    if (std::isnan(score)) score = -std::numeric_limits<float>::infinity();
    return heap_.size() < k_ || (k_ > 0 && score >= heap_.front().score);
  }
  // Exact test, with the key tie-break.
  bool Accepts(float score, const Key& key) const {
    if (heap_.size() < k_) return true;
    if (k_ == 0) return false;
    const H& worst = heap_.front();
    return score > worst.score || (score == worst.score && key < HitKey(worst));
  }
  // Inserts `h` (which Accepts) and drops the worst when over k.
  void Push(const H& h) {
    heap_.push_back(h);
    std::push_heap(heap_.begin(), heap_.end(), Better<H>);
    if (heap_.size() > k_) {
      std::pop_heap(heap_.begin(), heap_.end(), Better<H>);
      heap_.pop_back();
    }
  }
  // MayAccept, Accepts and Push in one.
  void Offer(const H& h) {
    float score = h.score;
    if (!MayAccept(score) || !Accepts(score, HitKey(h))) return;
    H copy = h;
    copy.score = score;
    Push(copy);
  }
  // Appends the hits, in no particular order.
  void AppendTo(std::vector<H>* out) const { out->insert(out->end(), heap_.begin(), heap_.end()); }
  // The hits, best first; empties the heap.
  std::vector<H> TakeSorted() {
    std::sort_heap(heap_.begin(), heap_.end(), Better<H>);
    return std::move(heap_);
  }

 private:
  size_t k_;
  std::vector<H> heap_;  // heap_.front() is the worst kept hit
};

// ---------------------------------------------------------------------------
// The executor

// Rows scored per kernel call for several queries: 256 rows of 128-d are
// 128 KiB, inside L2, scored by every query in turn. One query scores spans
// of kSpanRows rows.
constexpr size_t kBlockRows = 256;
constexpr size_t kSpanRows = 16 * kBlockRows;
// Exact scans are split into tasks of at most this many rows.
constexpr size_t kChunkRows = size_t{1} << 16;

// A live row found by a search: its score (the kernel's: -d^2 for L2), key,
// layer and row number in the layer (for the caller to read what it returns).
template <class Key>
struct SearchHit {
  float score;
  uint32_t layer;
  Key key;
  uint64_t row;
};
template <class Key>
Key HitKey(const SearchHit<Key>& h) {
  return h.key;
}

// Deferred filters (SearchLayer::DeferFilter). A layer searched by
// `queries` queries at once defers its filter when it has at least
// kDeferRowsPerQuery rows per query: evaluating the filter reads every row
// once for all the queries (0.5-1 ms per million rows), a walk tests a few
// thousand rows per query.
constexpr uint64_t kDeferRowsPerQuery = uint64_t{1} << 15;
// The sample that estimates a deferred filter's passing rows: rounds of
// kDeferRuns runs of kDeferRunRows consecutive rows, one run at a
// pseudo-random place in each of kDeferRuns equal stretches of the layer,
// until kDeferMinHits sampled rows pass or kDeferRounds rounds are done
// (1,024 rows from 0.8% of rows passing, up to 4,096 below), and no more
// rounds after a first with fewer than 2 hits (under about 0.2% passing:
// 4,096 row tests cost 40 us). With fewer than kDeferMinHits hits (under
// about 0.2% of rows passing), the filter is evaluated at once:
// a plan for so few rows scans them exactly and needs every bit, and a walk
// must know that few pass (a filtered walk short of ef results walks on
// through non-passing rows until it has visited every passing row).
constexpr uint64_t kDeferRuns = 64;
constexpr uint64_t kDeferRunRows = 16;
constexpr uint64_t kDeferRounds = 4;
constexpr uint64_t kDeferMinHits = 8;

// One layer as the executor reads it. Implementations own what they point
// into (or pin it) for the Searcher's lifetime.
template <class Key>
class SearchLayer {
 public:
  virtual ~SearchLayer() = default;
  // The rows searched, [0, rows()), fixed when the layer is made.
  uint64_t rows() const { return rows_; }
  // A graph over the rows (its row numbers are the layer's), or null.
  const index::HnswGraph* graph() const { return graph_; }
  // False when the layer holds no version of any key at the snapshot: it
  // then hides nothing and Holds is never asked.
  bool may_hide() const { return may_hide_; }
  // True when Row says every row is visible (a segment group with no seq
  // above the snapshot): a walk needs no filter for this layer's own sake.
  bool all_visible() const { return all_visible_; }
  // The rows a filter passes (docs/FILTERS.md), or null when every row
  // does or the filter is deferred; passing() counts them. Rows outside it
  // are never returned.
  const Bitmap* pass() const { return evaluated_ ? &bitmap_ : nullptr; }
  // The layer's filter bound but not evaluated (DeferFilter), or null.
  const filter::RowTest* deferred() const { return deferred_.get(); }
  bool filtered() const { return evaluated_ || deferred_ != nullptr; }
  // The passing rows: counted, or estimated from a sample when deferred.
  uint64_t passing() const { return filtered() ? passing_ : rows_; }
  // A deferred filter's bitmap over every row: evaluated by the first
  // caller, once, while others wait (thread-safe).
  const Bitmap& DeferredPass() const {
    std::call_once(deferred_once_, [this] { deferred_->EvaluateAll(&deferred_bits_); });
    return deferred_bits_;
  }

  // A task brackets its reads of the rows (Vectors, Row, CheckRow) with Pin
  // and Unpin: a memtable holds its lock between them.
  virtual void Pin() const {}
  virtual void Unpin() const {}
  // The vectors of rows [begin, begin + n), n <= kSpanRows, checked first
  // (a segment's blocks): *matrix points at n consecutive rows of dim
  // floats, or is null and ptrs[i] points at row begin + i.
  virtual Status Vectors(uint64_t begin, size_t n, const float** matrix, const float** ptrs) const = 0;
  // Row r's key and whether it is visible at the snapshot (the version of
  // its key this layer shows then). Checks what it reads.
  virtual Status Row(uint64_t r, Key* key, bool* visible) const = 0;
  // Checks row r (its block) before a walk's score for it is used.
  virtual Status CheckRow(uint64_t) const { return Status::OK(); }
  // Whether this layer holds a version of `key` (of any kind, a tombstone
  // too) at the snapshot. Called without Pin.
  virtual Status Holds(const Key& key, bool* holds) const = 0;

 protected:
  // Sets the layer's filter: `f` over `src` (the layer's rows and columns),
  // bound and deferred (DeferFilter) when `defer`, else evaluated into
  // pass(). Returns Evaluate's (Bind's) errors.
  Status ApplyFilter(const filter::Filter& f, const filter::ColumnSource& src, bool defer) {
    if (defer) {
      POMAI_ASSIGN_OR_RETURN(std::unique_ptr<filter::RowTest> t, filter::RowTest::Bind(f, src));
      DeferFilter(std::move(t));
      return Status::OK();
    }
    POMAI_RETURN_IF_ERROR(f.Evaluate(src, &bitmap_));
    SetEvaluated();
    return Status::OK();
  }

  // Makes `t` the layer's deferred filter, with passing() estimated from
  // the sample (kDeferRounds); evaluates it over every row at once instead
  // (pass()) when fewer than kDeferMinHits sampled rows pass or the layer is
  // too small to sample.
  void DeferFilter(std::unique_ptr<filter::RowTest> t) {
    if (rows_ >= 4 * kDeferRuns * kDeferRunRows) {
      const uint64_t stretch = rows_ / kDeferRuns;
      uint64_t hits = 0, sampled = 0, mix = rows_;
      for (uint64_t round = 0; round < kDeferRounds && hits < kDeferMinHits && (round == 0 || hits >= 2); ++round) {
        for (uint64_t i = 0; i < kDeferRuns; ++i) {
          mix = mix * 6364136223846793005ULL + 1442695040888963407ULL;  // an LCG: fixed per layer size
          const uint64_t begin = i * stretch + (mix >> 33) % (stretch - kDeferRunRows);
          for (uint64_t r = begin; r < begin + kDeferRunRows; ++r) hits += t->Passes(r) ? 1 : 0;
        }
        sampled += kDeferRuns * kDeferRunRows;
      }
      if (hits >= kDeferMinHits) {
        passing_ = (hits * rows_ + sampled - 1) / sampled;
        deferred_ = std::move(t);
        return;
      }
    }
    t->EvaluateAll(&bitmap_);
    SetEvaluated();
  }

  uint64_t rows_ = 0;
  const index::HnswGraph* graph_ = nullptr;
  bool may_hide_ = true;
  bool all_visible_ = true;

 private:
  // bitmap_ holds the evaluated filter.
  void SetEvaluated() {
    evaluated_ = true;
    passing_ = bitmap_.Count();
  }

  // The filter (ApplyFilter): evaluated into bitmap_, or deferred_; passing_
  // counts or estimates its rows.
  bool evaluated_ = false;
  Bitmap bitmap_;
  uint64_t passing_ = 0;
  std::unique_ptr<filter::RowTest> deferred_;
  mutable std::once_flag deferred_once_;
  mutable Bitmap deferred_bits_;
};

// What to search for.
struct SearchSpec {
  const float* queries = nullptr;   // n x dim floats
  size_t n = 0;
  const uint32_t* topks = nullptr;  // k of each query
  uint32_t dim = 0;
  simd::Metric metric = simd::Metric::kL2;
  uint32_t ef = 0;                  // a walk's queue: max(k, ef)
  uint64_t adaptive_threshold = 0;  // layers with a graph and fewer rows are scanned exactly
  uint32_t deadline_ms = 0;         // 0: no deadline; else `deadline` is the time, ms the message's
  std::chrono::steady_clock::time_point deadline;
  ThreadPool* pool = nullptr;       // null: all tasks on the calling thread
};

template <class Key>
class Searcher {
 public:
  // `layers` newest first; they must outlive the Searcher.
  explicit Searcher(std::vector<const SearchLayer<Key>*> layers);

  const std::vector<const SearchLayer<Key>*>& layers() const { return layers_; }
  // Whether no layer newer than layer i may hide a row.
  bool NothingNewerThan(size_t i) const { return i <= first_hiding_; }
  // Whether a layer newer than layer i holds a version of `key` at the snapshot.
  Status Hidden(const Key& key, size_t i, bool* hidden) const;
  // (*out)[q]: query q's hits, best first.
  Status Search(const SearchSpec& spec, std::vector<std::vector<SearchHit<Key>>>* out) const;

 private:
  std::vector<const SearchLayer<Key>*> layers_;
  size_t first_hiding_;  // the first layer that may_hide (layers_.size() when none)
};

extern template class Searcher<uint64_t>;
extern template class Searcher<std::string_view>;

}  // namespace pomai::engine
