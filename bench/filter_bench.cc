// filter::Filter::Evaluate over one layer of 1M rows (docs/FILTERS.md,
// "Execution"): an int64 range (SIMD), a string equality through a sorted
// (segment) and an unsorted (memtable) dictionary, a tags CONTAINS, an AND of
// three, and a 100k-id allow-list over unsorted (memtable) and ascending
// (segment) ids. items/s are rows
// evaluated per second; the bitmap's passing rows are reported as `passing`.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "filter/filter.h"
#include "filter/table_source.h"

namespace {

using pomai::AttrColumn;
using pomai::AttrType;
using pomai::Bitmap;
using pomai::filter::Filter;
using pomai::filter::Schema;
using pomai::filter::TableSource;

constexpr size_t kRows = 1'000'000;

const Schema& BenchSchema() {
  static const Schema schema = {{"n", AttrType::kInt64}, {"x", AttrType::kFloat64}, {"s", AttrType::kString},
                                {"t", AttrType::kTags}, {"b", AttrType::kBool}};
  return schema;
}

// n uniform in [0, 1M), x in [0, 1), s one of 1000 strings, t 0..5 of 100
// tags, b a coin; 5% nulls in every column. Ids: 0 .. 2M step 2, shuffled or not.
struct Layer {
  explicit Layer(TableSource::Dict dict, bool shuffle_ids = true) : src(Ids(shuffle_ids)) {
    std::mt19937_64 rng(7);
    AttrColumn n = AttrColumn::Make("n", AttrType::kInt64), x = AttrColumn::Make("x", AttrType::kFloat64),
               s = AttrColumn::Make("s", AttrType::kString), t = AttrColumn::Make("t", AttrType::kTags),
               b = AttrColumn::Make("b", AttrType::kBool);
    std::vector<std::string> strs, tags;
    for (int i = 0; i < 1000; ++i) strs.push_back("value-" + std::to_string(i));
    for (int i = 0; i < 100; ++i) tags.push_back("tag-" + std::to_string(i));
    auto null = [&]() { return rng() % 20 == 0; };
    for (size_t r = 0; r < kRows; ++r) {
      null() ? n.AppendNull() : n.AppendInt(static_cast<int64_t>(rng() % kRows));
      null() ? x.AppendNull() : x.AppendFloat(static_cast<double>(rng() % 1000000) / 1e6);
      null() ? s.AppendNull() : s.AppendString(strs[rng() % strs.size()]);
      null() ? b.AppendNull() : b.AppendBool(rng() % 2 == 0);
      if (null()) {
        t.AppendNull();
      } else {
        std::vector<std::string_view> row;
        for (size_t k = rng() % 6; k > 0; --k) row.push_back(tags[rng() % tags.size()]);
        t.AppendTags(row.data(), row.size());
      }
    }
    for (const AttrColumn* c : {&n, &x, &s, &t, &b}) src.Add(*c, dict, 3);
  }
  static std::vector<uint64_t> Ids(bool shuffle) {
    std::vector<uint64_t> ids(kRows);
    for (size_t r = 0; r < kRows; ++r) ids[r] = 2 * r;
    if (shuffle) std::shuffle(ids.begin(), ids.end(), std::mt19937_64(11));
    return ids;
  }
  TableSource src;
};

const Layer& SortedLayer() {
  static const Layer* layer = new Layer(TableSource::Dict::kSorted);
  return *layer;
}
const Layer& UnsortedLayer() {
  static const Layer* layer = new Layer(TableSource::Dict::kShuffled);
  return *layer;
}

void Run(benchmark::State& state, const Layer& layer, const char* expr, const std::vector<uint64_t>* allow = nullptr) {
  auto f = Filter::Compile(expr, BenchSchema(), allow ? allow->data() : nullptr, allow ? allow->size() : 0);
  if (!f.ok()) {
    state.SkipWithError(f.status().ToString().c_str());
    return;
  }
  Bitmap out;
  for (auto _ : state) {
    if (!f->Evaluate(layer.src, &out).ok()) state.SkipWithError("Evaluate failed");
    benchmark::DoNotOptimize(out.words());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kRows));
  state.counters["passing"] = static_cast<double>(out.Count());
}

void BM_IntRange(benchmark::State& s) { Run(s, SortedLayer(), "n BETWEEN 100000 AND 599999"); }
void BM_FloatLess(benchmark::State& s) { Run(s, SortedLayer(), "x < 0.25"); }
void BM_Bool(benchmark::State& s) { Run(s, SortedLayer(), "b"); }
void BM_IntIn8(benchmark::State& s) { Run(s, SortedLayer(), "n IN (1, 10, 100, 1000, 10000, 100000, 200000, 300000)"); }
void BM_StringEqSortedDict(benchmark::State& s) { Run(s, SortedLayer(), "s = 'value-17'"); }
void BM_StringEqUnsortedDict(benchmark::State& s) { Run(s, UnsortedLayer(), "s = 'value-17'"); }
void BM_StringRangeSortedDict(benchmark::State& s) { Run(s, SortedLayer(), "s BETWEEN 'value-1' AND 'value-3'"); }
void BM_TagsContains(benchmark::State& s) { Run(s, SortedLayer(), "t CONTAINS 'tag-7'"); }
void BM_TagsContainsAll(benchmark::State& s) { Run(s, SortedLayer(), "t CONTAINS ALL ('tag-7', 'tag-8')"); }
void BM_AndOfThree(benchmark::State& s) {
  Run(s, SortedLayer(), "n < 800000 AND s != 'value-17' AND t CONTAINS 'tag-7'");
}
void BM_NotOrOfThree(benchmark::State& s) {
  Run(s, UnsortedLayer(), "NOT (n < 100000 OR s = 'value-17' OR t CONTAINS 'tag-7')");
}
void BM_AllowList100k(benchmark::State& s) {
  std::vector<uint64_t> allow;
  std::mt19937_64 rng(5);
  for (size_t i = 0; i < 100000; ++i) allow.push_back(rng() % (4 * kRows));  // about half are ids of the layer
  Run(s, SortedLayer(), "", &allow);
}
void BM_AllowList100kSortedIds(benchmark::State& s) {  // a segment's layer: ids ascending
  static const Layer* sorted_ids = new Layer(TableSource::Dict::kSorted, /*shuffle_ids=*/false);
  std::vector<uint64_t> allow;
  std::mt19937_64 rng(5);
  for (size_t i = 0; i < 100000; ++i) allow.push_back(rng() % (4 * kRows));
  Run(s, *sorted_ids, "", &allow);
}
// A per-query filter as bench/filtered's correlated ones: an IN of 500
// values (a bit table over their span), evaluated, and compiled alone.
std::string IntIn500() {
  std::string e = "n IN (";
  for (int i = 0; i < 500; ++i) e += (i ? ", " : "") + std::to_string(i * 1997 % 1000000);
  return e + ")";
}
void BM_IntIn500(benchmark::State& s) { Run(s, SortedLayer(), IntIn500().c_str()); }
void BM_CompileIntIn500(benchmark::State& state) {
  const std::string e = IntIn500();
  for (auto _ : state) {
    auto f = Filter::Compile(e, BenchSchema());
    benchmark::DoNotOptimize(f);
  }
}
void BM_IdInList100(benchmark::State& s) {
  std::string expr = "id IN (";
  for (int i = 0; i < 100; ++i) expr += std::to_string(i * 977) + (i < 99 ? ", " : ")");
  Run(s, SortedLayer(), expr.c_str());
}

BENCHMARK(BM_IntRange)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FloatLess)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Bool)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IntIn8)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IntIn500)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CompileIntIn500)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_StringEqSortedDict)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StringEqUnsortedDict)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StringRangeSortedDict)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TagsContains)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TagsContainsAll)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AndOfThree)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_NotOrOfThree)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AllowList100k)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AllowList100kSortedIds)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IdInList100)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
