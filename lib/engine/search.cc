// The search executor (search.h, docs/ENGINE.md 4.5).
#include "engine/search.h"

#include <atomic>
#include <optional>
#include <string>

#include "index/filtered.h"

namespace pomai::engine {
namespace {

using Clock = std::chrono::steady_clock;

// One unit of work: rows [begin, end) of a layer scanned exactly for the
// queries [q_begin, q_end), or the layer's graph walked for them.
struct Task {
  size_t layer;
  bool graph;
  uint64_t begin, end;
  size_t q_begin, q_end;
};

// Rows per exact task of a layer of `rows` rows of `dim` floats:
// kChunkRows, or fewer when that would leave workers idle (two tasks per
// worker), but at least about 4 MiB of vectors; whole blocks.
uint64_t ChunkRows(uint64_t rows, uint32_t dim, size_t workers) {
  if (workers == 1) return kChunkRows;
  const uint64_t min_rows = std::max<uint64_t>(kBlockRows, (uint64_t{1} << 20) / dim);
  uint64_t per = (rows + 2 * workers - 1) / (2 * workers);
  per = std::clamp<uint64_t>(per, std::min<uint64_t>(min_rows, kChunkRows), kChunkRows);
  return (per + kBlockRows - 1) / kBlockRows * kBlockRows;
}

// The passing rows ProbeNeighbourhood looks for: it stops once it has seen
// this many pass, or as many rows as would hold this many at the filter's
// share.
constexpr uint64_t kNeighbourhoodPassing = 64;
// A query whose plan is exact is probed too when its filter is deferred and
// the exact scan, with the filter's evaluation over every row, would cost
// this much (ns), and only for whether most rows near it pass: a descent
// and the first hop's rows, then about 64 more when half of those pass.
// (An evaluated filter's exact plan is not probed: batched scans run below
// the model's cost, 41 us a query at 200k x 128 with 1% passing, where the
// probe cost 25 us more.)
constexpr double kProbeFromExactNs = 50'000;
// What evaluating a deferred filter over every row costs, per row, for the
// plan (docs/FILTERS.md: 0.13 ns for an int64 range, 0.5-0.8 for a 500-value
// IN, 2.9 for a tags CONTAINS, CPU time at 1M rows).
constexpr double kEvaluateNsPerRow = 0.5;

// What a filter passes near the query: rows seen within two hops (layer 0)
// of the query's nearest node in `graph`, and how many of them pass.
struct Neighbourhood {
  uint64_t seen = 0, passed = 0;
};

// The query's neighbourhood under filter `pass` (about `passing` of its rows
// pass): one greedy descent to the nearest node, then its rows nearest hop
// first, only until kNeighbourhoodPassing of them pass or as many would at
// the filter's share (129 rows when half the rows pass: enough to tell a
// quarter or half of the share from the share; about 64 rows when most rows near
// the query pass, whatever the share; every row within two hops, about
// m0^2, when few pass there and the share is under 6%). Link ids past the
// rows (a damaged graph, which the walk or Verify reports) are skipped.
// `nearest` is the caller's buffer for the descent's result (no allocation
// per query). With `unless_near`, it stops after the first hop when under
// half of those rows pass (the caller only asks whether most rows near the
// query pass).
Status ProbeNeighbourhood(const index::HnswGraph& graph, const float* query, const index::PassTest& pass,
                          uint64_t passing, bool unless_near, std::vector<index::Neighbor>* nearest,
                          Neighbourhood* out) {
  *out = Neighbourhood{};
  POMAI_RETURN_IF_ERROR(graph.Search(query, 1, 1, index::RowFilter(), nearest));
  const uint64_t rows = pass.rows();
  if (nearest->empty() || (*nearest)[0].row >= rows) return Status::OK();
  const uint32_t start = (*nearest)[0].row;
  // Rows to read: about kNeighbourhoodPassing / share.
  const uint64_t enough = static_cast<uint64_t>(
      std::min<unsigned __int128>(rows, (static_cast<unsigned __int128>(kNeighbourhoodPassing) * rows + passing - 1) /
                                            std::max<uint64_t>(passing, 1)));
  uint64_t seen = 1, passed = pass(start) ? 1 : 0;
  const uint32_t* hop1 = nullptr;
  uint32_t n1 = 0;
  POMAI_RETURN_IF_ERROR(graph.Links(start, 0, &hop1, &n1));
  for (uint32_t i = 0; i < n1; ++i) {
    if (hop1[i] >= rows) continue;
    seen += 1;
    passed += pass(hop1[i]) ? 1 : 0;
  }
  if (unless_near && passed * 2 < seen) {
    *out = Neighbourhood{seen, passed};
    return Status::OK();
  }
  for (uint32_t i = 0; i < n1 && seen < enough && passed < kNeighbourhoodPassing; ++i) {
    if (hop1[i] >= rows) continue;
    const uint32_t* hop2 = nullptr;
    uint32_t n2 = 0;
    POMAI_RETURN_IF_ERROR(graph.Links(hop1[i], 0, &hop2, &n2));
    for (uint32_t j = 0; j < n2 && seen < enough && passed < kNeighbourhoodPassing; ++j) {
      if (hop2[j] >= rows) continue;
      seen += 1;
      passed += pass(hop2[j]) ? 1 : 0;
    }
  }
  *out = Neighbourhood{seen, passed};
  return Status::OK();
}

// Whether the filter all but excludes the query's neighbourhood: a share
// below a quarter of the filter's passes there, or below half when the
// filter's share is an estimate (`estimated`: a deferred filter's sample,
// search.h, about +-30% at 1% of rows passing). A walk then searches where
// the graph does not lead it: its recall collapses while its work grows
// toward a scan of the graph (bench/filtered's "far" filters at 1M rows:
// recall@10 0.49 at 13 queries per second with 1% of rows passing; a
// deferred far 1% filter read as not far by a quarter: 4 ms a query against
// 1.4 ms for the scan). A counted share keeps a quarter: half scanned the
// queries of a clustered 3% tags filter whose neighbourhoods pass less
// than the average (0.80x -> 0.71x the best peer at 1M).
bool ExcludesNeighbourhood(const Neighbourhood& nb, uint64_t rows, uint64_t passing, bool estimated) {
  // passed / seen < (passing / rows) / (estimated ? 2 : 4), in integers.
  return nb.seen > 0 && static_cast<unsigned __int128>(nb.passed) * rows * (estimated ? 2 : 4) <
                            static_cast<unsigned __int128>(passing) * nb.seen;
}

}  // namespace

template <class Key>
Searcher<Key>::Searcher(std::vector<const SearchLayer<Key>*> layers) : layers_(std::move(layers)) {
  first_hiding_ = layers_.size();
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[i]->may_hide()) {
      first_hiding_ = i;
      break;
    }
  }
}

template <class Key>
Status Searcher<Key>::Hidden(const Key& key, size_t i, bool* hidden) const {
  *hidden = false;
  for (size_t j = first_hiding_; j < i && !*hidden; ++j) {
    if (layers_[j]->may_hide()) POMAI_RETURN_IF_ERROR(layers_[j]->Holds(key, hidden));
  }
  return Status::OK();
}

template <class Key>
Status Searcher<Key>::Search(const SearchSpec& spec, std::vector<std::vector<SearchHit<Key>>>* out) const {
  using Hit = SearchHit<Key>;
  using Heap = TopKOf<Hit>;
  const size_t n = spec.n;
  const uint32_t dim = spec.dim;
  const simd::Metric metric = spec.metric;
  const float* queries = spec.queries;
  out->assign(n, {});
  if (std::all_of(spec.topks, spec.topks + n, [](uint32_t k) { return k == 0; })) return Status::OK();
  const bool has_deadline = spec.deadline_ms > 0;

  // Graph walks are one task per few queries; exact scans one task per row chunk, all queries.
  const size_t workers = spec.pool ? spec.pool->size() + 1 : 1;
  const size_t q_chunk = std::max<size_t>(1, std::min<size_t>(16, n / (2 * workers)));
  std::vector<Task> tasks;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const SearchLayer<Key>& l = *layers_[i];
    const uint64_t rows = l.rows();
    if (rows == 0 || l.passing() == 0) continue;
    if (l.graph() != nullptr && rows >= spec.adaptive_threshold) {
      for (size_t q = 0; q < n; q += q_chunk) tasks.push_back({i, true, 0, 0, q, std::min(n, q + q_chunk)});
      continue;
    }
    const uint64_t per = ChunkRows(rows, dim, workers);
    for (uint64_t b = 0; b < rows; b += per) tasks.push_back({i, false, b, std::min(rows, b + per), 0, n});
  }

  std::vector<std::vector<Heap>> results(tasks.size());
  std::vector<Status> errors(tasks.size());
  std::atomic<bool> expired{false};

  auto run = [&](size_t t) {
    const Task& task = tasks[t];
    const SearchLayer<Key>& l = *layers_[task.layer];
    const bool unhidden = NothingNewerThan(task.layer);
    std::vector<Heap>& heaps = results[t];
    heaps.reserve(task.q_end - task.q_begin);
    for (size_t q = task.q_begin; q < task.q_end; ++q) heaps.emplace_back(spec.topks[q]);
    Status& error = errors[t];
    // Whether a visible row of key `key` is live (not hidden by a newer layer).
    auto live = [&](const Key& key) {
      if (unhidden) return true;
      bool hidden = false;
      Status st = Hidden(key, task.layer, &hidden);
      if (!st.ok()) error = std::move(st);
      return error.ok() && !hidden;
    };
    // Offers `heap` row r scored `s` (which MayAccept): its key and
    // visibility are read only now. False on an error (in `error`).
    auto offer = [&](Heap& heap, uint64_t r, float s) {
      Key key{};
      bool visible = false;
      if (Status st = l.Row(r, &key, &visible); !st.ok()) {
        error = std::move(st);
        return false;
      }
      if (visible && heap.Accepts(s, key) && live(key)) heap.Push(Hit{s, static_cast<uint32_t>(task.layer), key, r});
      return error.ok();
    };

    std::vector<float> scores;       // sized by the first scan (a walk needs none)
    std::vector<const float*> ptrs;
    std::vector<std::pair<size_t, size_t>> runs;  // (first, count) of consecutive rows in ptrs
    // The filter's bitmap: a deferred one's once a scan needs it (below).
    const Bitmap* pass = l.pass();
    std::vector<uint32_t> picked;    // a sparse span's passing rows (offsets in the span)
    std::vector<const float*> picked_ptrs;
    // Scores rows [begin, end) against queries [qb, qe).
    auto scan = [&](size_t qb, size_t qe, uint64_t begin, uint64_t end) {
      // Several queries score each block while it is in cache; one query
      // scores longer spans (fewer restarts of the kernel's streaming).
      const size_t span = qe - qb == 1 ? kSpanRows : kBlockRows;
      if (scores.size() < span) {
        scores.resize(span);
        ptrs.resize(span);
      }
      uint64_t next_check = begin;  // the deadline: at the first block, then every 64 blocks' rows
      for (uint64_t b = begin; b < end; b += span) {
        if (has_deadline && b >= next_check) {
          next_check = b + 64 * kBlockRows;
          if (Clock::now() > spec.deadline) {
            expired = true;
            return;
          }
        }
        if (expired.load(std::memory_order_relaxed) || !error.ok()) return;
        const size_t cnt = static_cast<size_t>(std::min<uint64_t>(span, end - b));
        // A filter: the span's passing rows; none means the span is not read.
        picked.clear();
        if (pass != nullptr) {
          pass->ForEachIn(b, b + cnt, [&](size_t r) { picked.push_back(static_cast<uint32_t>(r - b)); });
          if (picked.empty()) continue;
        }
        const float* matrix = nullptr;
        error = l.Vectors(b, cnt, &matrix, ptrs.data());
        if (!error.ok()) return;
        if (pass != nullptr && picked.size() * 4 < cnt) {
          // Few rows pass: score just those, gathered.
          picked_ptrs.resize(picked.size());
          for (size_t j = 0; j < picked.size(); ++j)
            picked_ptrs[j] = matrix != nullptr ? matrix + size_t{picked[j]} * dim : ptrs[picked[j]];
          for (size_t q = qb; q < qe; ++q) {
            Heap& heap = heaps[q - task.q_begin];
            if (heap.k() == 0) continue;
            simd::ScoreGather(metric, queries + q * dim, picked_ptrs.data(), picked.size(), dim, scores.data());
            for (size_t j = 0; j < picked.size(); ++j) {
              float s = scores[j];
              if (heap.MayAccept(s) && !offer(heap, b + picked[j], s)) return;
            }
          }
          continue;
        }
        bool gather = false;
        if (matrix == nullptr) {
          // Runs of rows that follow each other in memory are scored with
          // ScoreMany; a block of mostly scattered rows with ScoreGather.
          runs.clear();
          for (size_t r = 0; r < cnt; ++r) {
            if (!runs.empty() && ptrs[r] == ptrs[r - 1] + dim) {
              ++runs.back().second;
            } else {
              runs.emplace_back(r, 1);
            }
          }
          gather = runs.size() * 4 > cnt;
        }
        for (size_t q = qb; q < qe; ++q) {
          Heap& heap = heaps[q - task.q_begin];
          if (heap.k() == 0) continue;
          const float* query = queries + q * dim;
          if (matrix != nullptr) {
            simd::ScoreMany(metric, query, matrix, cnt, dim, dim, scores.data());
          } else if (gather) {
            simd::ScoreGather(metric, query, ptrs.data(), cnt, dim, scores.data());
          } else {
            for (const auto& [first, count] : runs)
              simd::ScoreMany(metric, query, ptrs[first], count, dim, dim, scores.data() + first);
          }
          for (size_t r = 0; r < cnt; ++r) {
            float s = scores[r];
            if (heap.MayAccept(s) && (pass == nullptr || pass->Get(b + r)) && !offer(heap, b + r, s)) return;
          }
        }
      }
    };

    struct Pinned {
      const SearchLayer<Key>& l;
      explicit Pinned(const SearchLayer<Key>& layer) : l(layer) { l.Pin(); }
      ~Pinned() { l.Unpin(); }
    } pinned(l);
    if (!task.graph) {
      if (pass == nullptr && l.deferred() != nullptr) pass = &l.DeferredPass();
      scan(task.q_begin, task.q_end, task.begin, task.end);
      return;
    }
    // The walk reads links and codes unchecked (they only choose rows); the
    // rows it returns are checked before their keys and scores are used.
    // Its filter asks the layer for visibility and newer layers for keys.
    Status filter_error;
    auto is_live = [&](uint32_t row) {
      Key key{};
      bool visible = false;
      bool hidden = false;
      Status s = l.Row(row, &key, &visible);
      if (s.ok() && visible && !unhidden) s = Hidden(key, task.layer, &hidden);
      if (!s.ok() && filter_error.ok()) filter_error = s;
      return s.ok() && visible && !hidden;
    };
    const index::RowFilter filter = unhidden && l.all_visible() ? index::RowFilter() : index::RowFilter(is_live);
    const index::HnswGraph& graph = *l.graph();
    const uint64_t rows = l.rows();
    const uint64_t passing = l.passing();
    const bool filtered = l.filtered();
    // What the walks test: the bitmap, or the deferred filter asked a row at
    // a time and remembered for the task's later queries.
    const filter::RowTest* const deferred = l.deferred();
    std::vector<uint64_t> memo_known, memo_bits;
    const auto decide = [deferred](uint32_t row) { return deferred->Passes(row); };
    std::optional<index::PassTest> pass_test;
    if (pass != nullptr) {
      pass_test.emplace(*pass, passing);
    } else if (deferred != nullptr) {
      memo_known.assign((rows + 63) / 64, 0);
      memo_bits.assign((rows + 63) / 64, 0);
      // The estimate bounds the walks: a filtered walk short of ef results
      // stops bridging once it has visited that many passing rows.
      pass_test.emplace(rows, passing, memo_known.data(), memo_bits.data(), decide);
    }
    // A scan of the filtered layer for query q: evaluates a deferred filter first.
    auto scan_all = [&](size_t q) {
      if (pass == nullptr && deferred != nullptr) pass = &l.DeferredPass();
      scan(q, q + 1, 0, rows);
    };
    std::vector<index::Neighbor> found;
    for (size_t q = task.q_begin; q < task.q_end; ++q) {
      if (expired.load(std::memory_order_relaxed) || (has_deadline && Clock::now() > spec.deadline)) {
        expired = true;
        return;
      }
      Heap& heap = heaps[q - task.q_begin];
      if (heap.k() == 0) continue;
      const size_t k = static_cast<size_t>(std::min<uint64_t>(heap.k(), passing));
      // Nor can ef usefully exceed the rows (a huge value must not size the walk's queues).
      const size_t ef = static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(k, spec.ef), rows));
      const index::FilteredGraphShape shape{dim, graph.m0(), graph.traversal() == index::Traversal::kSq8};
      // A scan of a deferred filter evaluates it over every row first.
      const double setup_ns = deferred != nullptr && pass == nullptr ? kEvaluateNsPerRow * static_cast<double>(rows) : 0;
      index::FilteredPlan plan = !filtered ? index::FilteredPlan::kGatedWalk
                                           : index::ChooseFilteredPlan(rows, passing, k, ef, shape, -1, setup_ns);
      // Statuses are moved into `error` only when they are errors.
      const float* query = queries + q * dim;
      Status st;
      bool far = false;
      // The query's neighbourhood decides between a walk and a scan: a far
      // filter is scanned, and the plan is chosen again from the share
      // passing near the query (index/filtered.h, near_share).
      const bool costly_exact =
          setup_ns > 0 &&
          index::FilteredPlanCost(index::FilteredPlan::kExact, rows, passing, k, ef, shape) + setup_ns >= kProbeFromExactNs;
      if (filtered && k * 4 < passing && (plan != index::FilteredPlan::kExact || costly_exact)) {
        Neighbourhood nb;
        // An exact plan only asks whether most rows near the query pass.
        st = ProbeNeighbourhood(graph, query, *pass_test, passing, plan == index::FilteredPlan::kExact, &found, &nb);
        far = ExcludesNeighbourhood(nb, rows, passing, deferred != nullptr);
        if (st.ok() && !far && nb.seen > 0)
          plan = index::ChooseFilteredPlan(rows, passing, k, ef, shape,
                                           static_cast<double>(nb.passed) / static_cast<double>(nb.seen), setup_ns);
      }
      if (!st.ok()) {
        error = std::move(st);
        return;
      }
      if (k * 4 >= passing || plan == index::FilteredPlan::kExact || far) {
        // Most of what passes is wanted, the filter passes few rows, or none
        // near the query: a scan is cheaper (or the only way to find them) and exact.
        scan_all(q);
        if (!error.ok()) return;
        continue;
      }
      if (!filtered) {
        st = graph.Search(query, k, ef, filter, &found);
      } else if (plan == index::FilteredPlan::kFilteredWalk) {
        st = graph.SearchFiltered(query, k, ef, *pass_test, filter, &found);
      } else {
        st = graph.SearchGated(query, k, ef, *pass_test, filter, &found);
      }
      if (st.ok() && !filter_error.ok()) st = filter_error;
      if (st.ok() && filtered && found.size() < k) {
        // The walk missed passing rows (a filter cuts the graph apart): the
        // exact scan of the passing rows finds min(k, live passing) of them.
        heap = Heap(heap.k());
        scan_all(q);
        if (!error.ok()) return;
        continue;
      }
      for (size_t i = 0; st.ok() && i < found.size(); ++i) {
        const index::Neighbor& nb = found[i];
        st = l.CheckRow(nb.row);
        float s = nb.score;
        if (!st.ok() || !heap.MayAccept(s)) continue;
        Key key{};
        bool visible = false;
        st = l.Row(nb.row, &key, &visible);
        if (st.ok() && heap.Accepts(s, key)) heap.Push(Hit{s, static_cast<uint32_t>(task.layer), key, nb.row});
      }
      if (!st.ok()) {
        error = std::move(st);
        return;
      }
    }
  };
  if (spec.pool != nullptr && tasks.size() > 1) {
    spec.pool->ParallelFor(tasks.size(), run);
  } else {
    for (size_t t = 0; t < tasks.size(); ++t) run(t);
  }
  for (const Status& e : errors) POMAI_RETURN_IF_ERROR(e);
  if (expired)
    return Status::DeadlineExceeded("search exceeded its deadline of " + std::to_string(spec.deadline_ms) + " ms");

  for (size_t t = 0; t < tasks.size(); ++t)
    for (size_t q = tasks[t].q_begin; q < tasks[t].q_end; ++q) results[t][q - tasks[t].q_begin].AppendTo(&(*out)[q]);
  for (size_t q = 0; q < n; ++q) {
    std::vector<Hit>& hits = (*out)[q];
    const size_t k = std::min<size_t>(spec.topks[q], hits.size());
    std::partial_sort(hits.begin(), hits.begin() + static_cast<std::ptrdiff_t>(k), hits.end(), Better<Hit>);
    hits.resize(k);
  }
  return Status::OK();
}

template class Searcher<uint64_t>;
template class Searcher<std::string_view>;

}  // namespace pomai::engine
