// filter::Filter (docs/FILTERS.md): the language on a fixed table, every
// error with its position, the limits, and random expressions over random
// layers against a row-by-row three-valued reference interpreter.
#include "filter/filter.h"

#include <gtest/gtest.h>

#include <set>

#include <optional>

#include <pthread.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "filter/table_source.h"

namespace pomai::filter {
namespace {

using Rows = std::vector<uint64_t>;

Rows SetRows(const Bitmap& b) {
  Rows rows;
  b.ForEach([&](size_t r) { rows.push_back(r); });
  return rows;
}

// ---- The fixed table ----

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();

const Schema& FixedSchema() {
  static const Schema schema = {{"year", AttrType::kInt64}, {"score", AttrType::kFloat64}, {"flag", AttrType::kBool},
                                {"genre", AttrType::kString}, {"tags", AttrType::kTags},   {"any", AttrType::kInt64},
                                {"a \"b\"", AttrType::kString}};
  return schema;
}

// 8 rows, ids 100..107; row 3 null everywhere but "any".
//   year:  1999, 2000, 2005, -, 2010, 2, -5, INT64_MAX
//   score: 0.5, 2.5, -, -1, inf, 2, -inf, 1e300
//   flag:  T, F, T, -, F, T, F, T
//   genre: rock, jazz, pop, -, Rock, é, jazz, it's
//   tags:  [a b], [], [b], -, [a c a], [é], [c], [it's]
//   any:   0, 1, -, 3, 4, 5, 6, 7
//   a "b": (absent from the layer)
class FixedTable {
 public:
  explicit FixedTable(TableSource::Dict dict) : src_({100, 101, 102, 103, 104, 105, 106, 107}) {
    AttrColumn year = AttrColumn::Make("year", AttrType::kInt64);
    for (int64_t v : {int64_t{1999}, int64_t{2000}, int64_t{2005}}) year.AppendInt(v);
    year.AppendNull();
    for (int64_t v : {int64_t{2010}, int64_t{2}, int64_t{-5}, kI64Max}) year.AppendInt(v);
    AttrColumn score = AttrColumn::Make("score", AttrType::kFloat64);
    score.AppendFloat(0.5);
    score.AppendFloat(2.5);
    score.AppendNull();
    for (double v : {-1.0, kInf, 2.0, -kInf, 1e300}) score.AppendFloat(v);
    AttrColumn flag = AttrColumn::Make("flag", AttrType::kBool);
    for (int v : {1, 0, 1, -1, 0, 1, 0, 1}) v < 0 ? flag.AppendNull() : flag.AppendBool(v == 1);
    AttrColumn genre = AttrColumn::Make("genre", AttrType::kString);
    for (const char* g : {"rock", "jazz", "pop", "", "Rock", "é", "jazz", "it's"})
      *g == '\0' ? genre.AppendNull() : genre.AppendString(g);
    AttrColumn tags = AttrColumn::Make("tags", AttrType::kTags);
    const std::vector<std::vector<std::string_view>> tag_rows = {{"a", "b"}, {}, {"b"}, {}, {"a", "c", "a"}, {"é"}, {"c"}, {"it's"}};
    for (size_t r = 0; r < tag_rows.size(); ++r)
      r == 3 ? tags.AppendNull() : tags.AppendTags(tag_rows[r].data(), tag_rows[r].size());
    AttrColumn any = AttrColumn::Make("any", AttrType::kInt64);
    for (int v : {0, 1, -1, 3, 4, 5, 6, 7}) v < 0 ? any.AppendNull() : any.AppendInt(v);
    for (const AttrColumn* c : {&year, &score, &flag, &genre, &tags, &any}) src_.Add(*c, dict, 7, {"unused", "zz"});
  }
  const TableSource& src() const { return src_; }

 private:
  TableSource src_;
};

// RowTest over the same source answers every row as Evaluate's bitmap, and
// its EvaluateAll is that bitmap.
void ExpectRowTestAgrees(const Filter& f, const ColumnSource& src, const Bitmap& b, std::string_view expr) {
  auto t = RowTest::Bind(f, src);
  ASSERT_TRUE(t.ok()) << expr << ": " << t.status().ToString();
  ASSERT_EQ((*t)->rows(), src.rows());
  for (size_t r = 0; r < src.rows(); ++r) ASSERT_EQ((*t)->Passes(r), b.Get(r)) << expr << " row " << r;
  Bitmap all;
  (*t)->EvaluateAll(&all);
  ASSERT_EQ(SetRows(all), SetRows(b)) << expr;
}

Rows Passing(std::string_view expr, const ColumnSource& src, const uint64_t* ids = nullptr, size_t n = 0) {
  auto f = Filter::Compile(expr, FixedSchema(), ids, n);
  EXPECT_TRUE(f.ok()) << expr << ": " << f.status().ToString();
  if (!f.ok()) return {999};
  Bitmap b;
  EXPECT_TRUE(f->Evaluate(src, &b).ok());
  EXPECT_EQ(b.size(), src.rows());
  ExpectRowTestAgrees(*f, src, b, expr);
  return SetRows(b);
}

struct Case {
  const char* expr;
  Rows rows;
};

const Case kCases[] = {
    {"year = 2000", {1}},
    {"year == 2000", {1}},
    {"year != 2000", {0, 2, 4, 5, 6, 7}},
    {"year <> 2000", {0, 2, 4, 5, 6, 7}},
    {"NOT year = 2000", {0, 2, 4, 5, 6, 7}},
    {"year < 2.5", {5, 6}},
    {"year <= 2", {5, 6}},
    {"year > 2005", {4, 7}},
    {"year >= 2005", {2, 4, 7}},
    {"year = 2.5", {}},
    {"year != 2.5", {0, 1, 2, 4, 5, 6, 7}},
    {"year < 1e30", {0, 1, 2, 4, 5, 6, 7}},
    {"year > -1e30", {0, 1, 2, 4, 5, 6, 7}},
    {"year >= 9223372036854775807", {7}},
    {"year > 9223372036854775807", {}},
    {"year > 9223372036854775806.5", {7}},
    {"year = 9223372036854775808", {}},
    {"year < -9223372036854775809", {}},
    {"year = 2e3", {1}},
    {"year > 1e-400", {0, 1, 2, 4, 5, 7}},
    {"score > -1e-400", {0, 1, 4, 5, 7}},
    {"score < 4.9406564584124654e-324", {3, 6}},
    {"year = 20000e-1", {1}},
    {"year < -4.5", {6}},
    {"year BETWEEN 2000 AND 2010", {1, 2, 4}},
    {"year BETWEEN 1999.5 AND 2005.5", {1, 2}},
    {"year NOT BETWEEN 2000 AND 2010", {0, 5, 6, 7}},
    {"year BETWEEN 2010 AND 2000", {}},
    {"year IN (1999, 2005, 2.5, 1e30)", {0, 2}},
    {"year NOT IN (1999, 2005)", {1, 4, 5, 6, 7}},
    {"year IS NULL", {3}},
    {"year IS NOT NULL", {0, 1, 2, 4, 5, 6, 7}},
    {"NOT year IS NULL", {0, 1, 2, 4, 5, 6, 7}},
    {"score = 2.5", {1}},
    {"score = 2", {5}},
    {"score > 1e299", {4, 7}},
    {"score < 0", {3, 6}},
    {"score <= -1e308", {6}},
    {"score > -.5", {0, 1, 4, 5, 7}},
    {"score IN (0.5, 2)", {0, 5}},
    {"score IS NULL", {2}},
    {"flag", {0, 2, 5, 7}},
    {"NOT flag", {1, 4, 6}},
    {"flag = FALSE", {1, 4, 6}},
    {"flag != true", {1, 4, 6}},
    {"flag IN (TRUE, FALSE)", {0, 1, 2, 4, 5, 6, 7}},
    {"flag NOT IN (TRUE)", {1, 4, 6}},
    {"flag IS NULL", {3}},
    {"genre = 'jazz'", {1, 6}},
    {"genre < 'a'", {4}},
    {"genre > 'z'", {5}},
    {"genre >= 'rock'", {0, 5}},
    {"genre BETWEEN 'i' AND 'k'", {1, 6, 7}},
    {"genre IN ('pop', 'rock', 'nope')", {0, 2}},
    {"genre = 'it''s'", {7}},
    {"genre != 'jazz'", {0, 2, 4, 5, 7}},
    {"genre = 'unused'", {}},
    {"tags CONTAINS 'a'", {0, 4}},
    {"tags CONTAINS ANY ('c', 'é')", {4, 5, 6}},
    {"tags CONTAINS ALL ('a', 'c')", {4}},
    {"tags CONTAINS ALL ('a', 'a')", {0, 4}},
    {"tags CONTAINS ALL ('a', 'zz')", {}},
    {"tags CONTAINS 'it''s'", {7}},
    {"NOT tags CONTAINS 'a'", {1, 2, 5, 6, 7}},
    {"tags IS NULL", {3}},
    {"id = 103", {3}},
    {"id IN (100, 107, 5)", {0, 7}},
    {"id BETWEEN 101 AND 102", {1, 2}},
    {"id > 105", {6, 7}},
    {"id < 0", {}},
    {"id >= 18446744073709551615", {}},
    {"NOT id = 103", {0, 1, 2, 4, 5, 6, 7}},
    {"\"any\" = 1", {1}},
    {"\"any\" IS NULL", {2}},
    {"\"a \"\"b\"\"\" IS NULL", {0, 1, 2, 3, 4, 5, 6, 7}},
    {"\"a \"\"b\"\"\" = 'x'", {}},
    {"NOT \"a \"\"b\"\"\" = 'x'", {}},
    {"year > 2000 AND flag", {2, 7}},
    {"year > 2000 OR genre = 'jazz'", {1, 2, 4, 6, 7}},
    {"NOT (year > 2000 OR flag)", {1, 6}},
    {"NOT (year = 1 AND flag)", {0, 1, 2, 4, 5, 6, 7}},
    {"NOT NOT (year = 2000)", {1}},
    {"year IS NULL OR score IS NULL", {2, 3}},
    {"(year = 2000 OR year = 2005) AND NOT (flag OR genre = 'x')", {1}},
    {"year between 2000 aNd 2010", {1, 2, 4}},
    {"tags contains any ('a')", {0, 4}},
    {"Id In (100)", {0}},
    {"flag = True Or year Is Null", {0, 2, 3, 5, 7}},
    {"(((year = 2000)))", {1}},
    {"\tyear\r\n=\n2000 ", {1}},
};

TEST(Filter, ValidExpressionsPassTheirRows) {
  for (TableSource::Dict dict : {TableSource::Dict::kSorted, TableSource::Dict::kShuffled}) {
    FixedTable t(dict);
    for (const Case& c : kCases) EXPECT_EQ(Passing(c.expr, t.src()), c.rows) << c.expr;
  }
}

TEST(Filter, EmptyExpressionPassesEveryRow) {
  FixedTable t(TableSource::Dict::kSorted);
  for (const char* e : {"", "   ", "\n\t"}) {
    auto f = Filter::Compile(e, FixedSchema());
    ASSERT_TRUE(f.ok());
    EXPECT_TRUE(f->passes_all());
    EXPECT_EQ(Passing(e, t.src()), (Rows{0, 1, 2, 3, 4, 5, 6, 7}));
  }
  EXPECT_FALSE(Filter::Compile("flag", FixedSchema())->passes_all());
  EXPECT_TRUE(Filter().passes_all());
}

TEST(Filter, AllowListIsAndedWithTheExpression) {
  FixedTable t(TableSource::Dict::kSorted);
  const uint64_t ids[] = {107, 102, 102, 999, 100};
  EXPECT_EQ(Passing("flag", t.src(), ids, 4), (Rows{2, 7}));
  EXPECT_EQ(Passing("", t.src(), ids, 5), (Rows{0, 2, 7}));
  EXPECT_EQ(Passing("year > 2000 OR flag", t.src(), ids, 5), (Rows{0, 2, 7}));
  EXPECT_EQ(Passing("", t.src(), ids, 0), (Rows{}));  // an empty allow-list passes nothing
  EXPECT_FALSE(Filter::Compile("", FixedSchema(), ids, 0)->passes_all());
  // A large allow-list (the hashed path), with the largest id in it.
  std::vector<uint64_t> many;
  for (uint64_t i = 0; i < 1000; ++i) many.push_back(i * 7 + 101);
  many.push_back(~uint64_t{0});
  EXPECT_EQ(Passing("", t.src(), many.data(), many.size()), (Rows{1}));
}

TEST(Filter, ReadsOnlyTheColumnsItNames) {
  FixedTable t(TableSource::Dict::kSorted);
  auto f = Filter::Compile("genre = 'x' OR (year > 1 AND genre < 'y') OR id = 3", FixedSchema());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->columns(), (std::vector<std::string>{"genre", "year"}));
  Bitmap b;
  ASSERT_TRUE(f->Evaluate(t.src(), &b).ok());
  EXPECT_EQ(t.src().read(), (std::vector<std::string>{"genre", "year"}));
}

TEST(Filter, AColumnErrorIsReturnedAsItIs) {
  TableSource src({1, 2});
  src.FailColumn("genre");
  auto f = Filter::Compile("genre = 'x'", FixedSchema());
  Bitmap b;
  const Status s = f->Evaluate(src, &b);
  EXPECT_TRUE(s.IsCorruption());
  EXPECT_EQ(s.message(), "seg-000001.seg at offset 4096: attribute section CRC mismatch");
  auto t = RowTest::Bind(*f, src);
  EXPECT_TRUE(t.status().IsCorruption());
  EXPECT_EQ(t.status().message(), s.message());
}

TEST(Filter, ALayerColumnOfAnotherTypeIsInternal) {
  TableSource src({1});
  AttrColumn c = AttrColumn::Make("year", AttrType::kString);
  c.AppendString("x");
  src.Add(c);
  Bitmap b;
  Result<Filter> f = Filter::Compile("year = 1", FixedSchema());
  const Status s = f->Evaluate(src, &b);
  EXPECT_EQ(s.code(), Code::kInternal);
  EXPECT_EQ(s.message(), "filter: the layer's column 'year' is string, the collection's is int64");
  auto t = RowTest::Bind(*f, src);
  EXPECT_EQ(t.status().code(), Code::kInternal);
  EXPECT_EQ(t.status().message(), s.message());
}

TEST(Filter, OneFilterEvaluatesOnManyThreadsAtOnce) {
  FixedTable sorted(TableSource::Dict::kSorted), shuffled(TableSource::Dict::kShuffled);
  const std::vector<uint64_t> allow = {100, 102, 104, 105, 106};
  auto f = Filter::Compile("NOT genre IN ('pop', 'x') AND (tags CONTAINS ANY ('a', 'c') OR year < 3)", FixedSchema(),
                           allow.data(), allow.size());
  ASSERT_TRUE(f.ok());
  const Filter copy = *f;
  std::vector<std::thread> threads;
  std::vector<Rows> got(8);
  for (size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 200; ++k) {
        Bitmap b;
        EXPECT_TRUE(copy.Evaluate(i % 2 ? sorted.src() : shuffled.src(), &b).ok());
        got[i] = SetRows(b);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const Rows& rows : got) EXPECT_EQ(rows, (Rows{0, 4, 5, 6}));
  // One RowTest, asked from many threads at once.
  auto test = RowTest::Bind(copy, shuffled.src());
  ASSERT_TRUE(test.ok());
  const RowTest& shared = **test;
  threads.clear();
  for (size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] {
      Rows rows;
      for (int k = 0; k < 200; ++k) {
        rows.clear();
        for (uint64_t r = 0; r < shared.rows(); ++r)
          if (shared.Passes(r)) rows.push_back(r);
      }
      got[i] = rows;
    });
  }
  for (std::thread& t : threads) t.join();
  for (const Rows& rows : got) EXPECT_EQ(rows, (Rows{0, 4, 5, 6}));
}

TEST(Filter, ToStringShowsNotPushedDown) {
  auto f = Filter::Compile("NOT (year > 2000 OR genre = 'it''s') AND flag", FixedSchema());
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->ToString(), "(NOT \"year\" in int [2001, 9223372036854775807] AND NOT \"genre\" = 'it''s' AND \"flag\" IN (TRUE))");
  EXPECT_EQ(Filter::Compile("year IS NULL OR NOT score IS NULL", FixedSchema())->ToString(),
            "(\"year\" IS NULL OR \"score\" IS NOT NULL)");
}

// ---- Errors ----

struct ErrorCase {
  std::string expr;
  std::string message;
};

const std::vector<ErrorCase>& ErrorCases() {
  static const std::vector<ErrorCase> cases = {
      {"year = )", "filter: at 7: expected a literal after '=', found ')'"},
      {"lang = 1", "filter: at 0: no column 'lang' (columns: a \"b\", any, flag, genre, score, tags, year)"},
      {"Year = 1", "filter: at 0: no column 'Year' (columns: a \"b\", any, flag, genre, score, tags, year)"},
      {"\"id\" = 1", "filter: at 0: no column 'id' (columns: a \"b\", any, flag, genre, score, tags, year)"},
      {"year = 'x'", "filter: at 7: column 'year' is int64; 'x' is a string"},
      {"genre = 5", "filter: at 8: column 'genre' is string; '5' is a number"},
      {"flag = 1", "filter: at 7: column 'flag' is bool; '1' is a number"},
      {"\"any\" = TRUE", "filter: at 8: column 'any' is int64; 'TRUE' is a bool"},
      {"tags CONTAINS 1", "filter: at 14: column 'tags' is tags; '1' is a number"},
      {"year IN (1, 'a')", "filter: at 12: column 'year' is int64; 'a' is a string"},
      {"flag < true", "filter: at 5: column 'flag' is bool; '<' does not apply to it"},
      {"flag BETWEEN true AND false", "filter: at 5: column 'flag' is bool; 'BETWEEN' does not apply to it"},
      {"tags = 'a'", "filter: at 5: column 'tags' is tags; '=' does not apply to it"},
      {"tags IN ('a')", "filter: at 5: column 'tags' is tags; 'IN' does not apply to it"},
      {"year CONTAINS 1", "filter: at 5: column 'year' is int64; 'CONTAINS' does not apply to it"},
      {"year", "filter: at 0: column 'year' is int64, not bool: it needs a comparison, IN, BETWEEN, IS or CONTAINS "
               "after it (found the end of the expression)"},
      {"id", "filter: at 0: 'id', not bool: it needs a comparison, IN, BETWEEN, IS or CONTAINS after it (found the "
             "end of the expression)"},
      {"id IS NULL", "filter: at 3: 'id' does not take 'IS' (it takes =, !=, <, <=, >, >=, IN, BETWEEN)"},
      {"id CONTAINS 1", "filter: at 3: 'id' does not take 'CONTAINS' (it takes =, !=, <, <=, >, >=, IN, BETWEEN)"},
      {"id = -1", "filter: at 5: 'id' takes integers 0 .. 18446744073709551615; '-1' is not one"},
      {"id = 18446744073709551616", "filter: at 5: 'id' takes integers 0 .. 18446744073709551615; "
                                    "'18446744073709551616' is not one"},
      {"id IN (1, 1.5)", "filter: at 10: 'id' takes integers 0 .. 18446744073709551615; '1.5' is not one"},
      {"id = 'x'", "filter: at 5: 'id' takes integers 0 .. 18446744073709551615; 'x' is a string"},
      {"year = 1e400", "filter: at 7: the number '1e400' is out of range (beyond a double)"},
      {"score > -1e309", "filter: at 8: the number '-1e309' is out of range (beyond a double)"},
      {"year = 1e99999999999999999999", "filter: at 7: the number '1e99999999999999999999' is out of range (beyond a double)"},
      {"year = nan", "filter: at 7: expected a literal after '=', found 'nan'"},
      {"score < inf", "filter: at 8: expected a literal after '<', found 'inf'"},
      {"genre = 'abc", "filter: at 8: unterminated string"},
      {"\"year = 1", "filter: at 0: unterminated quoted name"},
      {"year = 1 AND", "filter: at 12: expected a column name, ID, NOT or '(', found the end of the expression"},
      {"AND year = 1", "filter: at 0: expected a column name, ID, NOT or '(', found 'AND'"},
      {"(year = 1", "filter: at 9: expected AND, OR or ')', found the end of the expression"},
      {"year = 1)", "filter: at 8: unmatched ')'"},
      {"()", "filter: at 1: expected a column name, ID, NOT or '(', found ')'"},
      {"year IN ()", "filter: at 9: expected a literal in the IN list, found ')'"},
      {"year IN 1", "filter: at 8: expected '(' after IN, found '1'"},
      {"tags CONTAINS ANY ()", "filter: at 19: expected a literal in the CONTAINS ANY list, found ')'"},
      {"tags CONTAINS ALL ('a' 'b')", "filter: at 23: expected ',' or ')' in the CONTAINS ALL list, found ''b''"},
      {"year IN (1 2)", "filter: at 11: expected ',' or ')' in the IN list, found '2'"},
      {"year BETWEEN 1 OR 2", "filter: at 15: expected AND after BETWEEN's first literal, found 'OR'"},
      {"year IS 1", "filter: at 8: expected NULL after IS, found '1'"},
      {"year IS NOT 1", "filter: at 12: expected NULL after IS NOT, found '1'"},
      {"year NOT 1", "filter: at 9: expected IN or BETWEEN after NOT, found '1'"},
      {"year = 1 year", "filter: at 9: expected AND, OR or the end, found 'year'"},
      {"year ! 1", "filter: at 5: unexpected '!' (not equal is '!=' or '<>')"},
      {"year = 1.", "filter: at 9: expected a digit after '.' in the number '1.'"},
      {"year = 1e", "filter: at 9: expected a digit in the exponent of the number '1e'"},
      {"year = 1e+", "filter: at 10: expected a digit in the exponent of the number '1e+'"},
      {"year = -", "filter: at 7: expected a digit after '-'"},
      {"year = 1 # 2", "filter: at 9: unexpected character '#'"},
      {std::string("year = 1\0", 9), "filter: at 8: a NUL byte"},
      {std::string("genre = 'a\0b'", 13), "filter: at 10: a NUL byte"},
      {std::string("\"ye\0ar\" = 1", 11), "filter: at 3: a NUL byte"},
      {"genre = '\xff'", "filter: at 8: invalid UTF-8 in a string"},
      {"genre = '\xed\xa0\x80'", "filter: at 8: invalid UTF-8 in a string"},  // a surrogate
      {"\"\xc3\" = 1", "filter: at 0: invalid UTF-8 in a quoted name"},
      {"year = 1 \xc3\xa9", "filter: at 9: unexpected byte 0xc3 (outside a string or quoted name)"},
      {"genre = '" + std::string(100, 'x') + "' OR year = 'y'",
       "filter: at 121: column 'year' is int64; 'y' is a string"},
      {"year = '" + std::string(100, 'x') + "'",
       "filter: at 7: column 'year' is int64; '" + std::string(47, 'x') + "...' is a string"},
      {"year = 1 AND " + std::string(100, 'q'), "filter: at 13: no column '" + std::string(48, 'q') +
                                                     "...' (columns: a \"b\", any, flag, genre, score, tags, year)"},
  };
  return cases;
}

TEST(Filter, ErrorsNamePositionAndToken) {
  for (const ErrorCase& c : ErrorCases()) {
    auto f = Filter::Compile(c.expr, FixedSchema());
    ASSERT_FALSE(f.ok()) << c.expr;
    EXPECT_TRUE(f.status().IsInvalidArgument()) << c.expr;
    EXPECT_EQ(f.status().message(), c.message) << c.expr;
  }
}

TEST(Filter, UnknownColumnOfAnEmptySchema) {
  EXPECT_EQ(Filter::Compile("x = 1", {}).status().message(),
            "filter: at 0: no column 'x' (the collection has no columns)");
}

TEST(Filter, IdLiteralsCoverTheWholeU64Range) {
  TableSource src({0, 5, ~uint64_t{0}, uint64_t{1} << 63});
  auto ids = [&](const char* e) {
    Bitmap b;
    EXPECT_TRUE(Filter::Compile(e, {})->Evaluate(src, &b).ok());
    return SetRows(b);
  };
  EXPECT_EQ(ids("id = 18446744073709551615"), (Rows{2}));
  EXPECT_EQ(ids("id > 9223372036854775807"), (Rows{2, 3}));
  EXPECT_EQ(ids("id = 9223372036854775808"), (Rows{3}));
  EXPECT_EQ(ids("id <= 0"), (Rows{0}));
  EXPECT_EQ(ids("id = -0"), (Rows{0}));
  EXPECT_EQ(ids("id = 5e0"), (Rows{1}));
  EXPECT_EQ(ids("id != 5"), (Rows{0, 2, 3}));
  EXPECT_EQ(ids("id NOT IN (0, 18446744073709551615)"), (Rows{1, 3}));
}

// ---- Limits ----

TEST(Filter, ExpressionsAreAtMostOneMiB) {
  std::string at_limit = "flag";
  at_limit.resize(kMaxExpressionBytes, ' ');
  EXPECT_TRUE(Filter::Compile(at_limit, FixedSchema()).ok());
  std::string over(kMaxExpressionBytes + 1, ' ');
  EXPECT_EQ(Filter::Compile(over, FixedSchema()).status().message(),
            "filter: the expression is 1048577 bytes, more than the limit of 1048576");
}

TEST(Filter, NestingIsAtMost64ParenthesesAndNots) {
  FixedTable t(TableSource::Dict::kSorted);
  auto nested = [](int parens, int nots) {
    std::string e;
    for (int i = 0; i < nots; ++i) e += "NOT ";
    for (int i = 0; i < parens; ++i) e += "(";
    e += "year = 2000";
    for (int i = 0; i < parens; ++i) e += ")";
    return e;
  };
  EXPECT_EQ(Passing(nested(64, 0), t.src()), (Rows{1}));
  EXPECT_EQ(Passing(nested(0, 64), t.src()), (Rows{1}));
  EXPECT_EQ(Passing(nested(31, 33), t.src()), (Rows{0, 2, 4, 5, 6, 7}));
  EXPECT_EQ(Filter::Compile(nested(65, 0), FixedSchema()).status().message(),
            "filter: at 64: nesting deeper than 64 parentheses and NOTs");
  EXPECT_EQ(Filter::Compile(nested(0, 65), FixedSchema()).status().message(),
            "filter: at 256: nesting deeper than 64 parentheses and NOTs");
  EXPECT_TRUE(Filter::Compile(nested(40, 25), FixedSchema()).status().IsInvalidArgument());
  // Far deeper input fails the same way, without using stack in proportion to it.
  EXPECT_TRUE(Filter::Compile(nested(400000, 0), FixedSchema()).status().IsInvalidArgument());
  EXPECT_TRUE(Filter::Compile(nested(0, 200000), FixedSchema()).status().IsInvalidArgument());
}

// Runs f on a thread with a stack of `bytes`.
template <class F>
void OnSmallStack(size_t bytes, F f) {
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, bytes), 0);
  pthread_t thread;
  auto run = [](void* arg) -> void* {
    (*static_cast<F*>(arg))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attr, run, &f), 0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  pthread_attr_destroy(&attr);
}

TEST(Filter, ParsingUsesBoundedStack) {
  // 64 levels fit in 1 MiB of stack (sanitizers included); 400,000 levels
  // would need far more if the parser recursed on them.
  FixedTable t(TableSource::Dict::kSorted);
  std::string deepest;
  for (int i = 0; i < 32; ++i) deepest += "NOT (year = 1 OR ";
  deepest += "flag";
  for (int i = 0; i < 32; ++i) deepest += ")";
  const std::string too_deep = std::string(400000, '(') + "flag" + std::string(400000, ')');
  Rows rows;
  Status deep_status;
  OnSmallStack(size_t{1} << 20, [&] {
    rows = Passing(deepest, t.src());
    deep_status = Filter::Compile(too_deep, FixedSchema()).status();
  });
  EXPECT_EQ(rows, (Rows{0, 2, 5, 7}));  // 32 NOTs of (false OR x): flag itself
  EXPECT_EQ(deep_status.message(), "filter: at 64: nesting deeper than 64 parentheses and NOTs");
}

// An int64 IN list of more than 16 values is a bit table when its span is
// narrow (negative values, the span's ends) and a sorted set when it is wide;
// both answer alike, nulls never pass, NOT IN likewise.
TEST(Filter, LargeIntInListsNarrowAndWide) {
  FixedTable t(TableSource::Dict::kShuffled);
  std::string narrow = "-5", wide = "-5";
  for (int v = 3; v < 40; ++v) narrow += ", " + std::to_string(v * 100);  // 300 .. 3900: holds 2000
  for (int v = 3; v < 40; ++v) wide += ", " + std::to_string(int64_t{v} << 40);
  EXPECT_EQ(Passing("year IN (" + narrow + ")", t.src()), (Rows{1, 6}));
  EXPECT_EQ(Passing("year NOT IN (" + narrow + ")", t.src()), (Rows{0, 2, 4, 5, 7}));
  EXPECT_EQ(Passing("year IN (" + wide + ", 9223372036854775807)", t.src()), (Rows{6, 7}));
  EXPECT_EQ(Passing("year NOT IN (" + wide + ", 9223372036854775807)", t.src()), (Rows{0, 1, 2, 4, 5}));
}

TEST(Filter, IntInBitTableMatchesAReferenceOverManyRows) {
  // Enough rows for the SIMD lanes (not only the scalar tail): values below,
  // inside and above the set's span, the int64 extremes, and nulls.
  std::mt19937_64 rng(3);
  std::vector<uint64_t> ids;
  AttrColumn year = AttrColumn::Make("year", AttrType::kInt64);
  std::vector<std::optional<int64_t>> values;
  for (uint64_t r = 0; r < 1000; ++r) {
    ids.push_back(r);
    std::optional<int64_t> v;
    switch (rng() % 8) {
      case 0: break;  // null
      case 1: v = rng() % 2 ? kI64Max : std::numeric_limits<int64_t>::min(); break;
      default: v = static_cast<int64_t>(rng() % 5000) - 1000;
    }
    values.push_back(v);
    v ? year.AppendInt(*v) : year.AppendNull();
  }
  TableSource src(ids);
  src.Add(year, TableSource::Dict::kSorted, 7);
  std::set<int64_t> set;
  while (set.size() < 300) set.insert(static_cast<int64_t>(rng() % 3000));
  std::string list;
  for (int64_t v : set) list += (list.empty() ? "" : ", ") + std::to_string(v);
  Rows in, not_in;
  for (uint64_t r = 0; r < values.size(); ++r) {
    if (!values[r]) continue;
    (set.count(*values[r]) ? in : not_in).push_back(r);
  }
  EXPECT_EQ(Passing("year IN (" + list + ")", src), in);
  EXPECT_EQ(Passing("year NOT IN (" + list + ")", src), not_in);
}

TEST(Filter, LongChainsAndListsWork) {
  FixedTable t(TableSource::Dict::kShuffled);
  std::string chain = "year = 2000";
  while (chain.size() < 900000) chain += " OR year = 2000 AND flag = false";
  EXPECT_EQ(Passing(chain, t.src()), (Rows{1}));
  // A 900 KB IN list of ids, and one of years.
  for (const char* operand : {"id", "year"}) {
    std::string in = std::string(operand) + " IN (";
    for (uint64_t v = 1000000; in.size() < 900000; ++v) in += std::to_string(v) + ", ";
    in += "105, 2010)";
    EXPECT_EQ(Passing(in, t.src()), (Rows{std::string(operand) == "id" ? 5u : 4u})) << operand;
  }
}

// ---- Random expressions against a three-valued reference ----

enum class Tri { kFalse, kUnknown, kTrue };
Tri Not(Tri t) { return t == Tri::kTrue ? Tri::kFalse : t == Tri::kFalse ? Tri::kTrue : Tri::kUnknown; }
Tri Of(bool b) { return b ? Tri::kTrue : Tri::kFalse; }

struct Lit {
  std::string text;     // as written in the expression
  long double exact = 0;  // a number's value (exact for every literal generated)
  double nearest = 0;   // a number's nearest double
  std::string str;      // a string literal's value
  bool b = false;
  uint64_t u = 0;       // an id literal
};

struct Expr {
  enum Kind { kAnd, kOr, kNot, kPred } kind = kPred;
  std::vector<Expr> kids;
  // kPred:
  int column = -1;  // -1: id
  enum Op { kCmp, kIn, kNotIn, kBetween, kNotBetween, kIsNull, kIsNotNull, kContains, kAny, kAll, kAlone } op = kCmp;
  int cmp = 0;  // = != < <= > >=
  std::vector<Lit> lits;
};

struct Table {
  Schema schema;
  std::vector<AttrColumn> cols;  // the schema's columns, all rows
  std::vector<bool> present;
  std::vector<uint64_t> ids;
};

int ByteCompare(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned ca = static_cast<unsigned char>(a[i]), cb = static_cast<unsigned char>(b[i]);
    if (ca != cb) return ca < cb ? -1 : 1;
  }
  return a.size() == b.size() ? 0 : a.size() < b.size() ? -1 : 1;
}

template <class T>
bool CmpHolds(int cmp, T c) {  // c: sign of value - literal
  switch (cmp) {
    case 0: return c == 0;
    case 1: return c != 0;
    case 2: return c < 0;
    case 3: return c <= 0;
    case 4: return c > 0;
    default: return c >= 0;
  }
}

// The reference: one row, three-valued.
Tri Eval(const Expr& e, const Table& t, size_t row) {
  switch (e.kind) {
    case Expr::kNot: return Not(Eval(e.kids[0], t, row));
    case Expr::kAnd:
    case Expr::kOr: {
      const Tri stop = e.kind == Expr::kAnd ? Tri::kFalse : Tri::kTrue;
      Tri acc = Not(stop);
      for (const Expr& k : e.kids) {
        const Tri v = Eval(k, t, row);
        if (v == stop) return stop;
        if (v == Tri::kUnknown) acc = Tri::kUnknown;
      }
      return acc;
    }
    case Expr::kPred: break;
  }
  const bool is_null = e.column >= 0 && (!t.present[e.column] || !t.cols[e.column].has_value(row));
  if (e.op == Expr::kIsNull) return Of(is_null);
  if (e.op == Expr::kIsNotNull) return Of(!is_null);
  if (is_null) return Tri::kUnknown;
  // sign(value - literal i)
  auto sign = [&](const Lit& l) -> int {
    if (e.column < 0) return t.ids[row] < l.u ? -1 : t.ids[row] > l.u ? 1 : 0;
    const AttrColumn& c = t.cols[e.column];
    switch (c.type) {
      case AttrType::kInt64: {
        const long double v = static_cast<long double>(c.ints[row]);
        return v < l.exact ? -1 : v > l.exact ? 1 : 0;
      }
      case AttrType::kFloat64: {
        const double v = c.floats[row];
        return v < l.nearest ? -1 : v > l.nearest ? 1 : 0;
      }
      case AttrType::kBool: return static_cast<int>(c.bools[row] != 0) - static_cast<int>(l.b);
      case AttrType::kString: return ByteCompare(c.str(row), l.str);
      case AttrType::kTags: return 0;
    }
    return 0;
  };
  auto has_tag = [&](const std::string& s) {
    const AttrColumn& c = t.cols[e.column];
    for (size_t i = 0; i < c.tag_count(row); ++i)
      if (c.tag(row, i) == s) return true;
    return false;
  };
  switch (e.op) {
    case Expr::kCmp: return Of(CmpHolds(e.cmp, sign(e.lits[0])));
    case Expr::kIn:
    case Expr::kNotIn: {
      bool in = false;
      for (const Lit& l : e.lits) in = in || sign(l) == 0;
      return Of(in == (e.op == Expr::kIn));
    }
    case Expr::kBetween:
    case Expr::kNotBetween: {
      const bool in = sign(e.lits[0]) >= 0 && sign(e.lits[1]) <= 0;
      return Of(in == (e.op == Expr::kBetween));
    }
    case Expr::kContains:
    case Expr::kAny: {
      bool any = false;
      for (const Lit& l : e.lits) any = any || has_tag(l.str);
      return Of(any);
    }
    case Expr::kAll: {
      bool all = true;
      for (const Lit& l : e.lits) all = all && has_tag(l.str);
      return Of(all);
    }
    case Expr::kAlone: return Of(t.cols[e.column].bools[row] != 0);
    default: return Tri::kUnknown;
  }
}

class Gen {
 public:
  explicit Gen(uint32_t seed) : rng_(seed) {}

  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <class T>
  const T& Pick(const std::vector<T>& v) {
    return v[Below(v.size())];
  }

  // Keywords in a random case.
  std::string Kw(std::string_view k) {
    std::string out(k);
    const size_t style = Below(3);
    for (char& c : out) {
      if (style == 1 || (style == 2 && Chance(0.5))) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
  }

  Table MakeTable(size_t rows) {
    static const std::vector<std::string> kNames = {"a", "B2", "_x", "and", "with space", "q\"uote", "é", "Any", "n", "s"};
    static const AttrType kTypes[] = {AttrType::kInt64, AttrType::kFloat64, AttrType::kBool, AttrType::kString, AttrType::kTags};
    Table t;
    const size_t ncols = 1 + Below(5);
    std::vector<std::string> names = kNames;
    std::shuffle(names.begin(), names.end(), rng_);
    for (size_t i = 0; i < ncols; ++i) {
      const AttrType type = kTypes[Below(5)];
      t.schema.emplace_back(names[i], type);
      t.present.push_back(!Chance(0.1));
      const double null_p = Pick(std::vector<double>{0.0, 0.0, 0.2, 0.6, 1.0});
      AttrColumn c = AttrColumn::Make(names[i], type);
      for (size_t r = 0; r < rows; ++r) {
        if (Chance(null_p)) {
          c.AppendNull();
          continue;
        }
        switch (type) {
          case AttrType::kInt64: c.AppendInt(Pick(IntPool())); break;
          case AttrType::kFloat64: c.AppendFloat(Pick(FloatPool())); break;
          case AttrType::kBool: c.AppendBool(Chance(0.5)); break;
          case AttrType::kString: c.AppendString(Pick(StrPool())); break;
          case AttrType::kTags: {
            std::vector<std::string_view> tags;
            for (size_t k = Below(4); k > 0; --k) tags.push_back(Pick(StrPool()));
            c.AppendTags(tags.data(), tags.size());
            break;
          }
        }
      }
      t.cols.push_back(std::move(c));
    }
    for (size_t r = 0; r < rows; ++r) t.ids.push_back(Chance(0.5) ? Pick(IdPool()) : Below(40));
    if (Chance(0.4)) std::sort(t.ids.begin(), t.ids.end());  // a segment's rows: ids ascending
    return t;
  }

  Expr MakeExpr(const Table& t, int depth) {
    Expr e;
    if (depth > 0 && Chance(0.6)) {
      const size_t k = Below(3);
      if (k == 0) {
        e.kind = Expr::kNot;
        e.kids.push_back(MakeExpr(t, depth - 1));
      } else {
        e.kind = k == 1 ? Expr::kAnd : Expr::kOr;
        for (size_t i = 2 + Below(3); i > 0; --i) e.kids.push_back(MakeExpr(t, depth - 1));
      }
      return e;
    }
    e.column = Chance(0.12) ? -1 : static_cast<int>(Below(t.schema.size()));
    const AttrType type = e.column < 0 ? AttrType::kInt64 : t.schema[e.column].second;
    auto lit = [&]() { return e.column < 0 ? IdLit() : MakeLit(type); };
    auto list = [&]() {
      for (size_t n = Chance(0.15) ? 17 + Below(10) : 1 + Below(4); n > 0; --n) e.lits.push_back(lit());
    };
    std::vector<Expr::Op> ops;
    if (type == AttrType::kTags && e.column >= 0) {
      ops = {Expr::kContains, Expr::kAny, Expr::kAll, Expr::kIsNull, Expr::kIsNotNull};
    } else {
      ops = {Expr::kCmp, Expr::kIn, Expr::kNotIn};
      if (type != AttrType::kBool) ops.insert(ops.end(), {Expr::kBetween, Expr::kNotBetween});
      if (e.column >= 0) ops.insert(ops.end(), {Expr::kIsNull, Expr::kIsNotNull});
      if (type == AttrType::kBool && e.column >= 0) ops.push_back(Expr::kAlone);
    }
    e.op = Pick(ops);
    switch (e.op) {
      case Expr::kCmp:
        e.cmp = static_cast<int>(type == AttrType::kBool && e.column >= 0 ? Below(2) : Below(6));
        e.lits.push_back(lit());
        break;
      case Expr::kIn:
      case Expr::kNotIn:
      case Expr::kAny:
      case Expr::kAll: list(); break;
      case Expr::kBetween:
      case Expr::kNotBetween:
      case Expr::kContains:
        e.lits.push_back(lit());
        if (e.op != Expr::kContains) e.lits.push_back(lit());
        break;
      default: break;
    }
    return e;
  }

  std::string Print(const Expr& e, const Table& t) {
    switch (e.kind) {
      case Expr::kNot: {
        const std::string kid = Print(e.kids[0], t);
        return Kw("NOT") + (Chance(0.5) ? " " + kid : " (" + kid + ")");
      }
      case Expr::kAnd:
      case Expr::kOr: {
        std::string out = "(";
        for (size_t i = 0; i < e.kids.size(); ++i) {
          if (i) out += " " + Kw(e.kind == Expr::kAnd ? "AND" : "OR") + " ";
          out += Print(e.kids[i], t);
        }
        return out + ")";
      }
      case Expr::kPred: break;
    }
    std::string out = e.column < 0 ? Kw("ID") : Name(t.schema[e.column].first);
    auto list = [&]() {
      std::string l = "(";
      for (size_t i = 0; i < e.lits.size(); ++i) l += (i ? ", " : "") + e.lits[i].text;
      return l + ")";
    };
    static const std::vector<std::vector<std::string>> kCmp = {{"=", "=="}, {"!=", "<>"}, {"<"}, {"<="}, {">"}, {">="}};
    switch (e.op) {
      case Expr::kCmp: return out + " " + Pick(kCmp[e.cmp]) + " " + e.lits[0].text;
      case Expr::kIn: return out + " " + Kw("IN") + " " + list();
      case Expr::kNotIn: return out + " " + Kw("NOT") + " " + Kw("IN") + " " + list();
      case Expr::kBetween:
      case Expr::kNotBetween:
        return out + (e.op == Expr::kNotBetween ? " " + Kw("NOT") : "") + " " + Kw("BETWEEN") + " " + e.lits[0].text +
               " " + Kw("AND") + " " + e.lits[1].text;
      case Expr::kIsNull: return out + " " + Kw("IS") + " " + Kw("NULL");
      case Expr::kIsNotNull: return out + " " + Kw("IS") + " " + Kw("NOT") + " " + Kw("NULL");
      case Expr::kContains: return out + " " + Kw("CONTAINS") + " " + e.lits[0].text;
      case Expr::kAny: return out + " " + Kw("CONTAINS") + " " + Kw("ANY") + " " + list();
      case Expr::kAll: return out + " " + Kw("CONTAINS") + " " + Kw("ALL") + " " + list();
      case Expr::kAlone: return out;
    }
    return out;
  }

  std::mt19937& rng() { return rng_; }

 private:
  static const std::vector<int64_t>& IntPool() {
    static const std::vector<int64_t> pool = {-3, -2, -1, 0, 1, 2, 3, 1000, (int64_t{1} << 53) + 1,
                                              std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::min() + 1,
                                              kI64Max, kI64Max - 1};
    return pool;
  }
  static const std::vector<double>& FloatPool() {
    static const std::vector<double> pool = {-kInf, kInf, -1.5, -0.0, 0.0, 0.1, 0.5, 1.0, 2.0, 2.5, 3.0, 1e300, -1e300,
                                             5e-324, std::numeric_limits<double>::max()};
    return pool;
  }
  static const std::vector<std::string>& StrPool() {
    static const std::vector<std::string> pool = {"", "a", "ab", "b", "B", "é", "中文", "a'b", "zz", "\x7f", "a b"};
    return pool;
  }
  static const std::vector<uint64_t>& IdPool() {
    static const std::vector<uint64_t> pool = {0, 1, 2, 3, 5, 8, 13, 21, 1000, uint64_t{1} << 63, ~uint64_t{0}};
    return pool;
  }

  std::string Name(const std::string& n) {
    bool bare = !n.empty() && (std::isalpha(static_cast<unsigned char>(n[0])) || n[0] == '_');
    for (char c : n) bare = bare && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    static const std::vector<std::string> kKeywords = {"and", "any", "or", "not", "in", "id"};
    std::string lower;
    for (char c : n) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const std::string& k : kKeywords) bare = bare && lower != k;
    if (bare && Chance(0.5)) return n;
    std::string q = "\"";
    for (char c : n) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  }

  static Lit NumLit(const std::string& text) {
    Lit l;
    l.text = text;
    l.exact = std::strtold(text.c_str(), nullptr);
    l.nearest = std::strtod(text.c_str(), nullptr);
    return l;
  }

  Lit IdLit() {
    Lit l;
    l.u = Chance(0.8) ? Pick(IdPool()) : Below(30);
    l.text = std::to_string(l.u);
    if (l.u == 5 && Chance(0.5)) l.text = "5e0";
    return l;
  }

  Lit MakeLit(AttrType type) {
    switch (type) {
      case AttrType::kInt64: {
        static const std::vector<std::string> extra = {"2.5", "-0.5", "0.5", "1e30", "-1e30", "9223372036854775808",
                                                        "-9223372036854775809", "2e0", "25e-1", "0.0", "-0",
                                                        "9223372036854775806.5", "-9223372036854775807.5", "1e-300"};
        if (Chance(0.5)) return NumLit(Pick(extra));
        return NumLit(std::to_string(Pick(IntPool())));
      }
      case AttrType::kFloat64: {
        static const std::vector<std::string> extra = {"3", "2", "-0", "1e300", "0.25", "-1.5", "7"};
        if (Chance(0.3)) return NumLit(Pick(extra));
        const double v = Pick(FloatPool());
        if (std::isinf(v)) return NumLit("1.7976931348623157e308");
        char buf[40];
        std::snprintf(buf, sizeof(buf), "%.17g", v);
        return NumLit(buf);
      }
      case AttrType::kBool: {
        Lit l;
        l.b = Chance(0.5);
        l.text = Kw(l.b ? "TRUE" : "FALSE");
        return l;
      }
      case AttrType::kString:
      case AttrType::kTags: {
        Lit l;
        l.str = Chance(0.85) ? Pick(StrPool()) : std::string(Chance(0.5) ? "c" : "aa");
        l.text = "'";
        for (char c : l.str) l.text += c == '\'' ? std::string("''") : std::string(1, c);
        l.text += "'";
        return l;
      }
    }
    return {};
  }

  std::mt19937 rng_;
};

void CheckRandom(uint32_t seed, size_t rows, int exprs) {
  Gen g(seed);
  const Table t = g.MakeTable(rows);
  TableSource src(t.ids);
  for (size_t i = 0; i < t.cols.size(); ++i) {
    if (!t.present[i]) continue;
    const bool sorted = g.Chance(0.5);
    const bool no_nulls = t.cols[i].valid.empty() || std::find(t.cols[i].valid.begin(), t.cols[i].valid.end(), 0) == t.cols[i].valid.end();
    src.Add(t.cols[i], sorted ? TableSource::Dict::kSorted : TableSource::Dict::kShuffled, seed,
            sorted || g.Chance(0.5) ? std::vector<std::string>{} : std::vector<std::string>{"c", "a'b", "zzz"},
            no_nulls && g.Chance(0.5));
  }
  for (int k = 0; k < exprs; ++k) {
    const Expr e = g.MakeExpr(t, 1 + static_cast<int>(g.Below(4)));
    const std::string text = g.Print(e, t);
    std::vector<uint64_t> allow;
    const bool with_allow = g.Chance(0.2);
    if (with_allow) {
      for (size_t n = g.Chance(0.5) ? 3 : 100; n > 0; --n)
        allow.push_back(rows > 0 && g.Chance(0.5) ? t.ids[g.Below(rows)] : g.Below(50));
    }
    auto f = Filter::Compile(text, t.schema, with_allow ? allow.data() : nullptr, allow.size());
    ASSERT_TRUE(f.ok()) << text << ": " << f.status().ToString();
    Bitmap b;
    ASSERT_TRUE(f->Evaluate(src, &b).ok());
    ASSERT_EQ(b.size(), rows);
    ExpectRowTestAgrees(*f, src, b, text);
    for (size_t r = 0; r < rows; ++r) {
      bool want = Eval(e, t, r) == Tri::kTrue;
      if (with_allow) want = want && std::find(allow.begin(), allow.end(), t.ids[r]) != allow.end();
      ASSERT_EQ(b.Get(r), want) << "seed " << seed << " row " << r << " of " << rows << ": " << text << "\ncompiled: "
                                << f->ToString();
    }
    // The tail past the last row stays clear.
    if (rows % 64 != 0) {
      ASSERT_EQ(b.words()[b.word_count() - 1] >> (rows % 64), 0u);
    }
  }
}

TEST(FilterProperty, RandomExpressionsMatchTheThreeValuedReference) {
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    const size_t rows = seed % 10 == 0 ? 0 : (seed * 37) % 300;
    CheckRandom(seed, rows, 40);
  }
}

TEST(FilterProperty, LayersOfSeveralChunks) {
  for (uint32_t seed = 1000; seed < 1004; ++seed) CheckRandom(seed, 40000 + seed, 15);
}

}  // namespace
}  // namespace pomai::filter
