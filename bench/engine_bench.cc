// Engine benchmarks, each paired with the baseline it is judged against,
// measured in the same program on the same machine:
//
//  - MemoryReadBandwidth vs ExactSearch: one thread reading the 1M x 128
//    float32 matrix with a plain summing loop, against one exact top-10 search
//    over the same rows (a frozen 1M x 128 segment, search_threads 1).
//    Goal: search bytes/s >= 80% of the read bandwidth.
//  - SequentialWrite vs PutBatch (fsync never): write(2) of about the bytes the
//    WAL writes, in the same directory, against put_batch of 128-d vectors,
//    both in real time (the freeze every 200k rows, and the merge it
//    triggers, run outside the timing). Goal: put_batch >= 50% of the
//    write() rate.
//  - PutBatchFsync/batch: fsync always, one writer, batch sizes 1..1000:
//    rows/s grows with the batch size (one fdatasync per batch, not per row);
//    PutBatchFsyncThreads: 4 writers of 1-row batches share fdatasyncs.
//  - ReopenFirstGet and ReopenFirstSearch at 10k and 1M rows: open a frozen
//    database and answer one point lookup (or one exact search).
//
// Each engine benchmark runs on the keyspace engine's default collection
// (engine::DB, as pomai_open opens it); "freeze" below is DB::Flush
// (which also runs the merge policy).
//
// Pass --benchmark_counters_tabular=true for a readable table. bench/run.sh
// builds this and prints the ratios (bench/engine_ratios.py): each goal.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/db.h"

namespace {

using pomai::Status;
using pomai::engine::DefaultCollectionOptions;
using pomai::engine::Hit;
using pomai::engine::DB;
using pomai::engine::Options;

constexpr uint32_t kDim = 128;
constexpr uint64_t kBudgetBytes = 2ull << 30;  // one segment per freeze

std::string BenchDir(const std::string& name) {
  const char* base = std::getenv("POMAI_BENCH_DIR");
  std::filesystem::path p = std::filesystem::path(base ? base : "/tmp/pomai-bench") / name;
  return p.string();
}

std::vector<float> RandomMatrix(size_t rows, uint32_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> m(rows * dim);
  for (auto& x : m) x = u(rng);
  return m;
}

// DB's default collection: 128-d, L2, one shard, one search thread, no
// graphs (these benchmarks measure the exact scan, the log and the open).
std::unique_ptr<DB> OpenDb(const std::string& path, uint64_t budget_bytes = kBudgetBytes, bool fsync = false,
                           uint32_t max_segments = Options{}.max_segments) {
  Options o;
  o.path = path;
  o.search_threads = 1;
  o.memtable_budget_bytes = budget_bytes;
  o.fsync = fsync;
  o.max_segments = max_segments;
  auto db = DB::Open(o).value();
  DefaultCollectionOptions c;
  c.dim = kDim;
  c.shards = 1;
  c.metric = pomai::simd::Metric::kL2;
  c.build_graphs = false;
  if (!db->OpenDefaultCollection(c).ok()) std::abort();
  return db;
}

// A flushed database of `rows` random 128-d vectors, built once per process.
std::string FrozenDb(size_t rows) {
  static std::map<size_t, std::string> built;
  auto it = built.find(rows);
  if (it != built.end()) return it->second;
  const std::string path = BenchDir("frozen-" + std::to_string(rows));
  std::filesystem::remove_all(path);
  auto db = OpenDb(path);
  const size_t batch = 10000;
  std::vector<uint64_t> ids(batch);
  for (size_t start = 0; start < rows; start += batch) {
    const size_t n = std::min(batch, rows - start);
    auto m = RandomMatrix(n, kDim, start);
    for (size_t i = 0; i < n; ++i) ids[i] = start + i;
    if (!db->PutArray(ids.data(), m.data(), n).ok()) std::abort();
  }
  if (!db->Flush().ok()) std::abort();
  db.reset();
  built[rows] = path;
  return path;
}

void MemoryReadBandwidth(benchmark::State& state) {
  const size_t rows = static_cast<size_t>(state.range(0));
  std::vector<float> m = RandomMatrix(rows, kDim, 1);
  const auto* p = reinterpret_cast<const uint64_t*>(m.data());
  const size_t words = m.size() / 2;
  for (auto _ : state) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= words; i += 4) {
      a += p[i];
      b += p[i + 1];
      c += p[i + 2];
      d += p[i + 3];
    }
    benchmark::DoNotOptimize(a + b + c + d);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * m.size() * sizeof(float)));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * rows));
}
BENCHMARK(MemoryReadBandwidth)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void ExactSearch(benchmark::State& state) {
  const size_t rows = static_cast<size_t>(state.range(0));
  auto db = OpenDb(FrozenDb(rows));
  auto q = RandomMatrix(1, kDim, 99);
  uint32_t k = 10;
  std::vector<std::vector<Hit>> out;
  if (!db->Search(q.data(), 1, &k, 0, 0, &out).ok()) std::abort();  // warm the page cache
  for (auto _ : state) {
    if (!db->Search(q.data(), 1, &k, 0, 0, &out).ok()) std::abort();
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * rows * kDim * sizeof(float)));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * rows));
}
BENCHMARK(ExactSearch)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// Plain sequential write()s of `batch` rows of 9 + 4 + 512 bytes plus a record
// header: what put_batch of 128-d rows wrote to the retired u64 engine's WAL,
// kept so that the figures compare with earlier runs (DB's row-array record
// is 8 + 512 bytes per row).
void SequentialWrite(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const std::string dir = BenchDir("seqwrite");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const size_t bytes = batch * (9 + 4 + kDim * 4) + 28;
  std::vector<char> buf(bytes, 'x');
  int fd = ::open((dir + "/file").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  size_t written = 0;
  for (auto _ : state) {
    if (::write(fd, buf.data(), bytes) != static_cast<ssize_t>(bytes)) std::abort();
    written += bytes;
    if (written > (1ull << 30)) {  // keep the file bounded, like a WAL rotated by freezes
      state.PauseTiming();
      if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) != 0) std::abort();
      written = 0;
      state.ResumeTiming();
    }
  }
  ::close(fd);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}
// Both write benchmarks report the median of 5 runs: on a shared virtual
// machine the real time of a run can double when the host takes the CPU away.
BENCHMARK(SequentialWrite)->Arg(1000)->Unit(benchmark::kMicrosecond)->MinTime(2.0)->UseRealTime()->Repetitions(5)->ReportAggregatesOnly(true);

// Rows a memtable takes before the benchmark freezes it (outside the timing),
// as a write-heavy database does every ~100 MiB: the steady state of
// ingestion, where each memtable reuses the previous one's pages. Every
// kMemtablesPerDb memtables the database is replaced by an empty one (outside
// the timing, and with merges off: max_segments above that count), so the
// untimed work stays one flush per memtable however many iterations the
// timing asks for, instead of merges that grow with the data written.
constexpr size_t kRowsPerMemtable = 200'000;
constexpr uint32_t kMemtablesPerDb = 8;

void PutBatch(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const std::string dir = BenchDir("putbatch");
  std::filesystem::remove_all(dir);
  auto db = OpenDb(dir, 1ull << 30, false, kMemtablesPerDb + 1);
  auto m = RandomMatrix(batch, kDim, 5);
  std::vector<uint64_t> ids(batch);
  uint64_t next = 0;
  size_t since_freeze = 0, memtables = 0;
  for (auto _ : state) {
    for (auto& id : ids) id = next++;
    if (!db->PutArray(ids.data(), m.data(), batch).ok()) std::abort();
    since_freeze += batch;
    if (since_freeze >= kRowsPerMemtable) {  // bound memory: freeze outside the timing
      state.PauseTiming();
      if (!db->Flush().ok()) std::abort();
      if (++memtables == kMemtablesPerDb) {
        db.reset();
        std::filesystem::remove_all(dir);
        db = OpenDb(dir, 1ull << 30, false, kMemtablesPerDb + 1);
        memtables = 0;
      }
      // the write-back of the segment, which would otherwise hold up the
      // log's writes in the timed loop
      ::sync();
      since_freeze = 0;
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  // SequentialWrite's bytes per row: bytes/s is items/s times a constant.
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch * (9 + 4 + kDim * 4)));
}
// Real time, not CPU time: put_batch copies into the memtable on the WAL
// writer's helper thread while it writes the log, and a rate is what a user waits for.
BENCHMARK(PutBatch)->Arg(1000)->Unit(benchmark::kMicrosecond)->MinTime(2.0)->UseRealTime()->Repetitions(5)->ReportAggregatesOnly(true);

void PutBatchFsync(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const std::string dir = BenchDir("putbatch-fsync");
  std::filesystem::remove_all(dir);
  auto db = OpenDb(dir, kBudgetBytes, /*fsync=*/true);
  auto m = RandomMatrix(batch, kDim, 5);
  std::vector<uint64_t> ids(batch);
  uint64_t next = 0;
  for (auto _ : state) {
    for (auto& id : ids) id = next++;
    if (!db->PutArray(ids.data(), m.data(), batch).ok()) std::abort();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
}
BENCHMARK(PutBatchFsync)->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond)->MinTime(1.0);

// `threads` writers each putting 1-row batches with fsync always: group
// commit lets them share fdatasyncs, so rows/s grows with the writers.
void PutBatchFsyncThreads(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const std::string dir = BenchDir("putbatch-fsync-threads");
  std::filesystem::remove_all(dir);
  auto db = OpenDb(dir, kBudgetBytes, /*fsync=*/true);
  auto m = RandomMatrix(1, kDim, 5);
  const int per_thread = 200;
  for (auto _ : state) {
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i) {
          uint64_t id = static_cast<uint64_t>(t) * 1'000'000'000ull + i;
          if (!db->PutArray(&id, m.data(), 1).ok()) std::abort();
        }
      });
    }
    for (auto& th : ts) th.join();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * threads * per_thread));
}
BENCHMARK(PutBatchFsyncThreads)->Arg(1)->Arg(4)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();

void ReopenFirstGet(benchmark::State& state) {
  const std::string path = FrozenDb(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    auto db = OpenDb(path);
    std::vector<float> v;
    if (!db->Get(7, &v, nullptr).ok()) std::abort();
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(ReopenFirstGet)->Arg(10'000)->Arg(1'000'000)->Unit(benchmark::kMicrosecond);

void ReopenFirstSearch(benchmark::State& state) {
  const std::string path = FrozenDb(static_cast<size_t>(state.range(0)));
  auto q = RandomMatrix(1, kDim, 99);
  uint32_t k = 10;
  for (auto _ : state) {
    auto db = OpenDb(path);
    std::vector<std::vector<Hit>> out;
    if (!db->Search(q.data(), 1, &k, 0, 0, &out).ok()) std::abort();
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(ReopenFirstSearch)->Arg(10'000)->Arg(1'000'000)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
