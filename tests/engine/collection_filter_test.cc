// Attributes and filters of the default collection (docs/FILTERS.md) across
// layers: a model test of random row batches with attributes, deletes,
// attribute updates, flushes, merges and reopens, checking count, scan,
// delete and search by filter against the model after each step; the k
// guarantee of filtered graph search (invariant 8); schema rules.
#include <functional>
#include <set>

#include "engine/db_test_util.h"
#include "engine/search.h"
#include "util/attributes.h"

namespace pomai::testing {
namespace {

// One live row of the model.
struct ModelRow {
  std::vector<float> vec;
  std::string meta;
  std::optional<int64_t> a;
  std::optional<std::string> s;
  std::optional<std::vector<std::string>> t;
  std::optional<bool> b;
};
using Model = std::map<uint64_t, ModelRow>;

// A filter of the test and its meaning on a model row.
struct Case {
  const char* expr;
  std::function<bool(uint64_t id, const ModelRow&)> passes;
};

bool Has(const std::optional<std::vector<std::string>>& t, const std::string& x) {
  return t && std::find(t->begin(), t->end(), x) != t->end();
}

const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = {
      {"a < 5", [](uint64_t, const ModelRow& r) { return r.a && *r.a < 5; }},
      {"a BETWEEN 2 AND 6 AND s = 'x'", [](uint64_t, const ModelRow& r) { return r.a && *r.a >= 2 && *r.a <= 6 && r.s == "x"; }},
      {"s IN ('x', 'y') OR b", [](uint64_t, const ModelRow& r) { return (r.s && (*r.s == "x" || *r.s == "y")) || (r.b && *r.b); }},
      {"t CONTAINS 'red'", [](uint64_t, const ModelRow& r) { return Has(r.t, "red"); }},
      {"t CONTAINS ANY ('red', 'blue') AND NOT (a >= 3)",
       [](uint64_t, const ModelRow& r) { return (Has(r.t, "red") || Has(r.t, "blue")) && r.a && *r.a < 3; }},
      {"s IS NULL", [](uint64_t, const ModelRow& r) { return !r.s; }},
      {"s > 'x' OR a = 9", [](uint64_t, const ModelRow& r) { return (r.s && *r.s > "x") || (r.a && *r.a == 9); }},
      {"id < 60 AND b = false", [](uint64_t id, const ModelRow& r) { return id < 60 && r.b && !*r.b; }},
      {"a = 1", [](uint64_t, const ModelRow& r) { return r.a && *r.a == 1; }},
  };
  return cases;
}

class FilterModel : public ::testing::TestWithParam<bool> {  // param: on disk
 protected:
  void SetUp() override {
    dir_ = GetParam() ? tmp_.path() : "";
    o_ = MakeRowsOptions(dir_, kDim);
    o_.kv.in_memory = dir_.empty();
    o_.coll.adaptive_threshold = 64;  // segments get graphs: filtered walks are exercised
    o_.coll.hnsw_m = 8;
    o_.coll.hnsw_ef_construction = 40;
    o_.kv.memtable_budget_bytes = 16 << 10;
    db_ = OpenRows(o_);
    ASSERT_NE(db_, nullptr);
  }

  static constexpr uint32_t kDim = 8;

  // A batch of `n` random rows (ids below 200) with a random subset of the
  // columns (every column when `all`), each with nulls.
  void PutBatch(std::mt19937_64& rng, size_t n, bool all = false) {
    std::vector<uint64_t> ids(n);
    std::vector<float> vecs(n * kDim);
    std::vector<uint64_t> meta_off(1, 0);
    std::string meta;
    std::uniform_int_distribution<uint64_t> id_of(0, 199);
    for (size_t i = 0; i < n; ++i) {
      ids[i] = id_of(rng);
      std::vector<float> v = VectorFor(ids[i], static_cast<uint32_t>(rng() % 1000), kDim);
      std::copy(v.begin(), v.end(), vecs.begin() + i * kDim);
      meta += "m" + std::to_string(ids[i]);
      meta_off.push_back(meta.size());
    }
    std::vector<AttrColumn> cols;
    const bool with_a = all || rng() % 4 != 0, with_s = all || rng() % 3 != 0, with_t = all || rng() % 2 == 0,
               with_b = all || rng() % 2 == 0;
    std::vector<ModelRow> rows(n);
    static const char* kStrings[] = {"w", "x", "y", "z", ""};
    static const char* kTags[] = {"red", "blue", "green"};
    if (with_a) {
      AttrColumn c = AttrColumn::Make("a", AttrType::kInt64);
      for (size_t i = 0; i < n; ++i) {
        if (rng() % 5 == 0) {
          c.AppendNull();
        } else {
          rows[i].a = static_cast<int64_t>(rng() % 10);
          c.AppendInt(*rows[i].a);
        }
      }
      cols.push_back(std::move(c));
    }
    if (with_s) {
      AttrColumn c = AttrColumn::Make("s", AttrType::kString);
      for (size_t i = 0; i < n; ++i) {
        if (rng() % 5 == 0) {
          c.AppendNull();
        } else {
          rows[i].s = kStrings[rng() % 5];
          c.AppendString(*rows[i].s);
        }
      }
      cols.push_back(std::move(c));
    }
    if (with_t) {
      AttrColumn c = AttrColumn::Make("t", AttrType::kTags);
      for (size_t i = 0; i < n; ++i) {
        if (rng() % 6 == 0) {
          c.AppendNull();
          continue;
        }
        std::vector<std::string> tags;
        for (size_t k = rng() % 3; k > 0; --k) tags.push_back(kTags[rng() % 3]);
        std::vector<std::string_view> views(tags.begin(), tags.end());
        c.AppendTags(views.data(), views.size());
        rows[i].t = tags;
      }
      cols.push_back(std::move(c));
    }
    if (with_b) {
      AttrColumn c = AttrColumn::Make("b", AttrType::kBool);
      for (size_t i = 0; i < n; ++i) {
        if (rng() % 4 == 0) {
          c.AppendNull();
        } else {
          rows[i].b = rng() % 2 == 0;
          c.AppendBool(*rows[i].b);
        }
      }
      cols.push_back(std::move(c));
    }
    engine::RowsIn in;
    in.n = n;
    in.ids = ids.data();
    in.vectors = vecs.data();
    in.metadata_offsets = meta_off.data();
    in.metadata = reinterpret_cast<const uint8_t*>(meta.data());
    in.columns = cols;
    ASSERT_TRUE(db_->PutRows(in).ok());
    for (size_t i = 0; i < n; ++i) {  // the last row of an id wins
      rows[i].vec.assign(vecs.begin() + i * kDim, vecs.begin() + (i + 1) * kDim);
      rows[i].meta = meta.substr(meta_off[i], meta_off[i + 1] - meta_off[i]);
      model_[ids[i]] = rows[i];
    }
  }

  void Check(const std::string& where) {
    SCOPED_TRACE(where);
    for (const Case& c : Cases()) {
      SCOPED_TRACE(c.expr);
      engine::RowFilterSpec spec;
      spec.expression = c.expr;
      std::vector<uint64_t> want;
      for (const auto& [id, r] : model_)
        if (c.passes(id, r)) want.push_back(id);
      auto count = db_->Count(&spec);
      ASSERT_TRUE(count.ok()) << count.status().ToString();
      EXPECT_EQ(*count, want.size());
      CheckScan(spec, want);
      CheckSearch(spec, c, want.size());
    }
  }

  // A scan returns exactly the passing rows, in id order, with their data.
  void CheckScan(const engine::RowFilterSpec& spec, const std::vector<uint64_t>& want) {
    engine::ScanSpec ss;
    ss.filter = spec;
    ss.batch_rows = 7;
    auto scan = db_->Scan(ss);
    ASSERT_TRUE(scan.ok()) << scan.status().ToString();
    std::vector<uint64_t> got;
    for (;;) {
      engine::ScanBatch b;
      bool done = false;
      ASSERT_TRUE((*scan)->Next(&b, &done).ok());
      if (done) break;
      ASSERT_LE(b.ids.size(), 7u);
      const auto& cols = (*scan)->columns();
      for (size_t j = 0; j < b.ids.size(); ++j) {
        const ModelRow& r = model_.at(b.ids[j]);
        got.push_back(b.ids[j]);
        EXPECT_TRUE(std::equal(r.vec.begin(), r.vec.end(), b.vectors.begin() + j * kDim));
        EXPECT_EQ(b.meta_blob.substr(b.meta_offsets[j], b.meta_offsets[j + 1] - b.meta_offsets[j]), r.meta);
        for (size_t c = 0; c < cols.size(); ++c) {
          const AttrColumn& col = b.columns[c];
          const std::string& name = cols[c].first;
          if (name == "a") {
            EXPECT_EQ(col.has_value(j), r.a.has_value());
            if (r.a) EXPECT_EQ(col.ints[j], *r.a);
          } else if (name == "s") {
            EXPECT_EQ(col.has_value(j), r.s.has_value());
            if (r.s) EXPECT_EQ(col.str(j), *r.s);
          } else if (name == "b") {
            EXPECT_EQ(col.has_value(j), r.b.has_value());
            if (r.b) EXPECT_EQ(col.bools[j] != 0, *r.b);
          } else if (name == "t") {
            EXPECT_EQ(col.has_value(j), r.t.has_value());
            if (r.t) {
              ASSERT_EQ(col.tag_count(j), r.t->size());
              for (size_t k = 0; k < r.t->size(); ++k) EXPECT_EQ(col.tag(j, k), (*r.t)[k]);
            }
          }
        }
      }
    }
    EXPECT_EQ(got, want);
  }

  // Search: min(k, passing) results (invariant 8), each passing and live;
  // with every layer exact (no graph) the brute-force answer itself.
  void CheckSearch(const engine::RowFilterSpec& spec, const Case& c, size_t passing) {
    const std::vector<float> q = VectorFor(7777, static_cast<uint32_t>(passing), kDim);
    for (uint32_t k : {1u, 10u, 50u}) {
      std::vector<std::vector<engine::Hit>> out;
      ASSERT_TRUE(db_->Search(q.data(), 1, &k, 0, 16, &out, &spec).ok());
      ASSERT_EQ(out[0].size(), std::min<size_t>(k, passing));
      for (const engine::Hit& h : out[0]) {
        ASSERT_TRUE(model_.count(h.id)) << h.id;
        EXPECT_TRUE(c.passes(h.id, model_.at(h.id))) << h.id;
        EXPECT_NEAR(h.score, simd::ScalarScore(simd::Metric::kL2, q.data(), model_.at(h.id).vec.data(), kDim), 1e-4);
      }
    }
  }

  TempDir tmp_;
  std::string dir_;
  RowsOptions o_;
  std::unique_ptr<engine::DB> db_;
  Model model_;
};

TEST_P(FilterModel, CountScanSearchAndDeleteMatchTheModelInEveryLayerMix) {
  std::mt19937_64 rng(42);
  PutBatch(rng, 40, /*all=*/true);  // the filters' columns exist from the start
  for (int step = 0; step < 40; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      PutBatch(rng, 1 + rng() % 60);
    } else if (op == 5) {  // deletes, some of ids never written
      std::vector<uint64_t> ids;
      for (int i = 0; i < 15; ++i) ids.push_back(rng() % 220);
      for (uint64_t id : ids) {
        ASSERT_TRUE(DelRow(db_.get(), id).ok());
        model_.erase(id);
      }
    } else if (op == 6 && !model_.empty()) {  // update a's of some live rows
      std::vector<uint64_t> ids;
      for (auto it = model_.begin(); it != model_.end() && ids.size() < 10; ++it)
        if (rng() % 3 == 0) ids.push_back(it->first);
      AttrColumn c = AttrColumn::Make("a", AttrType::kInt64);
      for (uint64_t id : ids) {
        const int64_t v = static_cast<int64_t>(rng() % 10);
        c.AppendInt(v);
        model_[id].a = v;
      }
      ASSERT_TRUE(db_->UpdateAttributes(ids.data(), ids.size(), {c}).ok());
    } else if (op == 7 && GetParam()) {  // in memory, the small budget's background flushes make segments
      ASSERT_TRUE(db_->Flush().ok());
    } else if (op == 8) {
      ASSERT_TRUE(db_->Compact(true).ok());
    } else if (GetParam()) {
      db_.reset();
      db_ = OpenRows(o_);
      ASSERT_NE(db_, nullptr);
    }
    Check("step " + std::to_string(step));
    if (HasFatalFailure()) return;
  }
  // Everything in one segment (Count's one-layer path).
  if (GetParam()) ASSERT_TRUE(db_->Flush().ok());
  ASSERT_TRUE(db_->Compact(true).ok());
  Check("one segment");
  // Delete by filter: the passing rows go, the others stay.
  engine::RowFilterSpec spec;
  spec.expression = "a < 5";
  uint64_t want = 0;
  for (auto it = model_.begin(); it != model_.end();) {
    if (it->second.a && *it->second.a < 5) {
      it = model_.erase(it);
      ++want;
    } else {
      ++it;
    }
  }
  auto deleted = db_->DeleteWhere(spec);
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(*deleted, want);
  Check("after DeleteWhere");
}

INSTANTIATE_TEST_SUITE_P(, FilterModel, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "OnDisk" : "InMemory"; });

// A column's type is fixed by its first write; a later write of another type
// fails naming the column, and stores nothing of its batch.
TEST(FilterSchema, TypesAreFixedByTheFirstWriteAndSurviveReopen) {
  TempDir tmp;
  const RowsOptions o = MakeRowsOptions(tmp.path(), 4);
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  const std::vector<float> v(4, 0.5f);
  const uint64_t id = 1;
  engine::RowsIn in;
  in.n = 1;
  in.ids = &id;
  in.vectors = v.data();
  AttrColumn c = AttrColumn::Make("year", AttrType::kInt64);
  c.AppendInt(2020);
  in.columns = {c};
  ASSERT_TRUE(db->PutRows(in).ok());
  for (bool reopen : {false, true}) {
    if (reopen) {
      ASSERT_TRUE(db->Flush().ok());
      db.reset();
      db = OpenRows(o);
      ASSERT_NE(db, nullptr);
    }
    AttrColumn bad = AttrColumn::Make("year", AttrType::kString);
    bad.AppendString("2021");
    const uint64_t id2 = 2;
    in.ids = &id2;
    in.columns = {bad};
    Status s = db->PutRows(in);
    EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
    EXPECT_NE(s.message().find("'year' is int64"), std::string::npos) << s.message();
    EXPECT_EQ(db->Count().value(), 1u);
    ASSERT_EQ(db->Schema().size(), 1u);
    EXPECT_EQ(db->Schema()[0].second, AttrType::kInt64);
  }
  // A filter on a column the collection never had names it.
  engine::RowFilterSpec spec;
  spec.expression = "genre = 'x'";
  auto n = db->Count(&spec);
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("genre"), std::string::npos) << n.status().ToString();
}

// Invariant 8 under a filter that cuts the graph apart: rows passing are a
// far cluster the walk from the entry point would not reach through passing
// rows alone; k of them come back whenever k pass.
TEST(FilterGraph, KComeBackWheneverKPassEvenWhenPassingRowsAreFarApart) {
  TempDir tmp;
  RowsOptions o = MakeRowsOptions(tmp.path(), 8);
  o.coll.adaptive_threshold = 100;
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  const size_t n = 3000;
  std::vector<uint64_t> ids(n);
  std::vector<float> vecs(n * 8);
  AttrColumn g = AttrColumn::Make("g", AttrType::kInt64);
  for (size_t i = 0; i < n; ++i) {
    ids[i] = i;
    std::vector<float> v = VectorFor(i, 0, 8);
    const bool far = i % 500 == 0;  // 6 rows far from all others
    for (size_t d = 0; d < 8; ++d) vecs[i * 8 + d] = v[d] + (far ? 50.0f : 0.0f);
    g.AppendInt(far ? 1 : 0);
  }
  engine::RowsIn in;
  in.n = n;
  in.ids = ids.data();
  in.vectors = vecs.data();
  in.columns = {g};
  ASSERT_TRUE(db->PutRows(in).ok());
  ASSERT_TRUE(db->Flush().ok());
  engine::RowFilterSpec spec;
  spec.expression = "g = 1";
  const std::vector<float> q(8, 0.0f);
  for (uint32_t k : {1u, 6u, 10u}) {
    std::vector<std::vector<engine::Hit>> out;
    ASSERT_TRUE(db->Search(q.data(), 1, &k, 0, 10, &out, &spec).ok());
    ASSERT_EQ(out[0].size(), std::min<size_t>(k, 6));
    for (const engine::Hit& h : out[0]) EXPECT_EQ(h.id % 500, 0u);
  }
}

// A 16-d collection in `tmp` whose segments get graphs (m 12,
// ef_construction 80) from 1,000 rows up.
std::unique_ptr<engine::DB> OpenGraphRows(const TempDir& tmp) {
  RowsOptions o = MakeRowsOptions(tmp.path(), 16);
  o.coll.adaptive_threshold = 1000;
  o.coll.hnsw_m = 12;
  o.coll.hnsw_ef_construction = 80;
  return OpenRows(o);
}

// Puts rows 0 .. n - 1 (16 floats each from `vecs`, attribute `column`) and
// flushes them into a segment with its graph.
void PutAndFlush(engine::DB& db, const std::vector<float>& vecs, const AttrColumn& column) {
  const size_t n = vecs.size() / 16;
  std::vector<uint64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = i;
  engine::RowsIn in;
  in.n = n;
  in.ids = ids.data();
  in.vectors = vecs.data();
  in.columns = {column};
  ASSERT_TRUE(db.PutRows(in).ok());
  ASSERT_TRUE(db.Flush().ok());
}

// Every plan of the executor on one graph segment (index::ChooseFilteredPlan
// picks by selectivity): results pass, are live (rows deleted in the newer
// memtable never come back), number min(k, passing), and agree with brute
// force at recall 0.9 or better.
TEST(FilterGraph, EverySelectivityReturnsKPassingLiveRowsWithHighRecall) {
  TempDir tmp;
  auto db = OpenGraphRows(tmp);
  ASSERT_NE(db, nullptr);
  const size_t n = 20000;
  std::vector<float> vecs(n * 16);
  AttrColumn bucket = AttrColumn::Make("bucket", AttrType::kInt64);
  for (size_t i = 0; i < n; ++i) {
    const std::vector<float> v = VectorFor(i, 1, 16);
    std::copy(v.begin(), v.end(), vecs.begin() + i * 16);
    bucket.AppendInt(static_cast<int64_t>((i * 7919) % 1000));
  }
  PutAndFlush(*db, vecs, bucket);
  if (HasFatalFailure()) return;
  std::set<uint64_t> deleted;
  for (uint64_t id = 0; id < n; id += 37) {
    ASSERT_TRUE(DelRow(db.get(), id).ok());
    deleted.insert(id);
  }
  for (int limit : {500, 100, 10, 1}) {
    engine::RowFilterSpec spec;
    const std::string expr = "bucket < " + std::to_string(limit);
    spec.expression = expr;
    SCOPED_TRACE(expr);
    double hits = 0, wanted = 0;
    for (uint32_t q = 0; q < 20; ++q) {
      const std::vector<float> query = VectorFor(100000 + q, 2, 16);
      std::map<uint64_t, std::vector<float>> live;
      for (size_t i = 0; i < n; ++i)
        if (static_cast<int64_t>((i * 7919) % 1000) < limit && !deleted.count(i))
          live[i] = std::vector<float>(vecs.begin() + i * 16, vecs.begin() + (i + 1) * 16);
      const std::vector<engine::Hit> truth = BruteForce(live, simd::Metric::kL2, query.data(), 16, 10);
      uint32_t k = 10;
      std::vector<std::vector<engine::Hit>> out;
      ASSERT_TRUE(db->Search(query.data(), 1, &k, 0, 64, &out, &spec).ok());
      ASSERT_EQ(out[0].size(), std::min<size_t>(10, live.size()));
      std::set<uint64_t> want;
      for (const engine::Hit& h : truth) want.insert(h.id);
      for (const engine::Hit& h : out[0]) {
        ASSERT_TRUE(live.count(h.id)) << h.id;
        hits += want.count(h.id);
      }
      wanted += static_cast<double>(truth.size());
    }
    EXPECT_GE(hits / wanted, 0.9);
  }
}

// Filters that pass no row near the query (whole clusters elsewhere): the
// executor sees that few rows within two hops of the query's nearest node
// pass (under a quarter of the filter's share) and scans the passing rows
// exactly, so the answer is the brute-force one, for a quarter and for most
// of the rows passing.
TEST(FilterGraph, FiltersThatExcludeTheQuerysNeighbourhoodAreAnsweredExactly) {
  TempDir tmp;
  auto db = OpenGraphRows(tmp);
  ASSERT_NE(db, nullptr);
  const size_t n = 20000, clusters = 40;
  std::mt19937_64 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> centers(clusters, std::vector<float>(16));
  for (auto& c : centers)
    for (float& x : c) x = 4.0f * normal(rng);
  std::vector<float> vecs(n * 16);
  std::vector<int64_t> cluster_of(n);
  AttrColumn cl = AttrColumn::Make("cluster", AttrType::kInt64);
  for (size_t i = 0; i < n; ++i) {
    cluster_of[i] = static_cast<int64_t>(i % clusters);
    for (size_t d = 0; d < 16; ++d) vecs[i * 16 + d] = centers[i % clusters][d] + 0.3f * normal(rng);
    cl.AppendInt(cluster_of[i]);
  }
  PutAndFlush(*db, vecs, cl);
  if (HasFatalFailure()) return;
  for (size_t passing_clusters : {10u, 30u}) {
    for (uint32_t q = 0; q < 10; ++q) {
      // The query sits in cluster qc; the filter passes clusters that are not qc.
      const size_t qc = q % clusters;
      std::vector<float> query(centers[qc]);
      for (float& x : query) x += 0.1f * normal(rng);
      std::set<int64_t> pass;
      for (size_t c = qc + 1; pass.size() < passing_clusters; ++c) pass.insert(static_cast<int64_t>(c % clusters));
      std::string expr = "cluster IN (";
      for (int64_t c : pass) expr += (expr.back() == '(' ? "" : ", ") + std::to_string(c);
      expr += ")";
      SCOPED_TRACE(expr);
      std::map<uint64_t, std::vector<float>> live;
      for (size_t i = 0; i < n; ++i)
        if (pass.count(cluster_of[i])) live[i] = std::vector<float>(vecs.begin() + i * 16, vecs.begin() + (i + 1) * 16);
      const std::vector<engine::Hit> truth = BruteForce(live, simd::Metric::kL2, query.data(), 16, 10);
      engine::RowFilterSpec spec;
      spec.expression = expr;
      uint32_t k = 10;
      std::vector<std::vector<engine::Hit>> out;
      ASSERT_TRUE(db->Search(query.data(), 1, &k, 0, 16, &out, &spec).ok());
      ASSERT_EQ(out[0].size(), truth.size());
      for (size_t j = 0; j < truth.size(); ++j) EXPECT_EQ(out[0][j].id, truth[j].id) << j;
    }
  }
}

// A search of few queries over a large graph segment defers its filter
// (engine/search.h: kDeferRowsPerQuery rows per query; the walks test the
// rows they meet, the scans evaluate it): one query at a time defers, all
// the queries in one call evaluate it over every row first. Both give
// min(k, live passing) passing live rows at recall 0.9, exactly the brute
// force's when the filter excludes the query's cluster, with rows deleted
// in the newer memtable, for half, a quarter, a cluster-correlated share
// and 2% of the rows passing.
TEST(FilterGraph, DeferredAndEvaluatedFiltersGiveTheSameAnswers) {
  constexpr uint32_t kDim = 32;
  constexpr size_t kN = 36000, kClusters = 40, kQueries = 8;
  static_assert(kN >= engine::kDeferRowsPerQuery && kN < engine::kDeferRowsPerQuery * kQueries);
  TempDir tmp;
  RowsOptions o = MakeRowsOptions(tmp.path(), kDim);
  o.coll.adaptive_threshold = 1000;
  o.coll.hnsw_m = 12;
  o.coll.hnsw_ef_construction = 60;
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  std::mt19937_64 rng(23);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> centers(kClusters, std::vector<float>(kDim));
  for (auto& c : centers)
    for (float& x : c) x = 3.0f * normal(rng);
  std::vector<float> vecs(kN * kDim);
  std::vector<uint64_t> ids(kN);
  AttrColumn bucket = AttrColumn::Make("bucket", AttrType::kInt64);
  AttrColumn cl = AttrColumn::Make("cluster", AttrType::kInt64);
  for (size_t i = 0; i < kN; ++i) {
    ids[i] = i;
    for (size_t d = 0; d < kDim; ++d) vecs[i * kDim + d] = centers[i % kClusters][d] + normal(rng);
    bucket.AppendInt(static_cast<int64_t>((i * 7919) % 1000));
    cl.AppendInt(static_cast<int64_t>(i % kClusters));
  }
  engine::RowsIn in;
  in.n = kN;
  in.ids = ids.data();
  in.vectors = vecs.data();
  in.columns = {bucket, cl};
  ASSERT_TRUE(db->PutRows(in).ok());
  ASSERT_TRUE(db->Flush().ok());
  std::set<uint64_t> deleted;
  for (uint64_t id = 0; id < kN; id += 37) {
    ASSERT_TRUE(DelRow(db.get(), id).ok());
    deleted.insert(id);
  }
  // Queries near cluster q's center; "near" passes the query's cluster and the
  // next 9, "far" 10 clusters without it.
  std::vector<float> queries(kQueries * kDim);
  for (size_t q = 0; q < kQueries; ++q)
    for (size_t d = 0; d < kDim; ++d) queries[q * kDim + d] = centers[q][d] + 0.5f * normal(rng);
  auto clusters_from = [](size_t first) {
    std::string list;
    for (size_t c = first; c < first + 10; ++c) list += (list.empty() ? "" : ", ") + std::to_string(c % kClusters);
    return "cluster IN (" + list + ")";
  };
  struct Case {
    std::string name;
    std::function<std::string(size_t q)> expr;
    std::function<bool(size_t i, size_t q)> passes;
    bool exact;
  };
  const std::vector<Case> cases = {
      {"half", [](size_t) { return "bucket < 500"; }, [](size_t i, size_t) { return (i * 7919) % 1000 < 500; }, false},
      {"quarter", [](size_t) { return "bucket >= 750"; }, [](size_t i, size_t) { return (i * 7919) % 1000 >= 750; }, false},
      {"2%", [](size_t) { return "bucket < 20"; }, [](size_t i, size_t) { return (i * 7919) % 1000 < 20; }, false},
      {"near", [&](size_t q) { return clusters_from(q); },
       [](size_t i, size_t q) { return (i % kClusters + kClusters - q) % kClusters < 10; }, false},
      {"far", [&](size_t q) { return clusters_from(q + 15); },
       [](size_t i, size_t q) { return (i % kClusters + kClusters - q - 15) % kClusters < 10; }, true},
  };
  constexpr uint32_t kK = 10;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    // The brute force of each query.
    std::vector<std::vector<engine::Hit>> truth(kQueries);
    for (size_t q = 0; q < kQueries; ++q) {
      std::map<uint64_t, std::vector<float>> live;
      for (size_t i = 0; i < kN; ++i)
        if (c.passes(i, q) && !deleted.count(i))
          live[i] = std::vector<float>(vecs.begin() + i * kDim, vecs.begin() + (i + 1) * kDim);
      truth[q] = BruteForce(live, simd::Metric::kL2, queries.data() + q * kDim, kDim, kK);
    }
    auto check = [&](size_t q, const std::vector<engine::Hit>& got, double* found, const char* how) {
      SCOPED_TRACE(std::string(how) + " query " + std::to_string(q));
      ASSERT_EQ(got.size(), truth[q].size());
      std::set<uint64_t> want;
      for (const engine::Hit& h : truth[q]) want.insert(h.id);
      for (size_t j = 0; j < got.size(); ++j) {
        ASSERT_TRUE(c.passes(got[j].id, q)) << got[j].id << " does not pass";
        ASSERT_FALSE(deleted.count(got[j].id)) << got[j].id << " is deleted";
        *found += static_cast<double>(want.count(got[j].id));
        if (c.exact) EXPECT_EQ(got[j].id, truth[q][j].id) << j;
      }
    };
    double deferred_found = 0, evaluated_found = 0, wanted = 0;
    for (size_t q = 0; q < kQueries; ++q) {
      const std::string expr = c.expr(q);
      engine::RowFilterSpec spec;
      spec.expression = expr;
      uint32_t k = kK;
      std::vector<std::vector<engine::Hit>> out;
      ASSERT_TRUE(db->Search(queries.data() + q * kDim, 1, &k, 0, 24, &out, &spec).ok()) << expr;
      check(q, out[0], &deferred_found, "one query");
      wanted += static_cast<double>(truth[q].size());
    }
    if (c.expr(0) == c.expr(1)) {  // the same filter for every query: one call, evaluated
      engine::RowFilterSpec spec;
      const std::string expr = c.expr(0);
      spec.expression = expr;
      std::vector<uint32_t> ks(kQueries, kK);
      std::vector<std::vector<engine::Hit>> out;
      ASSERT_TRUE(db->Search(queries.data(), kQueries, ks.data(), 0, 24, &out, &spec).ok()) << expr;
      for (size_t q = 0; q < kQueries; ++q) check(q, out[q], &evaluated_found, "all queries");
      EXPECT_GE(evaluated_found / wanted, 0.9);
    }
    EXPECT_GE(deferred_found / wanted, 0.9);
  }
}

}  // namespace
}  // namespace pomai::testing
