// memtable/row_table.h, attributes: every version carries its own row of
// every column (null where its write did not name it), the columns a filter
// reads agree with a model of every write, and a flush writes the newest
// versions' attributes.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "filter/column_source.h"
#include "memtable/row_table.h"
#include "util/attributes.h"

namespace pomai::memtable {
namespace {

// One value of any type, or null: what a row holds in a column.
struct Val {
  bool null = true;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<std::string> tags;
  bool operator==(const Val&) const = default;
};
Val Null() { return Val{}; }
Val Int(int64_t v) { return Val{.null = false, .i = v}; }
Val Flt(double v) { return Val{.null = false, .f = v}; }
Val Bool(bool v) { return Val{.null = false, .b = v}; }
Val Str(std::string v) { return Val{.null = false, .s = std::move(v)}; }
Val Tags(std::vector<std::string> v) { return Val{.null = false, .tags = std::move(v)}; }

std::ostream& operator<<(std::ostream& os, const Val& v) {
  if (v.null) return os << "null";
  os << "{i=" << v.i << " f=" << v.f << " b=" << v.b << " s='" << v.s << "' tags=[";
  for (const auto& t : v.tags) os << "'" << t << "' ";
  return os << "]}";
}

// Row `row` of a column as ColumnRef describes it, read independently of filter::AppendRow.
Val Read(const filter::ColumnRef& ref, size_t row) {
  if (ref.valid != nullptr && ref.valid[row] == 0) return Null();
  auto entry = [&](uint32_t code) {
    EXPECT_LT(code, ref.dict_size);
    return std::string(ref.dict_bytes + ref.dict_offsets[code], ref.dict_offsets[code + 1] - ref.dict_offsets[code]);
  };
  switch (ref.type) {
    case AttrType::kInt64: return Int(ref.ints[row]);
    case AttrType::kFloat64: return Flt(ref.floats[row]);
    case AttrType::kBool: return Bool(ref.bools[row] != 0);
    case AttrType::kString: return Str(entry(ref.codes[row]));
    case AttrType::kTags: {
      std::vector<std::string> tags;
      for (uint64_t j = ref.tag_offsets[row]; j < ref.tag_offsets[row + 1]; ++j) tags.push_back(entry(ref.codes[j]));
      return Tags(std::move(tags));
    }
  }
  return Null();
}
// Row `row` of a batch column.
Val Read(const AttrColumn& c, size_t row) {
  if (!c.has_value(row)) return Null();
  switch (c.type) {
    case AttrType::kInt64: return Int(c.ints[row]);
    case AttrType::kFloat64: return Flt(c.floats[row]);
    case AttrType::kBool: return Bool(c.bools[row] != 0);
    case AttrType::kString: return Str(std::string(c.str(row)));
    case AttrType::kTags: {
      std::vector<std::string> tags;
      for (size_t i = 0; i < c.tag_count(row); ++i) tags.emplace_back(c.tag(row, i));
      return Tags(std::move(tags));
    }
  }
  return Null();
}
// Appends `v` to a batch column.
void Append(AttrColumn* c, const Val& v) {
  if (v.null) return c->AppendNull();
  switch (c->type) {
    case AttrType::kInt64: return c->AppendInt(v.i);
    case AttrType::kFloat64: return c->AppendFloat(v.f);
    case AttrType::kBool: return c->AppendBool(v.b);
    case AttrType::kString: return c->AppendString(v.s);
    case AttrType::kTags: {
      std::vector<std::string_view> views(v.tags.begin(), v.tags.end());
      return c->AppendTags(views.data(), views.size());
    }
  }
}

// Column `name` of `m`, row `row`.
Val At(const RowTable& m, const std::string& name, size_t row) {
  filter::ColumnRef ref;
  bool present = false;
  EXPECT_TRUE(m.Column(name, &ref, &present).ok());
  if (!present) return Null();
  return Read(ref, row);
}

// A batch to put: ids, vectors of dim 2, and columns.
struct Batch {
  std::vector<uint64_t> ids;
  std::vector<float> vectors;
  std::vector<AttrColumn> columns;

  explicit Batch(std::vector<uint64_t> ids_) : ids(std::move(ids_)) {
    for (uint64_t id : ids) vectors.insert(vectors.end(), {static_cast<float>(id), 0.5f});
  }
  Batch& Column(const std::string& name, AttrType type, const std::vector<Val>& values) {
    AttrColumn c = AttrColumn::Make(name, type);
    for (const Val& v : values) Append(&c, v);
    columns.push_back(std::move(c));
    return *this;
  }
  Status PutInto(RowTable* m, uint64_t seq, const uint64_t* meta_offsets = nullptr, std::string_view blob = {}) const {
    EXPECT_TRUE(CheckAttrColumns(columns, ids.size()).ok());
    return m->PutBatch(seq, reinterpret_cast<const uint8_t*>(ids.data()), vectors.data(), ids.size(), meta_offsets,
                       blob, columns);
  }
};

TEST(RowTableAttributes, ABatchStoresItsColumnsAndNullsWhereAWriteNamesNone) {
  RowTable m(2);
  const float v[2] = {1, 2};
  m.Put(100, 1, v, "before");  // row 0: before any column existed
  ASSERT_TRUE(Batch({1, 2})
                  .Column("n", AttrType::kInt64, {Int(10), Int(-20)})
                  .Column("s", AttrType::kString, {Str("x"), Null()})
                  .PutInto(&m, 2)
                  .ok());
  ASSERT_TRUE(Batch({3}).Column("n", AttrType::kInt64, {Int(30)}).PutInto(&m, 3).ok());  // row 3: no "s"
  m.Put(4, 4, v, "");  // row 4: no columns
  ASSERT_EQ(m.rows(), 5u);
  EXPECT_EQ(m.columns(), (std::vector<std::pair<std::string, AttrType>>{{"n", AttrType::kInt64},
                                                                        {"s", AttrType::kString}}));
  const std::vector<Val> n = {Null(), Int(10), Int(-20), Int(30), Null()};
  const std::vector<Val> s = {Null(), Str("x"), Null(), Null(), Null()};
  for (size_t r = 0; r < m.rows(); ++r) {
    EXPECT_EQ(At(m, "n", r), n[r]) << r;
    EXPECT_EQ(At(m, "s", r), s[r]) << r;
  }
  filter::ColumnRef ref;
  bool present = true;
  ASSERT_TRUE(m.Column("missing", &ref, &present).ok());
  EXPECT_FALSE(present);
}

TEST(RowTableAttributes, AColumnWithoutNullsHasNoValidityBytes) {
  RowTable m(2);
  ASSERT_TRUE(Batch({1, 2}).Column("b", AttrType::kBool, {Bool(true), Bool(false)}).PutInto(&m, 1).ok());
  filter::ColumnRef ref;
  bool present = false;
  ASSERT_TRUE(m.Column("b", &ref, &present).ok());
  ASSERT_TRUE(present);
  EXPECT_EQ(ref.valid, nullptr);
  EXPECT_EQ(ref.type, AttrType::kBool);
  EXPECT_FALSE(ref.dict_sorted);
  EXPECT_EQ(ref.bools[0], 1);
  // A delete's tombstone row is null: from then on the column has validity bytes.
  m.Delete(1, 2);
  ASSERT_TRUE(m.Column("b", &ref, &present).ok());
  ASSERT_NE(ref.valid, nullptr);
  EXPECT_EQ(std::vector<uint8_t>(ref.valid, ref.valid + 3), (std::vector<uint8_t>{1, 1, 0}));
}

TEST(RowTableAttributes, StringsAndTagsShareOneDictionaryInOrderOfFirstWrite) {
  RowTable m(2);
  ASSERT_TRUE(Batch({1, 2, 3})
                  .Column("s", AttrType::kString, {Str("b"), Str("a"), Str("b")})
                  .Column("t", AttrType::kTags, {Tags({"x", "y", "x"}), Tags({}), Null()})
                  .PutInto(&m, 1)
                  .ok());
  ASSERT_TRUE(Batch({4}).Column("s", AttrType::kString, {Str("")}).PutInto(&m, 2).ok());
  filter::ColumnRef s, t;
  bool present = false;
  ASSERT_TRUE(m.Column("s", &s, &present).ok());
  ASSERT_EQ(s.dict_size, 3u);
  EXPECT_EQ(std::string(s.dict_bytes, s.dict_offsets[3]), "ba") << "entries b, a, \"\"";
  EXPECT_EQ(std::vector<uint32_t>(s.codes, s.codes + 4), (std::vector<uint32_t>{0, 1, 0, 2}));
  ASSERT_TRUE(m.Column("t", &t, &present).ok());
  EXPECT_EQ(t.dict_size, 2u);
  EXPECT_EQ(std::vector<uint64_t>(t.tag_offsets, t.tag_offsets + 5), (std::vector<uint64_t>{0, 3, 3, 3, 3}));
  EXPECT_EQ(std::vector<uint32_t>(t.codes, t.codes + 3), (std::vector<uint32_t>{0, 1, 0})) << "duplicates kept";
  EXPECT_EQ(At(m, "t", 1), Tags({})) << "an empty list is not null";
  EXPECT_EQ(At(m, "t", 2), Null());
}

TEST(RowTableAttributes, EachSnapshotSeesItsVersionsAttributes) {
  RowTable m(2);
  ASSERT_TRUE(Batch({7}).Column("s", AttrType::kString, {Str("one")}).PutInto(&m, 1).ok());
  ASSERT_TRUE(Batch({7}).Column("s", AttrType::kString, {Str("two")}).PutInto(&m, 2).ok());
  const float v[2] = {0, 0};
  m.Put(7, 3, v, "");  // a put writes a whole row: no attributes
  m.Delete(7, 4);
  ASSERT_TRUE(Batch({7}).Column("n", AttrType::kInt64, {Int(5)}).PutInto(&m, 5).ok());
  const struct {
    uint64_t seq;
    RowTable::State state;
    Val s, n;
  } want[] = {{1, RowTable::State::kLive, Str("one"), Null()}, {2, RowTable::State::kLive, Str("two"), Null()},
              {3, RowTable::State::kLive, Null(), Null()},      {4, RowTable::State::kDeleted, Null(), Null()},
              {5, RowTable::State::kLive, Null(), Int(5)}};
  for (const auto& w : want) {
    SCOPED_TRACE(w.seq);
    size_t row = 0;
    ASSERT_EQ(m.FindAt(7, w.seq, &row), w.state);
    EXPECT_EQ(At(m, "s", row), w.s);
    EXPECT_EQ(At(m, "n", row), w.n);
  }
}

TEST(RowTableAttributes, TheLastRowOfAnIdInABatchWins) {
  RowTable m(2);
  ASSERT_TRUE(Batch({5, 6, 5}).Column("n", AttrType::kInt64, {Int(1), Int(2), Int(3)}).PutInto(&m, 1).ok());
  size_t row = 0;
  ASSERT_EQ(m.FindAt(5, 1, &row), RowTable::State::kLive);
  EXPECT_EQ(row, 2u);
  EXPECT_EQ(At(m, "n", row), Int(3));
  EXPECT_FALSE(m.VisibleAt(0, 1));
  const auto sorted = m.SortedContents();
  EXPECT_EQ(sorted.ids, (std::vector<uint64_t>{5, 6}));
  ASSERT_EQ(sorted.columns.size(), 1u);
  EXPECT_EQ(sorted.columns[0].ints, (std::vector<int64_t>{3, 2}));
}

TEST(RowTableAttributes, ABatchCarriesMetadataPerRow) {
  RowTable m(2);
  const uint64_t offsets[] = {0, 3, 3, 5};
  ASSERT_TRUE(Batch({1, 2, 3}).PutInto(&m, 1, offsets, "abcde").ok());
  EXPECT_EQ(m.metadata(0), "abc");
  EXPECT_EQ(m.metadata(1), "");
  EXPECT_EQ(m.metadata(2), "de");
  EXPECT_TRUE(m.columns().empty());
  const auto sorted = m.SortedContents();
  EXPECT_EQ(sorted.meta_blob, "abcde");
  EXPECT_TRUE(sorted.columns.empty());
}

TEST(RowTableAttributes, ATypeConflictIsInvalidArgumentAndStoresNothing) {
  RowTable m(2);
  ASSERT_TRUE(Batch({1}).Column("n", AttrType::kInt64, {Int(1)}).PutInto(&m, 1).ok());
  Status s = Batch({2})
                 .Column("new", AttrType::kBool, {Bool(true)})
                 .Column("n", AttrType::kString, {Str("x")})
                 .PutInto(&m, 2);
  ASSERT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("'n' is int64; the batch gives it as string"), std::string::npos) << s.message();
  EXPECT_EQ(m.rows(), 1u);
  EXPECT_EQ(m.columns().size(), 1u) << "no column of the refused batch was created";
  size_t row;
  EXPECT_EQ(m.Find(2, &row), RowTable::State::kAbsent);
}

TEST(RowTableAttributes, SortedContentsCarriesTheNewestVersionsAttributesInIdOrder) {
  RowTable m(2);
  ASSERT_TRUE(Batch({30, 10, 20})
                  .Column("f", AttrType::kFloat64, {Flt(3.5), Flt(-INFINITY), Null()})
                  .Column("t", AttrType::kTags, {Tags({"a"}), Tags({"b", "c"}), Tags({})})
                  .PutInto(&m, 1)
                  .ok());
  ASSERT_TRUE(Batch({20}).Column("t", AttrType::kTags, {Tags({"z"})}).PutInto(&m, 2).ok());
  m.Delete(30, 3);
  const float v[2] = {1, 1};
  m.Put(40, 4, v, "");
  const auto sorted = m.SortedContents();
  EXPECT_EQ(sorted.ids, (std::vector<uint64_t>{10, 20, 40}));
  EXPECT_EQ(sorted.tombstones, (std::vector<uint64_t>{30}));
  ASSERT_EQ(sorted.columns.size(), 2u);
  const AttrColumn& f = sorted.columns[0];
  const AttrColumn& t = sorted.columns[1];
  EXPECT_EQ(f.name, "f");
  EXPECT_EQ(t.name, "t");
  ASSERT_TRUE(CheckAttrColumns(sorted.columns, 3).ok());
  EXPECT_EQ(Read(f, 0), Flt(-INFINITY));
  EXPECT_EQ(Read(f, 1), Null()) << "id 20's newest version (seq 2) does not name f";
  EXPECT_EQ(Read(f, 2), Null());
  EXPECT_EQ(Read(t, 0), Tags({"b", "c"}));
  EXPECT_EQ(Read(t, 1), Tags({"z"}));
  EXPECT_EQ(Read(t, 2), Null());
}

TEST(RowTableAttributes, BytesCountTheColumns) {
  RowTable a(2), b(2);
  std::vector<uint64_t> ids(1000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = i;
  std::vector<Val> strings;
  for (size_t i = 0; i < ids.size(); ++i) strings.push_back(Str("value number " + std::to_string(i)));
  ASSERT_TRUE(Batch(ids).PutInto(&a, 1).ok());
  ASSERT_TRUE(Batch(ids).Column("s", AttrType::kString, strings).PutInto(&b, 1).ok());
  // 1000 codes and about 16 KB of distinct strings at least.
  EXPECT_GE(b.bytes(), a.bytes() + 1000 * 4 + 16000);
  EXPECT_GE(a.bytes(), 1000u * (2 * 4 + 8));
}

// Random puts (with and without attributes), row batches and deletes against
// a model of every row the table appends; after each step every column reads
// as the model says, and at the end so do every snapshot and SortedContents.
TEST(RowTableAttributes, ColumnsMatchAModelOfEveryWrite) {
  const std::vector<std::pair<std::string, AttrType>> schema = {
      {"i", AttrType::kInt64}, {"f", AttrType::kFloat64}, {"b", AttrType::kBool},
      {"s", AttrType::kString}, {"t", AttrType::kTags}, {"é name", AttrType::kString}};
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937_64 rng(seed);
    auto random_value = [&](AttrType type) {
      if (rng() % 4 == 0) return Null();
      static const char* const kWords[] = {"", "a", "b", "日本", "longer string value", "\xF0\x9F\x98\x80"};
      switch (type) {
        case AttrType::kInt64: return Int(static_cast<int64_t>(rng() % 7) - 3);
        case AttrType::kFloat64: return Flt(rng() % 5 == 0 ? INFINITY : static_cast<double>(rng() % 9) / 4);
        case AttrType::kBool: return Bool(rng() % 2);
        case AttrType::kString: return Str(kWords[rng() % std::size(kWords)]);
        case AttrType::kTags: {
          std::vector<std::string> tags(rng() % 4);
          for (auto& t : tags) t = kWords[rng() % std::size(kWords)];
          return Tags(std::move(tags));
        }
      }
      return Null();
    };
    RowTable m(2);
    // The model: per table row, its id, seq, whether a tombstone, and its value per column.
    struct Row {
      uint64_t id, seq;
      bool tombstone;
      std::map<std::string, Val> values;
    };
    std::vector<Row> model;
    std::vector<std::string> created;  // columns in order of first write
    uint64_t seq = 0;
    for (int step = 0; step < 120; ++step) {
      ++seq;
      const int op = static_cast<int>(rng() % 10);
      const float v[2] = {static_cast<float>(step), 1};
      if (op == 0) {
        const uint64_t id = rng() % 30;
        m.Put(id, seq, v, "");
        model.push_back({id, seq, false, {}});
      } else if (op == 1) {
        const uint64_t id = rng() % 30;
        size_t row;
        if (m.Find(id, &row) != RowTable::State::kDeleted) model.push_back({id, seq, true, {}});
        m.Delete(id, seq);
      } else if (op == 2) {
        std::vector<uint64_t> ids(1 + rng() % 5);
        for (auto& id : ids) id = rng() % 30;
        std::vector<float> vectors(ids.size() * 2, 1.0f);
        m.PutRows(seq, reinterpret_cast<const uint8_t*>(ids.data()), vectors.data(), nullptr, ids.size());
        for (uint64_t id : ids) model.push_back({id, seq, false, {}});
      } else {
        std::vector<uint64_t> ids(1 + rng() % 8);
        for (auto& id : ids) id = rng() % 30;
        Batch batch(ids);
        std::vector<size_t> named;
        for (size_t c = 0; c < schema.size(); ++c)
          if (rng() % 2 == 0) named.push_back(c);
        std::vector<std::map<std::string, Val>> rows(ids.size());
        for (size_t c : named) {
          std::vector<Val> values;
          for (size_t r = 0; r < ids.size(); ++r) {
            values.push_back(random_value(schema[c].second));
            rows[r][schema[c].first] = values.back();
          }
          batch.Column(schema[c].first, schema[c].second, values);
          if (std::find(created.begin(), created.end(), schema[c].first) == created.end())
            created.push_back(schema[c].first);
        }
        ASSERT_TRUE(batch.PutInto(&m, seq).ok());
        for (size_t r = 0; r < ids.size(); ++r) model.push_back({ids[r], seq, false, rows[r]});
      }
      // Every column, every row, as the model says.
      ASSERT_EQ(m.rows(), model.size());
      const auto columns = m.columns();
      ASSERT_EQ(columns.size(), created.size());
      for (size_t c = 0; c < columns.size(); ++c) {
        ASSERT_EQ(columns[c].first, created[c]);
        filter::ColumnRef ref;
        bool present = false;
        ASSERT_TRUE(m.Column(columns[c].first, &ref, &present).ok());
        ASSERT_TRUE(present);
        ASSERT_EQ(ref.type, columns[c].second);
        for (size_t r = 0; r < model.size(); ++r) {
          const auto it = model[r].values.find(columns[c].first);
          const Val want = it == model[r].values.end() ? Null() : it->second;
          ASSERT_EQ(Read(ref, r), want) << "step " << step << " column " << columns[c].first << " row " << r;
        }
      }
    }
    // Every snapshot: an id's version at seq s is the model's last row of it with seq <= s.
    for (uint64_t s = 0; s <= seq; s += 7) {
      for (uint64_t id = 0; id < 30; ++id) {
        const Row* want = nullptr;
        for (const Row& r : model)
          if (r.id == id && r.seq <= s) want = &r;
        size_t row = 0;
        const auto state = m.FindAt(id, s, &row);
        if (want == nullptr) {
          ASSERT_EQ(state, RowTable::State::kAbsent);
          continue;
        }
        ASSERT_EQ(state, want->tombstone ? RowTable::State::kDeleted : RowTable::State::kLive);
        for (const auto& [name, type] : m.columns()) {
          const auto it = want->values.find(name);
          EXPECT_EQ(At(m, name, row), it == want->values.end() ? Null() : it->second) << id << " at " << s;
        }
      }
    }
    // SortedContents: the newest live version of each id, in id order, with its attributes.
    const auto sorted = m.SortedContents();
    ASSERT_TRUE(CheckAttrColumns(sorted.columns, sorted.ids.size()).ok());
    ASSERT_EQ(sorted.columns.size(), created.size());
    std::map<uint64_t, const Row*> newest;
    for (const Row& r : model) newest[r.id] = &r;
    size_t k = 0;
    for (const auto& [id, row] : newest) {
      if (row->tombstone) continue;
      ASSERT_LT(k, sorted.ids.size());
      ASSERT_EQ(sorted.ids[k], id);
      for (size_t c = 0; c < created.size(); ++c) {
        EXPECT_EQ(sorted.columns[c].name, created[c]);
        const auto it = row->values.find(created[c]);
        EXPECT_EQ(Read(sorted.columns[c], k), it == row->values.end() ? Null() : it->second) << id;
      }
      ++k;
    }
    EXPECT_EQ(k, sorted.ids.size());
  }
}

}  // namespace
}  // namespace pomai::memtable
