// Attribute columns in segments (docs/FORMAT.md, "Attribute columns"): the
// writer's sections read back through SegmentFile::AttrColumns and Column
// equal what was written; every damaged byte of them is Corruption from
// Column or Verify naming the file and an offset; sections damaged with
// their checksums fixed are refused by Open, Column or Verify with a message
// naming what is wrong.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <thread>

#include "file_test_util.h"
#include "filter/column_source.h"
#include "segment/file.h"
#include "segment/writer.h"
#include "support/temp_dir.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace pomai::segment {
namespace {

using pomai::testing::TempDir;
using namespace testing;

// Row r of a column as a string: "null", or its type's value (floats by
// their bits, strings and tags length-prefixed).
std::string RowString(const AttrColumn& c, size_t r) {
  if (!c.has_value(r)) return "null";
  switch (c.type) {
    case AttrType::kInt64: return "i" + std::to_string(c.ints[r]);
    case AttrType::kFloat64: return "f" + std::to_string(std::bit_cast<uint64_t>(c.floats[r]));
    case AttrType::kBool: return c.bools[r] ? "true" : "false";
    case AttrType::kString: return "s" + std::to_string(c.str(r).size()) + ":" + std::string(c.str(r));
    case AttrType::kTags: {
      std::string s = "t";
      for (size_t i = 0; i < c.tag_count(r); ++i) s += std::to_string(c.tag(r, i).size()) + ":" + std::string(c.tag(r, i));
      return s;
    }
  }
  return "?";
}

std::vector<std::string> Rows(const AttrColumn& c, size_t rows) {
  std::vector<std::string> out;
  for (size_t r = 0; r < rows; ++r) out.push_back(RowString(c, r));
  return out;
}

// A random UTF-8 string of 0..max_len code points from a small alphabet
// (ASCII, 2-, 3- and 4-byte sequences), so values repeat.
std::string RandomString(std::mt19937_64& rng, size_t max_len) {
  static const char* const kPieces[] = {"a", "b", "z", "0", " ", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\x7F"};
  std::string s;
  const size_t n = rng() % (max_len + 1);
  for (size_t i = 0; i < n; ++i) s += kPieces[rng() % std::size(kPieces)];
  return s;
}

// A column of `type` with `rows` rows; null_per_mille of them null (1000:
// every row).
AttrColumn RandomColumn(const std::string& name, AttrType type, size_t rows, int null_per_mille, std::mt19937_64& rng,
                        size_t max_len = 3) {
  AttrColumn c = AttrColumn::Make(name, type);
  for (size_t r = 0; r < rows; ++r) {
    if (static_cast<int>(rng() % 1000) < null_per_mille) {
      c.AppendNull();
      continue;
    }
    switch (type) {
      case AttrType::kInt64: {
        const int64_t specials[] = {0, -1, 1, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()};
        c.AppendInt(rng() % 4 == 0 ? specials[rng() % 5] : static_cast<int64_t>(rng()));
        break;
      }
      case AttrType::kFloat64: {
        const double specials[] = {0.0, -0.0, std::numeric_limits<double>::infinity(),
                                   -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::denorm_min()};
        c.AppendFloat(rng() % 4 == 0 ? specials[rng() % 5] : std::ldexp(static_cast<double>(rng() % 100000) - 50000, -7));
        break;
      }
      case AttrType::kBool: c.AppendBool(rng() % 2); break;
      case AttrType::kString: c.AppendString(RandomString(rng, max_len)); break;
      case AttrType::kTags: {
        std::vector<std::string> tags(rng() % 4);
        for (std::string& t : tags) t = RandomString(rng, max_len);
        std::vector<std::string_view> views(tags.begin(), tags.end());
        c.AppendTags(views.data(), views.size());
        break;
      }
    }
  }
  return c;
}

// Writes one u64 group of `rows` rows (MakeU64) carrying `columns`.
Status WriteWithColumns(Env* env, const std::string& path, size_t rows, const std::vector<AttrColumn>& columns,
                        U64Data* keep) {
  *keep = MakeU64(5, rows, 3, 2);
  SegmentWriter w(256);
  U64Rows u = keep->Rows();
  u.columns = &columns;
  w.AddU64Group(u);
  return w.Finish(env, path, 1);
}

// Every column of group g read back through Column into a fresh AttrColumn.
void ExpectColumnsEqual(const SegmentFile& f, uint32_t g, const std::vector<AttrColumn>& columns) {
  const size_t rows = f.group(g).rows;
  std::vector<std::pair<std::string, AttrType>> listed;
  ASSERT_TRUE(f.AttrColumns(g, &listed).ok());
  std::vector<std::pair<std::string, AttrType>> want;
  for (const AttrColumn& c : columns) want.emplace_back(c.name, c.type);
  std::sort(want.begin(), want.end());
  EXPECT_EQ(listed, want);
  for (const AttrColumn& c : columns) {
    SCOPED_TRACE(c.name);
    filter::ColumnRef ref;
    bool present = false;
    Status s = f.Column(g, c.name, &ref, &present);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(present);
    EXPECT_EQ(ref.type, c.type);
    AttrColumn back = AttrColumn::Make(c.name, c.type);
    for (size_t r = 0; r < rows; ++r) filter::AppendRow(ref, present, r, &back);
    EXPECT_EQ(Rows(back, rows), Rows(c, rows));
    bool any_null = false;
    for (size_t r = 0; r < rows; ++r) any_null |= !c.has_value(r);
    EXPECT_EQ(ref.valid != nullptr, any_null) << "a valid section only with nulls";
    if (c.type == AttrType::kString || c.type == AttrType::kTags) {
      // The dictionary: exactly the distinct values used, ascending.
      std::set<std::string> used;
      for (size_t r = 0; r < rows; ++r) {
        if (!c.has_value(r)) continue;
        if (c.type == AttrType::kString) used.insert(std::string(c.str(r)));
        for (size_t i = 0; c.type == AttrType::kTags && i < c.tag_count(r); ++i) used.insert(std::string(c.tag(r, i)));
      }
      EXPECT_TRUE(ref.dict_sorted);
      ASSERT_EQ(ref.dict_size, used.size());
      size_t e = 0;
      for (const std::string& v : used) {
        EXPECT_EQ(std::string(ref.dict_bytes + ref.dict_offsets[e], ref.dict_offsets[e + 1] - ref.dict_offsets[e]), v);
        ++e;
      }
    }
  }
  filter::ColumnRef ref;
  bool present = true;
  ASSERT_TRUE(f.Column(g, "no such column", &ref, &present).ok());
  EXPECT_FALSE(present);
}

class AttrRoundTrip : public ::testing::Test {
 protected:
  void RoundTrip(size_t rows, const std::vector<AttrColumn>& columns) {
    U64Data keep;
    const std::string path = dir_.file("seg-000001.pseg");
    Status s = WriteWithColumns(Env::Default(), path, rows, columns, &keep);
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto f = SegmentFile::Open(Env::Default(), path);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_EQ((*f)->group_count(), 1u);
    s = (*f)->Verify();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ExpectColumnsEqual(**f, 0, columns);
    // The rest of the group is unchanged by its columns.
    for (size_t r = 0; r < rows; ++r) {
      auto meta = (*f)->Metadata(0, r);
      ASSERT_TRUE(meta.ok());
      EXPECT_EQ(*meta, keep.Meta(r));
    }
  }
  TempDir dir_;
};

TEST_F(AttrRoundTrip, RandomColumnsOfEveryType) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937_64 rng(seed);
    const size_t rows = 1 + rng() % 300;
    std::vector<AttrColumn> cols;
    const AttrType types[] = {AttrType::kInt64, AttrType::kFloat64, AttrType::kBool, AttrType::kString, AttrType::kTags};
    int n = 0;
    for (AttrType t : types) {
      // No nulls, some, most, and every row null.
      for (int nulls : {0, 100, 900, 1000}) {
        cols.push_back(RandomColumn(std::string(AttrTypeName(t)) + "_" + std::to_string(nulls) + "_" + std::to_string(n++),
                                    t, rows, nulls, rng));
      }
    }
    std::shuffle(cols.begin(), cols.end(), rng);  // the writer sorts by name
    RoundTrip(rows, cols);
  }
}

TEST_F(AttrRoundTrip, OneRowEmptyStringsAndEmptyTagLists) {
  std::vector<AttrColumn> cols;
  cols.push_back(AttrColumn::Make("s", AttrType::kString));
  cols.back().AppendString("");
  cols.push_back(AttrColumn::Make("t", AttrType::kTags));
  cols.back().AppendTags(nullptr, 0);
  cols.push_back(AttrColumn::Make("t2", AttrType::kTags));
  const std::string_view two_empty[] = {"", ""};
  cols.back().AppendTags(two_empty, 2);
  cols.push_back(AttrColumn::Make("n", AttrType::kString));
  cols.back().AppendNull();
  cols.push_back(AttrColumn::Make("\xC3\xA9t\xC3\xA9", AttrType::kBool));
  cols.back().AppendBool(true);
  RoundTrip(1, cols);
}

TEST_F(AttrRoundTrip, HugeDictionaries) {
  std::mt19937_64 rng(99);
  const size_t rows = 5000;
  std::vector<AttrColumn> cols;
  AttrColumn s = AttrColumn::Make("distinct", AttrType::kString);
  for (size_t r = 0; r < rows; ++r) s.AppendString("value-" + std::to_string(rng()));
  cols.push_back(std::move(s));
  cols.push_back(RandomColumn("long", AttrType::kString, rows, 50, rng, 40));
  AttrColumn big = AttrColumn::Make("big", AttrType::kString);
  for (size_t r = 0; r < rows; ++r) big.AppendString(r % 1000 == 0 ? std::string(kMaxAttrStringLen, 'x') : std::to_string(r % 7));
  cols.push_back(std::move(big));
  cols.push_back(RandomColumn("tags", AttrType::kTags, rows, 50, rng, 20));
  RoundTrip(rows, cols);
}

TEST_F(AttrRoundTrip, MaxColumnsAndNoColumns) {
  std::mt19937_64 rng(5);
  std::vector<AttrColumn> cols;
  for (size_t i = 0; i < kMaxAttrColumns; ++i) {
    cols.push_back(RandomColumn(std::string(kMaxAttrNameLen - 3, 'c') + std::to_string(100 + i),
                                static_cast<AttrType>(1 + i % 5), 3, 300, rng));
  }
  RoundTrip(3, cols);
  RoundTrip(3, {});
  auto f = SegmentFile::Open(Env::Default(), dir_.file("seg-000001.pseg"));
  ASSERT_TRUE(f.ok());
  for (const SegmentFile::SectionRef& s : (*f)->sections()) EXPECT_LT(KindNumber(s.kind), 168u) << "no attribute sections";
  std::vector<std::pair<std::string, AttrType>> listed{{"x", AttrType::kBool}};
  EXPECT_TRUE((*f)->AttrColumns(0, &listed).ok());
  EXPECT_TRUE(listed.empty());
}

TEST_F(AttrRoundTrip, WriterRefusesBadColumns) {
  U64Data keep;
  const std::string path = dir_.file("seg-000001.pseg");
  std::vector<AttrColumn> cols{AttrColumn::Make("x", AttrType::kInt64)};
  cols[0].AppendInt(1);  // 1 value for 4 rows
  Status s = WriteWithColumns(Env::Default(), path, 4, cols, &keep);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("attribute column 'x' (int64) has 1 values for 4 rows"), std::string::npos) << s.message();
  cols = {AttrColumn::Make("a", AttrType::kFloat64), AttrColumn::Make("a", AttrType::kFloat64)};
  s = WriteWithColumns(Env::Default(), path, 0, cols, &keep);
  EXPECT_NE(s.message().find("appears twice"), std::string::npos) << s.message();
  cols = {AttrColumn::Make("f", AttrType::kFloat64)};
  cols[0].AppendFloat(std::nan(""));
  s = WriteWithColumns(Env::Default(), path, 1, cols, &keep);
  EXPECT_NE(s.message().find("NaN"), std::string::npos) << s.message();
  EXPECT_FALSE(Env::Default()->FileExists(path));
}

TEST_F(AttrRoundTrip, ColumnOfAGroupOfEntriesIsInvalidArgument) {
  FileData data = MixedFile(4, 3, false);
  ASSERT_TRUE(data.Write(Env::Default(), dir_.file("seg-000001.pseg"), 1).ok());
  auto f = SegmentFile::Open(Env::Default(), dir_.file("seg-000001.pseg"));
  ASSERT_TRUE(f.ok());
  filter::ColumnRef ref;
  bool present = true;
  for (uint32_t g = 0; g < (*f)->group_count(); ++g) {
    Status s = (*f)->Column(g, "x", &ref, &present);
    EXPECT_EQ(s.ok(), (*f)->group(g).kind == GroupKind::kU64) << s.ToString();
    EXPECT_FALSE(present);
  }
  std::vector<std::pair<std::string, AttrType>> listed;
  EXPECT_TRUE((*f)->AttrColumns((*f)->group_count(), &listed).IsInvalidArgument());
}

// A small file with one column of each type, with nulls ("b", "f", "i",
// "s", "t") and without ("n"), for the damage tests.
std::vector<AttrColumn> SmallColumns() {
  std::vector<AttrColumn> c;
  c.push_back(AttrColumn::Make("b", AttrType::kBool));
  c.back().AppendBool(true);
  c.back().AppendNull();
  c.back().AppendBool(false);
  c.back().AppendBool(true);
  c.push_back(AttrColumn::Make("f", AttrType::kFloat64));
  c.back().AppendFloat(1.5);
  c.back().AppendFloat(-2);
  c.back().AppendNull();
  c.back().AppendFloat(0.25);
  c.push_back(AttrColumn::Make("i", AttrType::kInt64));
  c.back().AppendNull();
  c.back().AppendInt(7);
  c.back().AppendInt(-9);
  c.back().AppendInt(7);
  c.push_back(AttrColumn::Make("n", AttrType::kInt64));
  for (int64_t v : {3, 1, 4, 1}) c.back().AppendInt(v);
  c.push_back(AttrColumn::Make("s", AttrType::kString));
  c.back().AppendString("pear");
  c.back().AppendString("apple");
  c.back().AppendNull();
  c.back().AppendString("fig\xC3\xA9");
  c.push_back(AttrColumn::Make("t", AttrType::kTags));
  const std::string_view t0[] = {"red", "big"}, t2[] = {"big"}, t3[] = {"zed", "red", "ant"};
  c.back().AppendTags(t0, 2);
  c.back().AppendNull();
  c.back().AppendTags(t2, 1);
  c.back().AppendTags(t3, 3);
  return c;
}

class AttrDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    columns_ = SmallColumns();
    U64Data keep;
    ASSERT_TRUE(WriteWithColumns(Env::Default(), dir_.file("seg-000001.pseg"), 4, columns_, &keep).ok());
    good_ = ReadAll(dir_.file("seg-000001.pseg"));
    auto f = Open(good_);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_TRUE((*f)->Verify().ok());
    sections_ = (*f)->sections();
  }

  Result<std::shared_ptr<SegmentFile>> Open(const std::string& bytes) {
    env_.Put(path_, bytes);
    return SegmentFile::Open(&env_, path_);
  }
  void ExpectNamed(const Status& s, const std::string& context) {
    ASSERT_TRUE(s.IsCorruption()) << context << ": " << s.ToString();
    ASSERT_EQ(s.message().rfind(path_ + " at offset ", 0), 0u) << context << ": " << s.message();
  }
  uint8_t* at(std::string& b, uint64_t off) { return reinterpret_cast<uint8_t*>(b.data()) + off; }
  uint64_t Table(const std::string& b) { return DecodeFixed64(reinterpret_cast<const uint8_t*>(b.data()) + b.size() - 32); }
  // The section (kind, column) of group 0 as the good file lists it, and its table entry's offset.
  const SegmentFile::SectionRef& Ref(SectionKind kind, uint16_t column, uint64_t* entry = nullptr) {
    for (size_t i = 0; i < sections_.size(); ++i) {
      if (sections_[i].kind == kind && sections_[i].column == column) {
        if (entry != nullptr) *entry = Table(good_) + i * kSectionEntrySize;
        return sections_[i];
      }
    }
    ADD_FAILURE() << "no section " << KindNumber(kind) << " of column " << column;
    return sections_[0];
  }
  // Reseals every section CRC and the table CRC of b.
  void Seal(std::string& b) {
    const uint64_t table = Table(b);
    for (size_t i = 0; i < sections_.size(); ++i) {
      const uint64_t e = table + i * kSectionEntrySize;
      const uint64_t off = DecodeFixed64(at(b, e + table2::kOffset)), len = DecodeFixed64(at(b, e + table2::kLength));
      EncodeFixed32(at(b, e + table2::kCrc), crc32c::Value(at(b, off), len));
    }
    EncodeFixed32(at(b, b.size() - 20), crc32c::Value(at(b, table), sections_.size() * kSectionEntrySize));
  }
  // Index of column `name` in the directory (names sorted).
  uint16_t ColumnIndex(const std::string& name) {
    std::vector<std::string> names;
    for (const AttrColumn& c : columns_) names.push_back(c.name);
    std::sort(names.begin(), names.end());
    return static_cast<uint16_t>(std::find(names.begin(), names.end(), name) - names.begin());
  }
  // The file offset of column `name`'s directory record.
  uint64_t Record(const std::string& name) {
    uint64_t pos = Ref(SectionKind::kAttrColumns, 0).offset + attrdir::kHeadSize;
    for (uint16_t i = 0; i < ColumnIndex(name); ++i) pos += attrdir::kRecordHead + DecodeFixed32(at(good_, pos)) % 65536;
    return pos;
  }

  // Open fails / Column of `column` fails / Verify alone fails, with `what` in the message.
  enum class Where { kOpen, kColumn, kVerify };
  void ExpectRefused(const std::string& b, Where where, const std::string& column, const std::string& what) {
    SCOPED_TRACE(what);
    auto f = Open(b);
    Status s;
    if (where == Where::kOpen) {
      ASSERT_FALSE(f.ok()) << "opened";
      s = f.status();
    } else {
      ASSERT_TRUE(f.ok()) << f.status().ToString();
      filter::ColumnRef ref;
      bool present = false;
      s = (*f)->Column(0, column, &ref, &present);
      if (where == Where::kColumn) {
        ASSERT_FALSE(s.ok()) << "Column succeeded";
        Status v = (*f)->Verify();  // Verify refuses it too
        ExpectNamed(v, "verify");
        EXPECT_EQ(v.message(), s.message());
      } else {
        ASSERT_TRUE(s.ok()) << s.ToString();
        s = (*f)->Verify();
        ASSERT_FALSE(s.ok()) << "verified";
      }
    }
    ExpectNamed(s, what);
    EXPECT_NE(s.message().find(what), std::string::npos) << s.message();
  }

  TempDir dir_;
  MemoryMapEnv env_;
  const std::string path_ = "/nonexistent/seg-000001.pseg";
  std::vector<AttrColumn> columns_;
  std::string good_;
  std::vector<SegmentFile::SectionRef> sections_;
};

// Every bit of every attribute section flipped: Open (the directory's
// structure), the directory's CRC or the damaged column's CRC refuses it,
// Verify refuses it, and the other columns still read back exactly. No flip
// yields a column value: a passing Column() would need a CRC32C collision,
// which one flipped bit can never give (CRC32C detects every 1-bit error), so
// the test requires failure rather than comparing values.
TEST_F(AttrDamage, EveryFlippedBitIsCaught) {
  size_t flips = 0;
  for (const SegmentFile::SectionRef& sec : sections_) {
    const uint32_t kind = KindNumber(sec.kind);
    if (kind < KindNumber(SectionKind::kAttrColumns)) continue;
    for (uint64_t byte = sec.offset; byte < sec.offset + sec.length; ++byte) {
      for (int bit = 0; bit < 8; ++bit) {
        std::string b = good_;
        b[byte] ^= static_cast<char>(1 << bit);
        const std::string context = "section " + std::to_string(kind) + " column " + std::to_string(sec.column) +
                                    " byte " + std::to_string(byte) + " bit " + std::to_string(bit);
        SCOPED_TRACE(context);
        ++flips;
        auto f = Open(b);
        if (!f.ok()) {
          ASSERT_EQ(sec.kind, SectionKind::kAttrColumns) << "Open reads no column data";
          ExpectNamed(f.status(), context);
          continue;
        }
        ExpectNamed((*f)->Verify(), context);
        for (const AttrColumn& c : columns_) {
          filter::ColumnRef ref;
          bool present = false;
          Status s = (*f)->Column(0, c.name, &ref, &present);
          const bool damaged = sec.kind == SectionKind::kAttrColumns || ColumnIndex(c.name) == sec.column;
          if (damaged) {
            ExpectNamed(s, context + " column " + c.name);
            continue;
          }
          ASSERT_TRUE(s.ok() && present) << s.ToString();
          AttrColumn back = AttrColumn::Make(c.name, c.type);
          for (size_t r = 0; r < 4; ++r) filter::AppendRow(ref, present, r, &back);
          ASSERT_EQ(Rows(back, 4), Rows(c, 4));
        }
        std::vector<std::pair<std::string, AttrType>> listed;
        Status s = (*f)->AttrColumns(0, &listed);
        if (sec.kind == SectionKind::kAttrColumns) ExpectNamed(s, context + " directory");
      }
    }
  }
  EXPECT_GT(flips, 1000u);
}

// Flips in the attribute sections' table entries fail the table CRC at Open.
TEST_F(AttrDamage, TableEntryFlipsFailOpen) {
  for (size_t i = 0; i < sections_.size(); ++i) {
    if (KindNumber(sections_[i].kind) < KindNumber(SectionKind::kAttrColumns)) continue;
    for (uint64_t byte = 0; byte < kSectionEntrySize; ++byte) {
      std::string b = good_;
      b[Table(good_) + i * kSectionEntrySize + byte] ^= 0x10;
      auto f = Open(b);
      ASSERT_FALSE(f.ok());
      ExpectNamed(f.status(), "table");
    }
  }
}

TEST_F(AttrDamage, CraftedDirectoriesFailOpen) {
  const uint64_t dir = Ref(SectionKind::kAttrColumns, 0).offset;
  struct Case {
    uint64_t offset;
    std::vector<uint8_t> bytes;
    std::string what;
  };
  const std::vector<Case> cases = {
      {dir, {0, 0, 0, 0}, "attr columns section of group 0 has 0 columns, not 1..256"},
      {dir, {1, 1, 0, 0}, "has 257 columns"},
      {dir, {2, 0, 0, 0}, "has 20 bytes after its last column"},  // a count below the records
      {dir, {7, 0, 0, 0}, "column 6 of the attr columns section of group 0 runs past the section's end"},
      {dir + 5, {1}, "nonzero reserved bytes"},
      {Record("b"), {0, 0}, "column 0 of the attr columns section of group 0 has a name of 0 bytes"},
      {Record("b"), {200, 0}, "column 0 of the attr columns section of group 0's name runs past"},
      {Record("f") + 2, {6}, "column 1 of the attr columns section of group 0 has unknown type 6"},
      {Record("f") + 3, {3}, "has unsupported flags 3"},
      {Record("i") + 4, {'z'}, "column 3 of the attr columns section of group 0 ('n') does not follow column 2 ('z')"},
      {Record("s") + 4, {'n'}, "('n') does not follow column 3 ('n')"},
      // The valid flag cleared on a column with a valid section, set on one without.
      {Record("i") + 3, {0}, "attr valid section of column 2 of group 0 is not one its column has (column 'i', int64, without nulls)"},
      {Record("n") + 3, {1}, "missing attr valid section of column 3 of group 0 (column 'n', int64, with nulls)"},
      // Another type: other sections.
      {Record("i") + 2, {4}, "missing attr dict offsets section of column 2 of group 0 (column 'i', string"},
      {Record("s") + 2, {1}, "attr dict offsets section of column 4 of group 0 is not one its column has"},
      {Record("s") + 2, {5}, "missing attr tag offsets section of column 4"},
      {Record("t") + 2, {4}, "attr tag offsets section of column 5 of group 0 is not one its column has"},
      {Record("b") + 2, {1}, "attr values section of column 0 of group 0 is 4 bytes, not 32 bytes for 4 rows"},
  };
  for (const Case& c : cases) {
    std::string b = good_;
    for (size_t i = 0; i < c.bytes.size(); ++i) b[c.offset + i] = static_cast<char>(c.bytes[i]);
    Seal(b);
    ExpectRefused(b, Where::kOpen, "", c.what);
  }
}

TEST_F(AttrDamage, CraftedTableEntriesFailOpen) {
  uint64_t entry = 0;
  Ref(SectionKind::kAttrValues, ColumnIndex("t"), &entry);
  std::string b = good_;
  EncodeFixed32(at(b, entry), KindNumber(SectionKind::kAttrValues) | (9u << 16));
  Seal(b);
  ExpectRefused(b, Where::kOpen, "", "attr values section of column 9 of group 0 names a column the directory (6 columns) does not have");
  b = good_;
  EncodeFixed32(at(b, entry), KindNumber(SectionKind::kAttrValues) | (uint32_t{ColumnIndex("s")} << 16));
  Seal(b);
  ExpectRefused(b, Where::kOpen, "", "attr values section of column 4 of group 0 appears twice");
  b = good_;
  EncodeFixed32(at(b, entry), KindNumber(SectionKind::kAttrValues));  // column 0 ("b") has a values section
  Seal(b);
  ExpectRefused(b, Where::kOpen, "", "appears twice");
  b = good_;
  EncodeFixed64(at(b, entry + table2::kLength), 10);
  Seal(b);
  ExpectRefused(b, Where::kOpen, "", "attr values section of column 5 of group 0 is 10 bytes, not a multiple of 4 bytes");
  Ref(SectionKind::kAttrDictOffsets, ColumnIndex("s"), &entry);
  b = good_;
  EncodeFixed64(at(b, entry + table2::kLength), 0);
  Seal(b);
  ExpectRefused(b, Where::kOpen, "", "attr dict offsets section of column 4 of group 0 is 0 bytes, not (d + 1) x 8 bytes");
  // The directory's entry turned into a valid section of column 3 ("n"):
  // the columns' sections then have no directory.
  Ref(SectionKind::kAttrColumns, 0, &entry);
  b = good_;
  EncodeFixed32(at(b, entry), KindNumber(SectionKind::kAttrValid) | (3u << 16));
  Seal(b);
  ExpectRefused(b, Where::kOpen, "", "of group 0 belongs to a group without an attr columns section");
  b = good_;
  EncodeFixed32(at(b, entry + table2::kGroup), 1);
  Seal(b);
  ExpectRefused(b, Where::kOpen, "", "attr columns section of group 1 of 1");
}

TEST_F(AttrDamage, CraftedColumnsFailColumnOrVerify) {
  const uint16_t s = ColumnIndex("s"), t = ColumnIndex("t");
  const uint64_t s_codes = Ref(SectionKind::kAttrValues, s).offset, s_doff = Ref(SectionKind::kAttrDictOffsets, s).offset;
  const uint64_t s_bytes = Ref(SectionKind::kAttrDictBytes, s).offset;
  const uint64_t t_codes = Ref(SectionKind::kAttrValues, t).offset, t_off = Ref(SectionKind::kAttrTagOffsets, t).offset;
  const uint64_t t_doff = Ref(SectionKind::kAttrDictOffsets, t).offset;
  // s: rows pear, apple, null, figé: dictionary apple, figé, pear (codes 2, 0, 0, 1).
  // t: rows [red big], null, [big], [zed red ant]: dictionary ant, big, red, zed.
  struct Case {
    uint64_t offset;
    std::vector<uint64_t> values;  // little-endian, `width` bytes each
    int width;
    Where where;
    std::string column;
    std::string what;
  };
  const std::vector<Case> cases = {
      {s_codes, {3}, 4, Where::kColumn, "s", "column 4 ('s') of group 0 row 0 has code 3 of a dictionary of 3"},
      {t_codes + 8, {4}, 4, Where::kColumn, "t", "column 5 ('t') of group 0 tag 2 has code 4 of a dictionary of 4"},
      {t_off, {1}, 8, Where::kColumn, "t", "'s tag offsets start at 1, not 0"},
      {t_off + 8, {5}, 8, Where::kColumn, "t", "'s tag offsets decrease at row 2"},
      {t_off + 32, {5}, 8, Where::kColumn, "t", "'s tag offsets end at 5, not at its 6 codes"},
      {s_doff, {1}, 8, Where::kColumn, "s", "column 4 ('s') of group 0's dictionary offsets start at 1, not 0"},
      {s_doff + 8, {100}, 8, Where::kColumn, "s", "dictionary offset 1 (100) decreases or is past its 14 bytes"},
      {s_doff + 24, {13}, 8, Where::kColumn, "s", "dictionary offsets end at 13, not at its 14 bytes"},
      // Dictionary entries swapped: "ant" after "big".
      {Ref(SectionKind::kAttrDictBytes, t).offset, {'b', 'i', 'g', 'a', 'n', 't'}, 1, Where::kColumn, "t",
       "'s dictionary entry 1 does not follow entry 0"},
      // What only Verify checks.
      {Ref(SectionKind::kAttrValid, ColumnIndex("b")).offset + 1, {2}, 1, Where::kVerify, "b",
       "column 0 ('b') of group 0 row 1 has validity byte 2 (0 or 1)"},
      {Ref(SectionKind::kAttrValid, ColumnIndex("b")).offset + 1, {1}, 1, Where::kVerify, "b",
       "column 0 ('b') of group 0 has an attr valid section but no null row"},
      {Ref(SectionKind::kAttrValues, ColumnIndex("b")).offset + 3, {2}, 1, Where::kVerify, "b", "row 3 has bool byte 2"},
      {Ref(SectionKind::kAttrValues, ColumnIndex("b")).offset + 1, {1}, 1, Where::kVerify, "b",
       "column 0 ('b') of group 0 row 1 is null but its slot is not zero"},
      {Ref(SectionKind::kAttrValues, ColumnIndex("f")).offset + 8, {0x7FF8000000000000ull}, 8, Where::kVerify, "f",
       "column 1 ('f') of group 0 row 1 is NaN"},
      {Ref(SectionKind::kAttrValues, ColumnIndex("f")).offset + 16, {0x8000000000000000ull}, 8, Where::kVerify, "f",
       "row 2 is null but its slot is not zero"},
      {Ref(SectionKind::kAttrValues, ColumnIndex("i")).offset, {5}, 8, Where::kVerify, "i",
       "column 2 ('i') of group 0 row 0 is null but its slot is not zero"},
      {s_codes + 8, {1}, 4, Where::kVerify, "s", "column 4 ('s') of group 0 row 2 is null but its slot is not zero"},
      // "apple" no longer used (row 1 now "figé").
      {s_codes + 4, {1}, 4, Where::kVerify, "s", "column 4 ('s') of group 0's dictionary entry 0 is used by no row"},
      {s_bytes + 9, {0xFF}, 1, Where::kVerify, "s", "column 4 ('s') of group 0's dictionary entry 1 is not valid UTF-8"},
      // The null row 1 of t given row 2's tag.
      {t_off + 16, {3}, 8, Where::kVerify, "t", "column 5 ('t') of group 0 row 1 is null but its slot is not zero"},
      {t_doff + 8, {7}, 8, Where::kColumn, "t", "column 5 ('t') of group 0's dictionary offset 2 (6) decreases or is past its 12 bytes"},
      {Record("n") + 4, {'i'}, 1, Where::kOpen, "", "does not follow"},
  };
  for (const Case& c : cases) {
    std::string b = good_;
    for (size_t i = 0; i < c.values.size(); ++i) {
      for (int k = 0; k < c.width; ++k) b[c.offset + i * c.width + k] = static_cast<char>(c.values[i] >> (8 * k));
    }
    Seal(b);
    ExpectRefused(b, c.where, c.column, c.what);
  }
  // Names Verify refuses (kept in name order: "b" is first, "t" last).
  std::string b = good_;
  b[Record("b") + 4] = '\0';
  Seal(b);
  ExpectRefused(b, Where::kVerify, std::string(1, '\0'), "group 0: attribute column '\\x00' contains a NUL byte");
  b = good_;
  b[Record("t") + 4] = '\xC0';
  Seal(b);
  ExpectRefused(b, Where::kVerify, "\xC0", "is not valid UTF-8");
}

// The first checks of a column race from several threads: all agree, on a
// good column and on a damaged one.
TEST_F(AttrDamage, ConcurrentFirstChecksOfAColumnAgree) {
  std::string b = good_;
  b[Ref(SectionKind::kAttrDictBytes, ColumnIndex("t")).offset] ^= 1;
  auto f = Open(b);
  ASSERT_TRUE(f.ok());
  std::vector<std::thread> threads;
  std::vector<std::string> results(8);
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      for (const char* name : {"s", "t"}) {
        filter::ColumnRef ref;
        bool present = false;
        Status s = (*f)->Column(0, name, &ref, &present);
        results[i] += s.ToString() + (s.ok() ? std::to_string(ref.dict_size) : "") + ";";
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::string& r : results) EXPECT_EQ(r, results[0]);
  EXPECT_EQ(results[0].rfind("OK3;", 0), 0u) << results[0];
  EXPECT_NE(results[0].find("checksum mismatch in attr dict bytes section of column 5 of group 0"), std::string::npos)
      << results[0];
}

}  // namespace
}  // namespace pomai::segment
