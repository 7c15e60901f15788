// Keyspace engine (lib/engine/db.h) benchmarks, with the baselines they
// are judged against measured in the same program:
//
//  - PutCommit/{memory,disk}: one transaction per put (begin, put 16-byte key
//    and 100-byte value, commit), fsync never on disk.
//  - Get/{memory,disk}: point lookups of 100k keys inside one read-only
//    transaction; GetOwnTxn: begin + get + commit per lookup.
//  - SearchSimilar10kx768/{memtable,segment}: exact top-10 cosine over 10k
//    vector records of 768 floats, in the memtable or in a flushed segment,
//    against ScalarBaseline: the same top-10 with a plain scalar loop over a
//    contiguous matrix (what a naive numpy-free implementation costs).
//  - IndexSearchWhere/{none,50%,1%}: a named index of 100k entries x 64
//    floats (L2) in one segment with its graph, each entry with an int64
//    and a string attribute; top-10 at ef 64 with no filter, `bucket < 50`
//    (half the entries) and `bucket = 7` (1%). IndexSearchWhereFirst: the
//    first filtered search after an open, which decodes the entries'
//    attributes into columns (kept while the segment is live).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/db.h"
#include "simd/distance.h"
#include "util/attributes.h"

namespace {

using pomai::engine::DB;
using pomai::engine::KeyHit;
using pomai::engine::Options;
using pomai::engine::TxnMode;
using pomai::simd::Metric;

std::string BenchDir(const std::string& name) {
  const char* base = std::getenv("POMAI_BENCH_DIR");
  std::filesystem::path p = std::filesystem::path(base ? base : "/tmp/pomai-bench") / name;
  std::filesystem::remove_all(p);
  return p.string();
}

std::unique_ptr<DB> OpenBenchDb(bool disk, const std::string& name) {
  Options o;
  o.in_memory = !disk;
  if (disk) o.path = BenchDir(name);
  auto r = DB::Open(o);
  if (!r.ok()) {
    std::fprintf(stderr, "open: %s\n", r.status().ToString().c_str());
    std::abort();
  }
  return std::move(r).value();
}

std::string Key(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "key:%012llu", static_cast<unsigned long long>(i));
  return buf;
}

void BM_PutCommit(benchmark::State& state) {
  const bool disk = state.range(0) == 1;
  auto db = OpenBenchDb(disk, "kv_put");
  const std::string value(100, 'v');
  uint64_t i = 0;
  for (auto _ : state) {
    auto t = db->Begin(TxnMode::kReadWrite);
    (void)(*t)->Put(Key(i++ % 1000000), value);
    pomai::Status s = (*t)->Commit();
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(disk ? "disk" : "memory");
}
BENCHMARK(BM_PutCommit)->Arg(0)->Arg(1);

// fsync ALWAYS: `threads` committers of one-put transactions. Commits
// waiting for the WAL share one write and one fdatasync (group commit), so
// commits/s should grow with the number of committers.
void BM_PutCommitFsyncThreads(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  Options o;
  o.path = BenchDir("kv_fsync");
  o.fsync = true;
  auto db = std::move(DB::Open(o)).value();
  const std::string value(100, 'v');
  constexpr int kPerThread = 20;
  std::atomic<uint64_t> next{0};
  for (auto _ : state) {
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&] {
        for (int i = 0; i < kPerThread; ++i) {
          auto txn = db->Begin(TxnMode::kReadWrite);
          (void)(*txn)->Put(Key(next++), value);
          (void)(*txn)->Commit();
        }
      });
    }
    for (auto& t : ts) t.join();
  }
  state.SetItemsProcessed(state.iterations() * threads * kPerThread);
}
BENCHMARK(BM_PutCommitFsyncThreads)->Arg(1)->Arg(4)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);

std::unique_ptr<DB> Loaded(bool disk, size_t n) {
  auto db = OpenBenchDb(disk, "kv_get");
  const std::string value(100, 'v');
  for (size_t start = 0; start < n; start += 10000) {
    auto t = db->Begin(TxnMode::kReadWrite);
    for (size_t i = start; i < start + 10000; ++i) (void)(*t)->Put(Key(i), value);
    (void)(*t)->Commit();
  }
  if (disk) (void)db->Flush();
  return db;
}

void BM_Get(benchmark::State& state) {
  const bool disk = state.range(0) == 1;
  constexpr size_t kN = 100000;
  auto db = Loaded(disk, kN);
  auto t = db->Begin(TxnMode::kReadOnly);
  std::mt19937_64 rng(1);
  std::string v;
  bool found;
  for (auto _ : state) {
    (void)(*t)->Get(Key(rng() % kN), &v, &found);
    benchmark::DoNotOptimize(found);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(disk ? "disk (segment)" : "memory");
}
BENCHMARK(BM_Get)->Arg(0)->Arg(1);

// Point lookups while another thread commits one put per transaction as
// fast as it can: readers take the memtable lock shared, commits hold it
// exclusively only to insert, so lookups should stay close to BM_Get.
void BM_GetWhileCommitting(benchmark::State& state) {
  constexpr size_t kN = 100000;
  auto db = Loaded(false, kN);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> commits{0};
  std::thread writer([&] {
    const std::string value(100, 'w');
    uint64_t i = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      auto t = db->Begin(TxnMode::kReadWrite);
      (void)(*t)->Put(Key(kN + i++ % kN), value);
      (void)(*t)->Commit();
      commits.fetch_add(1, std::memory_order_relaxed);
    }
  });
  auto t = db->Begin(TxnMode::kReadOnly);
  std::mt19937_64 rng(1);
  std::string v;
  bool found;
  for (auto _ : state) {
    (void)(*t)->Get(Key(rng() % kN), &v, &found);
    benchmark::DoNotOptimize(found);
  }
  stop = true;
  writer.join();
  state.SetItemsProcessed(state.iterations());
  state.counters["commits"] = static_cast<double>(commits.load());
}
BENCHMARK(BM_GetWhileCommitting)->UseRealTime();

void BM_GetOwnTxn(benchmark::State& state) {
  constexpr size_t kN = 100000;
  auto db = Loaded(false, kN);
  std::mt19937_64 rng(1);
  std::string v;
  bool found;
  for (auto _ : state) {
    auto t = db->Begin(TxnMode::kReadOnly);
    (void)(*t)->Get(Key(rng() % kN), &v, &found);
    (void)(*t)->Commit();
    benchmark::DoNotOptimize(found);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetOwnTxn);

constexpr size_t kRows = 10000;
constexpr uint32_t kDim = 768;

std::vector<float> Matrix(size_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> m(rows * kDim);
  for (auto& x : m) x = n(rng);
  return m;
}

void BM_SearchSimilar10kx768(benchmark::State& state) {
  const bool segment = state.range(0) == 1;
  const uint32_t threads = static_cast<uint32_t>(state.range(1));
  Options o;
  o.in_memory = !segment;
  if (segment) o.path = BenchDir("kv_search");
  o.search_threads = threads;
  auto db = std::move(DB::Open(o)).value();
  const auto m = Matrix(kRows, 3);
  {
    auto t = db->Begin(TxnMode::kReadWrite);
    for (size_t i = 0; i < kRows; ++i)
      (void)(*t)->UpsertVector(Key(i), m.data() + i * kDim, kDim, Metric::kCosine, nullptr);
    (void)(*t)->Commit();
  }
  if (segment) (void)db->Flush();
  const auto q = Matrix(1, 4);
  auto t = db->Begin(TxnMode::kReadOnly);
  std::vector<KeyHit> hits;
  for (auto _ : state) {
    pomai::Status s = (*t)->SearchSimilar(q.data(), kDim, Metric::kCosine, 10, nullptr, false, &hits);
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
    benchmark::DoNotOptimize(hits.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRows * kDim * sizeof(float)));
  state.SetLabel(std::string(segment ? "segment" : "memtable") + ", " + std::to_string(threads) + " thread(s)");
}
BENCHMARK(BM_SearchSimilar10kx768)->Args({0, 1})->Args({1, 1})->Args({0, 2})->Args({1, 2})->Unit(benchmark::kMicrosecond);

// A named index "docs" of `entries` entries x 64 floats (L2), each with an
// int64 `bucket` (i % 100) and a string `lang`; in one segment with its
// graph when `segment`, else all in the memtable.
std::unique_ptr<DB> IndexWithAttributes(size_t entries, bool segment, const std::string& name) {
  Options o;
  o.path = BenchDir(name);
  auto db = std::move(DB::Open(o)).value();
  pomai::engine::IndexConfig config;
  config.dim = 64;
  config.metric = Metric::kL2;
  (void)db->CreateIndex("docs", config);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> v(64);
  auto t = std::move(db->Begin(TxnMode::kReadWrite)).value();
  for (size_t i = 0; i < entries; ++i) {
    for (auto& x : v) x = n(rng);
    std::vector<pomai::AttrColumn> attrs;
    attrs.push_back(pomai::AttrColumn::Make("bucket", pomai::AttrType::kInt64));
    attrs.back().AppendInt(static_cast<int64_t>(i % 100));
    attrs.push_back(pomai::AttrColumn::Make("lang", pomai::AttrType::kString));
    attrs.back().AppendString(i % 3 == 0 ? "de" : "en");
    (void)t->IndexUpsert("docs", Key(i), v.data(), 64, nullptr, &attrs);
  }
  (void)t->Commit();
  if (segment) (void)db->PrepareIndex("docs", nullptr);
  return db;
}

void SearchDocs(benchmark::State& state, DB& db, const std::string& where) {
  std::vector<float> q(64);
  std::mt19937_64 rng(9);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<KeyHit> hits;
  for (auto _ : state) {
    for (auto& x : q) x = n(rng);
    pomai::Status s = db.SearchIndex("docs", q.data(), 64, 10, 64, where, &hits, nullptr);
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
    benchmark::DoNotOptimize(hits.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(where.empty() ? "no filter" : where);
}

const char* const kWheres[] = {"", "bucket < 50", "bucket = 7"};

void BM_IndexSearchWhere(benchmark::State& state) {
  static std::unique_ptr<DB> db = IndexWithAttributes(100000, true, "kv_index_where");
  SearchDocs(state, *db, kWheres[state.range(0)]);
}
BENCHMARK(BM_IndexSearchWhere)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

// The first filtered search after an open: it decodes the 100k entries'
// attribute records into columns (then kept while the segment is live).
void BM_IndexSearchWhereFirst(benchmark::State& state) {
  (void)IndexWithAttributes(100000, true, "kv_index_where_first");
  std::unique_ptr<DB> db;
  std::vector<float> q(64, 0.5f);
  std::vector<KeyHit> hits;
  for (auto _ : state) {
    state.PauseTiming();
    db.reset();
    Options o;
    o.path = (std::filesystem::path(std::getenv("POMAI_BENCH_DIR") ? std::getenv("POMAI_BENCH_DIR") : "/tmp/pomai-bench") /
              "kv_index_where_first").string();
    db = std::move(DB::Open(o)).value();
    state.ResumeTiming();
    pomai::Status s = db->SearchIndex("docs", q.data(), 64, 10, 64, "bucket < 50", &hits, nullptr);
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
}
BENCHMARK(BM_IndexSearchWhereFirst)->Unit(benchmark::kMillisecond)->Iterations(5);

void BM_ScalarBaseline10kx768(benchmark::State& state) {
  const auto m = Matrix(kRows, 3);
  const auto q = Matrix(1, 4);
  std::vector<std::pair<float, size_t>> scores(kRows);
  for (auto _ : state) {
    for (size_t i = 0; i < kRows; ++i)
      scores[i] = {pomai::simd::ScalarScore(Metric::kCosine, q.data(), m.data() + i * kDim, kDim), i};
    std::partial_sort(scores.begin(), scores.begin() + 10, scores.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    benchmark::DoNotOptimize(scores.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRows * kDim * sizeof(float)));
}
BENCHMARK(BM_ScalarBaseline10kx768)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
