// util/attributes.h and filter/column_source.h: the builders make columns
// that CheckAttrColumns accepts, every rule of CheckAttrColumns refuses what
// breaks it naming the column, IsValidUtf8 follows RFC 3629, and AppendRow
// copies a layer's row (dictionary-encoded or not) into a batch column.
#include "util/attributes.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "filter/column_source.h"

namespace pomai {
namespace {

AttrColumn Ints(const std::string& name, std::vector<int64_t> v) {
  AttrColumn c = AttrColumn::Make(name, AttrType::kInt64);
  for (int64_t x : v) c.AppendInt(x);
  return c;
}
AttrColumn Strings(const std::string& name, std::vector<std::string> v) {
  AttrColumn c = AttrColumn::Make(name, AttrType::kString);
  for (const auto& s : v) c.AppendString(s);
  return c;
}
// Two rows of tags: ["a", "bc"] and [].
AttrColumn TwoTagRows(const std::string& name) {
  AttrColumn c = AttrColumn::Make(name, AttrType::kTags);
  const std::string_view tags[] = {"a", "bc"};
  c.AppendTags(tags, 2);
  c.AppendTags(nullptr, 0);
  return c;
}

TEST(AttrColumn, BuildersMakeColumnsThatCheck) {
  AttrColumn i = AttrColumn::Make("i", AttrType::kInt64);
  i.AppendInt(-1);
  i.AppendNull();
  i.AppendInt(std::numeric_limits<int64_t>::min());
  AttrColumn f = AttrColumn::Make("f", AttrType::kFloat64);
  f.AppendFloat(std::numeric_limits<double>::infinity());
  f.AppendFloat(-0.0);
  f.AppendNull();
  AttrColumn b = AttrColumn::Make("b", AttrType::kBool);
  b.AppendNull();
  b.AppendBool(true);
  b.AppendBool(false);
  AttrColumn s = AttrColumn::Make("s", AttrType::kString);
  s.AppendString("");
  s.AppendString("日本");
  s.AppendNull();
  AttrColumn t = AttrColumn::Make("t", AttrType::kTags);
  const std::string_view tags[] = {"x", "", "x"};
  t.AppendTags(tags, 3);
  t.AppendNull();
  t.AppendTags(tags, 0);
  const std::vector<AttrColumn> cols = {i, f, b, s, t};
  ASSERT_TRUE(CheckAttrColumns(cols, 3).ok()) << CheckAttrColumns(cols, 3).ToString();
  for (const AttrColumn& c : cols) EXPECT_EQ(c.rows(), 3u) << c.name;
  EXPECT_EQ(i.valid, (std::vector<uint8_t>{1, 0, 1})) << "validity appears with the first null";
  EXPECT_EQ(i.ints, (std::vector<int64_t>{-1, 0, std::numeric_limits<int64_t>::min()}));
  EXPECT_EQ(b.valid, (std::vector<uint8_t>{0, 1, 1}));
  EXPECT_EQ(s.str(1), "日本");
  EXPECT_EQ(s.str(2), "");
  EXPECT_EQ(t.tag_count(0), 3u);
  EXPECT_EQ(t.tag(0, 1), "");
  EXPECT_EQ(t.tag(0, 2), "x");
  EXPECT_FALSE(t.has_value(1));
  EXPECT_TRUE(t.has_value(2));
  EXPECT_EQ(t.tag_count(2), 0u);
  EXPECT_TRUE(Ints("n", {1, 2}).valid.empty()) << "no validity while every row has a value";
  EXPECT_EQ(AttrColumn::Make("e", AttrType::kString).rows(), 0u);
  EXPECT_EQ(s.ByteSize(), 1 + 3 + 4 * 8 + 6u);
}

TEST(AttrColumn, TypeNamesAndNumbers) {
  EXPECT_STREQ(AttrTypeName(AttrType::kInt64), "int64");
  EXPECT_STREQ(AttrTypeName(AttrType::kFloat64), "float64");
  EXPECT_STREQ(AttrTypeName(AttrType::kBool), "bool");
  EXPECT_STREQ(AttrTypeName(AttrType::kString), "string");
  EXPECT_STREQ(AttrTypeName(AttrType::kTags), "tags");
  EXPECT_STREQ(AttrTypeName(static_cast<AttrType>(9)), "unknown");
  EXPECT_FALSE(IsAttrType(0));
  for (uint8_t t = 1; t <= 5; ++t) EXPECT_TRUE(IsAttrType(t));
  EXPECT_FALSE(IsAttrType(6));
}

TEST(CheckAttrColumns, EveryRuleRefusesWhatBreaksItNamingTheColumn) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Case {
    const char* name;
    std::vector<AttrColumn> columns;
    size_t rows;
    const char* says;
  };
  std::vector<Case> cases;
  auto add = [&](const char* name, std::vector<AttrColumn> columns, size_t rows, const char* says) {
    cases.push_back({name, std::move(columns), rows, says});
  };
  std::vector<AttrColumn> many;
  for (int i = 0; i < 257; ++i) many.push_back(Ints("c" + std::to_string(i), {1}));
  add("257 columns", many, 1, "names 257 attribute columns (at most 256)");
  add("empty name", {Ints("", {1})}, 1, "'' is 0 bytes (column names are 1 to 255 bytes)");
  add("name of 256 bytes", {Ints(std::string(256, 'n'), {1})}, 1, "is 256 bytes");
  add("NUL in the name", {Ints(std::string("a\0b", 3), {1})}, 1, "contains a NUL byte");
  add("name not UTF-8", {Ints("\xC3", {1})}, 1, "is not valid UTF-8");
  add("name id", {Ints("id", {1})}, 1, "'id' is reserved");
  add("name twice", {Ints("n", {1}), Strings("n", {"x"})}, 1, "'n' appears twice in the batch");
  {
    AttrColumn c = Ints("u", {1});
    c.type = static_cast<AttrType>(7);
    add("unknown type", {c}, 1, "'u' has unknown type 7");
  }
  {
    AttrColumn c = Ints("v", {1, 2});
    c.valid = {1};
    add("short validity", {c}, 2, "'v' has 1 validity entries for 2 rows");
    c.valid = {1, 2};
    add("validity byte 2", {c}, 2, "'v' row 1 has validity byte 2 (0 or 1)");
  }
  add("ints short", {Ints("i", {1})}, 2, "'i' (int64) has 1 values for 2 rows");
  {
    AttrColumn c = Ints("i", {0, 5});
    c.valid = {1, 0};
    add("int null slot", {c}, 2, "'i' row 1 is null but its slot holds a value");
  }
  {
    AttrColumn c = AttrColumn::Make("f", AttrType::kFloat64);
    c.AppendFloat(1);
    add("floats short", {c}, 2, "'f' (float64) has 1 values for 2 rows");
    c.AppendFloat(nan);
    add("NaN", {c}, 2, "'f' row 1 is NaN (use a null instead)");
    c.floats[1] = 2;
    c.valid = {0, 1};
    add("float null slot", {c}, 2, "'f' row 0 is null but its slot holds a value");
    c.floats[0] = nan;
    add("NaN in a null slot", {c}, 2, "'f' row 0 is null but its slot holds a value");
  }
  {
    AttrColumn c = AttrColumn::Make("b", AttrType::kBool);
    c.AppendBool(true);
    add("bools short", {c}, 2, "'b' (bool) has 1 values for 2 rows");
    c.bools.push_back(2);
    add("bool byte 2", {c}, 2, "'b' row 1 has bool byte 2 (0 or 1)");
    c.bools[1] = 1;
    c.valid = {1, 0};
    add("bool null slot", {c}, 2, "'b' row 1 is null but its slot holds a value");
  }
  {
    AttrColumn c = Strings("s", {"ab", "c"});
    add("string offsets short", {c}, 3, "'s''s offsets has 3 entries, not 3 + 1");
    c.offsets = {1, 2, 3};
    add("string offsets start at 1", {c}, 2, "'s''s offsets start at 1, not 0");
    c.offsets = {0, 3, 2};
    add("string offsets decrease", {c}, 2, "'s''s offsets decrease at entry 2 (3 then 2)");
    c.offsets = {0, 2, 2};
    add("string offsets end early", {c}, 2, "'s''s offsets end at 2, not at the data's 3");
    c.offsets.clear();
    add("no string offsets", {c}, 2, "'s''s offsets has 0 entries, not 2 + 1");
  }
  add("string not UTF-8", {Strings("s", {"ok", "\xE0\x80\x80"})}, 2, "'s' row 1 is not valid UTF-8");
  add("string of 65536 bytes", {Strings("s", {std::string(65536, 'x')})}, 1, "'s' row 0 is 65536 bytes (at most 65535)");
  {
    AttrColumn c = Strings("s", {"x", ""});
    c.valid = {0, 1};
    add("string null slot", {c}, 2, "'s' row 0 is null but its slot holds a value");
  }
  {
    AttrColumn c = TwoTagRows("t");
    c.offsets = {0, 2, 3};
    add("tag list past the tags", {c}, 2, "'t''s tag offsets has 3 entries, not 3 + 1");
    c.offsets = {0, 2, 1};
    add("tag list decreases", {c}, 2, "'t''s list offsets decrease at entry 2 (2 then 1)");
    c.offsets = {0, 2, UINT64_MAX};
    add("tag list of 2^64 - 1 tags", {c}, 2, "'t''s tag offsets has 3 entries, not 18446744073709551615 + 1");
    AttrColumn no_tags = c;
    no_tags.tag_offsets.clear();  // 2^64 - 1 + 1 wraps to 0 entries: must not pass as a match
    add("tag list of 2^64 - 1 tags and no tag offsets", {no_tags}, 2,
        "'t''s tag offsets has 0 entries, not 18446744073709551615 + 1");
    c.offsets = {0, 2, 2};
    c.tag_offsets = {0, 1, 4};
    add("tag offsets past the bytes", {c}, 2, "'t''s tag offsets end at 4, not at the data's 3");
    c.tag_offsets = {1, 1, 3};
    add("tag offsets start at 1", {c}, 2, "'t''s tag offsets start at 1, not 0");
    c.tag_offsets = {0, 1, 3};
    c.valid = {0, 1};
    add("tags null slot", {c}, 2, "'t' row 0 is null but its slot holds a value");
    c.valid.clear();
    c.bytes = "a\xFF\xFF";
    add("tag not UTF-8", {c}, 2, "'t' row 0 tag 1 is not valid UTF-8");
  }
  {
    AttrColumn c = AttrColumn::Make("t", AttrType::kTags);
    const std::string big(65536, 't');
    const std::string_view tags[] = {"ok", big};
    c.AppendTags(tags, 2);
    add("tag of 65536 bytes", {c}, 1, "'t' row 0 tag 1 is 65536 bytes (at most 65535)");
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Status s = CheckAttrColumns(c.columns, c.rows);
    ASSERT_TRUE(s.IsInvalidArgument()) << s.ToString();
    EXPECT_NE(s.message().find(c.says), std::string::npos) << s.message();
  }
}

TEST(CheckAttrColumns, LimitsAreInclusive) {
  std::vector<AttrColumn> cols;
  for (int i = 0; i < 256; ++i) cols.push_back(Ints("c" + std::to_string(i), {1}));
  cols[0].name = std::string(255, 'n');
  EXPECT_TRUE(CheckAttrColumns(cols, 1).ok());
  EXPECT_TRUE(CheckAttrColumns({Strings("s", {std::string(65535, 's')})}, 1).ok());
  EXPECT_TRUE(CheckAttrColumns({}, 0).ok());
  EXPECT_TRUE(CheckAttrColumns({Ints("ID", {1}), Ints("Id", {2})}, 1).ok()) << "only 'id' itself is reserved";
  EXPECT_TRUE(CheckAttrColumns({TwoTagRows("t")}, 2).ok());
  EXPECT_TRUE(CheckAttrName("\xF0\x9F\x98\x80", "column").ok());
  Status s = CheckAttrName("id", "where column");
  ASSERT_TRUE(s.IsInvalidArgument());
  EXPECT_EQ(s.message().rfind("where column 'id'", 0), 0u) << s.message();
}

TEST(IsValidUtf8, FollowsRfc3629) {
  const struct {
    std::string s;
    bool valid;
  } cases[] = {
      {"", true},
      {std::string("\0", 1), true},  // NUL is valid UTF-8 (names refuse it separately)
      {"\x7F", true},
      {"\x80", false},                  // a continuation byte alone
      {"\xC2\x80", true},               // U+0080
      {"\xC1\xBF", false},              // overlong U+007F
      {"\xC0\x80", false},              // overlong NUL
      {"\xDF\xBF", true},               // U+07FF
      {"\xE0\x9F\xBF", false},          // overlong U+07FF
      {"\xE0\xA0\x80", true},           // U+0800
      {"\xED\x9F\xBF", true},           // U+D7FF
      {"\xED\xA0\x80", false},          // U+D800, a surrogate
      {"\xED\xBF\xBF", false},          // U+DFFF
      {"\xEE\x80\x80", true},           // U+E000
      {"\xEF\xBF\xBF", true},           // U+FFFF
      {"\xF0\x8F\xBF\xBF", false},      // overlong U+FFFF
      {"\xF0\x90\x80\x80", true},       // U+10000
      {"\xF4\x8F\xBF\xBF", true},       // U+10FFFF
      {"\xF4\x90\x80\x80", false},      // U+110000
      {"\xF5\x80\x80\x80", false},
      {"\xFF", false},
      {"\xE6\x97", false},              // truncated at the end
      {"\xE6\x97\xA5", true},           // 日
      {"\xE6\x41\xA5", false},          // a non-continuation inside
      {"a\xF0\x9F\x98", false},         // truncated 4-byte form
      {"\xF0\x9F\x98\x80z", true},
  };
  for (const auto& c : cases) EXPECT_EQ(IsValidUtf8(c.s), c.valid) << testing::PrintToString(c.s);
}

// A layer's columns (dictionary-encoded strings and tags, validity) read
// back through AppendRow into batch columns, nulls and absent columns too.
TEST(AppendRow, CopiesALayersRowsIntoABatchColumn) {
  const uint8_t valid[] = {1, 0, 1};
  const int64_t ints[] = {7, 0, -7};
  const double floats[] = {0.5, 0, -INFINITY};
  const uint8_t bools[] = {1, 0, 0};
  const uint64_t dict_offsets[] = {0, 2, 2, 6};  // "hi", "", "日x"
  const char dict_bytes[] = "hi日x";
  const uint32_t string_codes[] = {2, 0, 1};
  const uint32_t tag_codes[] = {0, 0, 2, 1};
  const uint64_t tag_offsets[] = {0, 3, 3, 4};

  filter::ColumnRef ref;
  ref.valid = valid;
  ref.ints = ints;
  ref.floats = floats;
  ref.bools = bools;
  ref.dict_size = 3;
  ref.dict_offsets = dict_offsets;
  ref.dict_bytes = dict_bytes;
  const AttrType types[] = {AttrType::kInt64, AttrType::kFloat64, AttrType::kBool, AttrType::kString,
                            AttrType::kTags};
  for (AttrType type : types) {
    SCOPED_TRACE(AttrTypeName(type));
    ref.type = type;
    ref.codes = type == AttrType::kTags ? tag_codes : string_codes;
    ref.tag_offsets = tag_offsets;
    AttrColumn out = AttrColumn::Make("c", type);
    for (uint64_t r : {2, 1, 0}) filter::AppendRow(ref, true, r, &out);
    filter::AppendRow(ref, false, 0, &out);  // the layer has no such column
    ASSERT_TRUE(CheckAttrColumns({out}, 4).ok()) << CheckAttrColumns({out}, 4).ToString();
    EXPECT_EQ(out.valid, (std::vector<uint8_t>{1, 0, 1, 0}));
    switch (type) {
      case AttrType::kInt64: EXPECT_EQ(out.ints, (std::vector<int64_t>{-7, 0, 7, 0})); break;
      case AttrType::kFloat64: EXPECT_EQ(out.floats, (std::vector<double>{-INFINITY, 0, 0.5, 0})); break;
      case AttrType::kBool: EXPECT_EQ(out.bools, (std::vector<uint8_t>{0, 0, 1, 0})); break;
      case AttrType::kString:
        EXPECT_EQ(out.str(0), "");
        EXPECT_EQ(out.str(2), "日x");
        break;
      case AttrType::kTags:
        ASSERT_EQ(out.tag_count(0), 1u);
        EXPECT_EQ(out.tag(0, 0), "");
        ASSERT_EQ(out.tag_count(2), 3u);
        EXPECT_EQ(out.tag(2, 0), "hi");
        EXPECT_EQ(out.tag(2, 2), "日x");
        EXPECT_EQ(out.tag_count(3), 0u);
        break;
    }
  }
  // Without validity every row has a value.
  ref.valid = nullptr;
  ref.type = AttrType::kInt64;
  AttrColumn out = AttrColumn::Make("c", AttrType::kInt64);
  for (uint64_t r = 0; r < 3; ++r) filter::AppendRow(ref, true, r, &out);
  EXPECT_TRUE(out.valid.empty());
  EXPECT_EQ(out.ints, (std::vector<int64_t>{7, 0, -7}));
}

}  // namespace
}  // namespace pomai
