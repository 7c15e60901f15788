// Named indexes with typed attributes and `where` (docs/FILTERS.md, "Named
// indexes"): entries carry attributes through the WAL, the memtable and
// segments (flush, merge, reopen), and SearchIndex returns only entries the
// filter passes, min(k, passing live entries) of them, in every layer mix.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "db_test_util.h"
#include "engine/db.h"
#include "engine/search.h"

namespace pomai::engine {
namespace {

using testing::BeginRw;
using testing::RandomVector;

constexpr uint32_t kDim = 16;

// What the test writes for one entry; nullopt attributes are left out.
struct Attrs {
  std::optional<int64_t> n;
  std::optional<std::string> lang;
  std::optional<double> w;
  std::optional<bool> flag;
  std::vector<std::string> tags;  // empty: left out
};

std::vector<AttrColumn> ColumnsOf(const Attrs& a) {
  std::vector<AttrColumn> out;
  if (a.n) out.push_back(AttrColumn::Make("n", AttrType::kInt64)), out.back().AppendInt(*a.n);
  if (a.lang) out.push_back(AttrColumn::Make("lang", AttrType::kString)), out.back().AppendString(*a.lang);
  if (a.w) out.push_back(AttrColumn::Make("w", AttrType::kFloat64)), out.back().AppendFloat(*a.w);
  if (a.flag) out.push_back(AttrColumn::Make("flag", AttrType::kBool)), out.back().AppendBool(*a.flag);
  if (!a.tags.empty()) {
    std::vector<std::string_view> views(a.tags.begin(), a.tags.end());
    out.push_back(AttrColumn::Make("tags", AttrType::kTags));
    out.back().AppendTags(views.data(), views.size());
  }
  return out;
}

Attrs AttrsFor(int i, int version) {
  Attrs a;
  a.n = i + version * 10000;
  if (i % 7 != 0) a.lang = std::string(i % 3 == 0 ? "de" : i % 3 == 1 ? "fr" : "en");
  if (i % 2 == 0) a.w = i * 0.5;
  a.flag = (i + version) % 4 == 0;
  if (i % 5 != 0) a.tags = {"t" + std::to_string(i % 5), version ? "new" : "old"};
  return a;
}

struct Entry {
  std::vector<float> vec;
  Attrs attrs;
};
using Model = std::map<std::string, Entry>;

// A filter as text and as a predicate over the model (SQL nulls: a missing
// attribute fails every comparison).
struct Case {
  std::string where;
  std::function<bool(const Attrs&)> pass;
};

std::vector<Case> Cases() {
  return {
      {"lang = 'de'", [](const Attrs& a) { return a.lang == "de"; }},
      {"n < 150", [](const Attrs& a) { return a.n && *a.n < 150; }},
      {"n BETWEEN 100 AND 10499 AND lang IN ('fr', 'en')",
       [](const Attrs& a) { return a.n && *a.n >= 100 && *a.n <= 10499 && a.lang && *a.lang != "de"; }},
      {"tags CONTAINS 't2' OR flag", [](const Attrs& a) {
         return std::find(a.tags.begin(), a.tags.end(), "t2") != a.tags.end() || (a.flag && *a.flag);
       }},
      {"w IS NULL", [](const Attrs& a) { return !a.w; }},
      {"NOT lang = 'fr'", [](const Attrs& a) { return a.lang && *a.lang != "fr"; }},
      {"tags CONTAINS 'new'", [](const Attrs& a) {
         return std::find(a.tags.begin(), a.tags.end(), "new") != a.tags.end();
       }},
      {"n = -5", [](const Attrs&) { return false; }},
  };
}

float L2(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return static_cast<float>(s);
}

// Creates index "ix" of kDim floats with `metric`.
void CreateIx(DB& db, simd::Metric metric) {
  IndexConfig config;
  config.dim = kDim;
  config.metric = metric;
  ASSERT_TRUE(db.CreateIndex("ix", config).ok());
}

// Commits entry `key` of index "ix": vector `v`, no metadata, attributes `cols`.
Status UpsertCommit(DB& db, const std::string& key, const std::vector<float>& v, const std::vector<AttrColumn>& cols) {
  auto t = BeginRw(db);
  Status s = t->IndexUpsert("ix", key, v.data(), kDim, nullptr, &cols);
  return s.ok() ? t->Commit() : s;
}

void Upsert(DB& db, Model* model, std::mt19937_64& rng, int from, int to, int version) {
  auto t = BeginRw(db);
  for (int i = from; i < to; ++i) {
    const std::string key = "k" + std::to_string(i);
    Entry e{RandomVector(rng, kDim), AttrsFor(i, version)};
    const std::vector<AttrColumn> cols = ColumnsOf(e.attrs);
    const std::string_view meta = key;
    ASSERT_TRUE(t->IndexUpsert("ix", key, e.vec.data(), kDim, &meta, &cols).ok());
    (*model)[key] = std::move(e);
  }
  ASSERT_TRUE(t->Commit().ok());
}

// Every case and a few queries: every hit passes and is live, min(k, passing)
// come back, their metadata is theirs, and at least 90% of the true top k
// (exactly the top k when `exact`).
void Check(DB& db, const Model& model, std::mt19937_64& rng, bool exact, const std::string& stage) {
  for (const Case& c : Cases()) {
    for (int q = 0; q < 4; ++q) {
      const std::vector<float> query = RandomVector(rng, kDim);
      std::vector<std::pair<float, std::string>> truth;
      for (const auto& [key, e] : model)
        if (c.pass(e.attrs)) truth.emplace_back(L2(query, e.vec), key);
      std::sort(truth.begin(), truth.end());
      const size_t k = 10;
      std::vector<KeyHit> hits;
      Status s = db.SearchIndex("ix", query.data(), kDim, k, 64, c.where, &hits, nullptr);
      ASSERT_TRUE(s.ok()) << stage << " " << c.where << ": " << s.ToString();
      ASSERT_EQ(hits.size(), std::min(k, truth.size())) << stage << " " << c.where;
      std::set<std::string> want;
      for (size_t i = 0; i < hits.size(); ++i) want.insert(truth[i].second);
      size_t found = 0;
      for (const KeyHit& h : hits) {
        auto it = model.find(h.key);
        ASSERT_NE(it, model.end()) << stage << " " << c.where << ": dead key " << h.key;
        EXPECT_TRUE(c.pass(it->second.attrs)) << stage << " " << c.where << ": " << h.key << " fails the filter";
        EXPECT_TRUE(h.has_metadata && h.metadata == h.key);
        found += want.count(h.key);
      }
      if (exact) {
        EXPECT_EQ(found, hits.size()) << stage << " " << c.where;
      } else {
        EXPECT_GE(found * 10, hits.size() * 9) << stage << " " << c.where;
      }
    }
  }
}

class IndexWhere : public testing::BothModes {};

TEST_P(IndexWhere, ReturnsOnlyPassingLiveEntriesInEveryLayerMix) {
  auto db = Open();
  CreateIx(*db, simd::Metric::kL2);
  std::mt19937_64 rng(7);
  Model model;
  Upsert(*db, &model, rng, 0, 1500, 0);
  Check(*db, model, rng, true, "memtable");
  ASSERT_TRUE(db->PrepareIndex("ix", nullptr).ok());  // a segment with its graph
  Check(*db, model, rng, false, "segment");
  // Newer versions with other attributes, and deletes, over the segment.
  Upsert(*db, &model, rng, 0, 300, 1);
  {
    auto t = BeginRw(*db);
    for (int i = 300; i < 600; i += 2) {
      ASSERT_TRUE(t->IndexDelete("ix", "k" + std::to_string(i)).ok());
      model.erase("k" + std::to_string(i));
    }
    ASSERT_TRUE(t->Commit().ok());
  }
  Check(*db, model, rng, false, "memtable over segment");
  if (!disk()) return;  // an in-memory database flushes only to build graphs
  testing::FlushAndMerge(*db);
  Check(*db, model, rng, false, "merged");
  db.reset();
  db = Open();
  Check(*db, model, rng, false, "reopened");
}

// An index with a graph segment of kDeferRowsPerQuery entries or more: its
// searches (one query each) defer the filter (engine/search.h), bound to
// the segment's cached attribute columns; the answers are as above, over
// the segment alone and with newer versions and deletes over it.
TEST_P(IndexWhere, ALargeIndexDefersItsFilterWithTheSameAnswers) {
  auto db = Open();
  CreateIx(*db, simd::Metric::kL2);
  std::mt19937_64 rng(11);
  Model model;
  const int n = static_cast<int>(kDeferRowsPerQuery) + 1500;
  for (int from = 0; from < n; from += 4000) {
    Upsert(*db, &model, rng, from, std::min(n, from + 4000), 0);
    if (HasFatalFailure()) return;
  }
  ASSERT_TRUE(db->PrepareIndex("ix", nullptr).ok());  // a segment with its graph
  Check(*db, model, rng, false, "large segment");
  Upsert(*db, &model, rng, 0, 500, 1);
  {
    auto t = BeginRw(*db);
    for (int i = 500; i < 3000; i += 2) {
      ASSERT_TRUE(t->IndexDelete("ix", "k" + std::to_string(i)).ok());
      model.erase("k" + std::to_string(i));
    }
    ASSERT_TRUE(t->Commit().ok());
  }
  Check(*db, model, rng, false, "memtable over the large segment");
}

TEST_P(IndexWhere, AttributesSurviveTheWalAlone) {
  if (!disk()) GTEST_SKIP() << "disk only";
  std::mt19937_64 rng(3);
  Model model;
  {
    auto db = Open();
    CreateIx(*db, simd::Metric::kL2);
    Upsert(*db, &model, rng, 0, 200, 0);
  }
  auto db = Open();
  Check(*db, model, rng, true, "recovered");
}

TEST_P(IndexWhere, BadFiltersAndAttributesAreInvalidArgumentAndChangeNothing) {
  auto db = Open();
  CreateIx(*db, simd::Metric::kCosine);
  std::mt19937_64 rng(5);
  const std::vector<float> v = RandomVector(rng, kDim);
  auto put = [&](const std::string& key, const std::vector<AttrColumn>& cols) { return UpsertCommit(*db, key, v, cols); };
  std::vector<AttrColumn> a(1, AttrColumn::Make("x", AttrType::kInt64));
  a[0].AppendInt(1);
  ASSERT_TRUE(put("a", a).ok());
  std::vector<AttrColumn> b(1, AttrColumn::Make("x", AttrType::kString));
  b[0].AppendString("one");
  b.push_back(AttrColumn::Make("y", AttrType::kInt64));
  b[1].AppendInt(2);
  Status s = put("b", b);  // x is int64 since a's write: refused at commit, nothing of b stored
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("attribute 'x' of index entry 'b' is string, but the index's entries hold it as int64"),
            std::string::npos)
      << s.ToString();
  b[0] = AttrColumn::Make("x", AttrType::kInt64);
  b[0].AppendInt(5);
  ASSERT_TRUE(put("b", b).ok());

  std::vector<KeyHit> hits;
  auto search = [&](const std::string& where) { return db->SearchIndex("ix", v.data(), kDim, 5, 0, where, &hits, nullptr); };
  ASSERT_TRUE(search("x = 5").ok());
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].key, "b");
  ASSERT_TRUE(search("y = 2").ok());
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].key, "b");
  ASSERT_TRUE(search("").ok());
  EXPECT_EQ(hits.size(), 2u);
  s = search("nope = 1");
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("nope"), std::string::npos) << s.ToString();
  s = search("id = 3");
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("byte keys"), std::string::npos) << s.ToString();
  s = search("y = ");
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("filter: at"), std::string::npos) << s.ToString();

  std::vector<AttrColumn> bad(1, AttrColumn::Make("id", AttrType::kInt64));
  bad[0].AppendInt(1);
  s = put("c", bad);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("id"), std::string::npos) << s.ToString();
  std::vector<AttrColumn> nan(1, AttrColumn::Make("w", AttrType::kFloat64));
  nan[0].AppendFloat(std::nan(""));
  EXPECT_TRUE(put("c", nan).IsInvalidArgument());
  std::vector<AttrColumn> two_rows(1, AttrColumn::Make("w", AttrType::kInt64));
  two_rows[0].AppendInt(1);
  two_rows[0].AppendInt(2);
  EXPECT_TRUE(put("c", two_rows).IsInvalidArgument());
  ASSERT_TRUE(search("").ok());
  EXPECT_EQ(hits.size(), 2u);  // nothing of "c" was stored

  // A null attribute is left out: the entry is null there, not a value.
  std::vector<AttrColumn> with_null(1, AttrColumn::Make("y", AttrType::kInt64));
  with_null[0].AppendNull();
  ASSERT_TRUE(put("d", with_null).ok());
  ASSERT_TRUE(search("y IS NULL").ok());
  ASSERT_EQ(hits.size(), 2u);
  std::set<std::string> keys{hits[0].key, hits[1].key};
  EXPECT_EQ(keys, (std::set<std::string>{"a", "d"}));
}

TEST_P(IndexWhere, AnAttributesTypeIsFixedByItsFirstWriteAcrossFlushesAndReopens) {
  auto db = Open();
  CreateIx(*db, simd::Metric::kCosine);
  std::mt19937_64 rng(9);
  const std::vector<float> v = RandomVector(rng, kDim);
  auto put = [&](const std::string& key, AttrType type) {
    std::vector<AttrColumn> cols(1, AttrColumn::Make("x", type));
    if (type == AttrType::kInt64) cols[0].AppendInt(1);
    if (type == AttrType::kString) cols[0].AppendString("one");
    return UpsertCommit(*db, key, v, cols);
  };
  ASSERT_TRUE(put("a", AttrType::kInt64).ok());
  std::vector<KeyHit> hits;
  ASSERT_TRUE(db->SearchIndex("ix", v.data(), kDim, 1, 0, "x = 1", &hits, nullptr).ok());  // a's version in a segment
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_TRUE(put("a", AttrType::kString).IsInvalidArgument());  // a rewrite does not change the type
  {
    auto t = BeginRw(*db);
    ASSERT_TRUE(t->IndexDelete("ix", "a").ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  EXPECT_TRUE(put("b", AttrType::kString).IsInvalidArgument());  // nor does a delete
  ASSERT_TRUE(put("b", AttrType::kInt64).ok());
  if (disk()) {
    db.reset();
    db = Open();
    EXPECT_TRUE(put("c", AttrType::kString).IsInvalidArgument());  // the types are found again from the files
  }
  ASSERT_TRUE(db->SearchIndex("ix", v.data(), kDim, 5, 0, "x = 1", &hits, nullptr).ok());
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].key, "b");
  {  // Within one commit: a new attribute's first type holds for the commit's later entries.
    std::vector<AttrColumn> y_int(1, AttrColumn::Make("y", AttrType::kInt64)), y_str(1, AttrColumn::Make("y", AttrType::kString));
    y_int[0].AppendInt(3);
    y_str[0].AppendString("three");
    auto t = BeginRw(*db);
    ASSERT_TRUE(t->IndexUpsert("ix", "p", v.data(), kDim, nullptr, &y_int).ok());
    ASSERT_TRUE(t->IndexUpsert("ix", "q", v.data(), kDim, nullptr, &y_str).ok());
    Status s = t->Commit();
    EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
    EXPECT_TRUE(db->SearchIndex("ix", v.data(), kDim, 5, 0, "y = 3", &hits, nullptr).IsInvalidArgument());  // no y yet
  }
  // Another index has its own types.
  IndexConfig other;
  other.dim = kDim;
  ASSERT_TRUE(db->CreateIndex("other", other).ok());
  std::vector<AttrColumn> cols(1, AttrColumn::Make("x", AttrType::kString));
  cols[0].AppendString("s");
  auto t = BeginRw(*db);
  ASSERT_TRUE(t->IndexUpsert("other", "k", v.data(), kDim, nullptr, &cols).ok());
  ASSERT_TRUE(t->Commit().ok());
}

INSTANTIATE_TEST_SUITE_P(Modes, IndexWhere, ::testing::Bool(), testing::ModeName);

}  // namespace
}  // namespace pomai::engine
