// wal/record_codec.h, type 18: row batches round-trip with every attribute
// type, and everything no write makes is Corruption naming the record and
// the byte within the payload.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "util/attributes.h"
#include "util/coding.h"
#include "wal/record_codec.h"

namespace pomai::wal {
namespace {

const std::string kOrigin = "wal-000003.log at offset 96";

// A random batch as the engine would log it.
struct Batch {
  uint64_t cid = 0;
  uint32_t dim = 0;
  uint32_t rows = 0;
  std::vector<uint64_t> ids;
  std::vector<float> vectors;
  bool has_metadata = false;
  std::vector<uint64_t> meta_offsets;
  std::string meta_blob;
  std::vector<AttrColumn> columns;

  std::string Encode() const {
    return EncodeRowBatch(cid, dim, rows, ids.data(), vectors.data(), has_metadata ? meta_offsets.data() : nullptr,
                          meta_blob, columns);
  }
  uint64_t Size() const { return RowBatchSize(dim, rows, has_metadata, meta_blob.size(), columns); }
};

std::string RandomString(std::mt19937_64& rng) {
  static const char* const kPieces[] = {"", "a", "tag", "é", "日本", "\xF0\x9F\x98\x80", "x y", "\x7F"};
  std::string s;
  const int parts = static_cast<int>(rng() % 4);
  for (int i = 0; i < parts; ++i) s += kPieces[rng() % std::size(kPieces)];
  return s;
}

AttrColumn RandomColumn(std::mt19937_64& rng, const std::string& name, AttrType type, uint32_t rows) {
  AttrColumn c = AttrColumn::Make(name, type);
  const int null_percent = static_cast<int>(rng() % 3) * 30;  // 0, 30 or 60
  for (uint32_t r = 0; r < rows; ++r) {
    if (static_cast<int>(rng() % 100) < null_percent) {
      c.AppendNull();
      continue;
    }
    switch (type) {
      case AttrType::kInt64: c.AppendInt(static_cast<int64_t>(rng())); break;
      case AttrType::kFloat64: {
        const double specials[] = {0.0, -0.0, std::numeric_limits<double>::infinity(), -1e308, 5e-324};
        c.AppendFloat(rng() % 4 == 0 ? specials[rng() % 5] : std::ldexp(static_cast<double>(rng() % 1000) - 500, -3));
        break;
      }
      case AttrType::kBool: c.AppendBool(rng() % 2 == 0); break;
      case AttrType::kString: c.AppendString(RandomString(rng)); break;
      case AttrType::kTags: {
        std::vector<std::string> tags(rng() % 4);  // 0: an empty list, which is not null
        for (auto& t : tags) t = RandomString(rng);
        std::vector<std::string_view> views(tags.begin(), tags.end());
        c.AppendTags(views.data(), views.size());
        break;
      }
    }
  }
  return c;
}

Batch RandomBatch(std::mt19937_64& rng) {
  Batch b;
  b.cid = rng();
  b.dim = 1 + static_cast<uint32_t>(rng() % 5);
  b.rows = 1 + static_cast<uint32_t>(rng() % 9);
  for (uint32_t r = 0; r < b.rows; ++r) {
    b.ids.push_back(rng() % 4 == 0 ? r : rng());
    for (uint32_t d = 0; d < b.dim; ++d) b.vectors.push_back(static_cast<float>(rng() % 200) / 8 - 12);
  }
  b.has_metadata = rng() % 2 == 0;
  if (b.has_metadata) {
    b.meta_offsets.push_back(0);
    for (uint32_t r = 0; r < b.rows; ++r) {
      b.meta_blob += std::string(rng() % 5, static_cast<char>(rng()));  // any bytes
      b.meta_offsets.push_back(b.meta_blob.size());
    }
  }
  const size_t columns = rng() % 7;  // 0: no columns
  for (size_t i = 0; i < columns; ++i) {
    const auto type = static_cast<AttrType>(1 + rng() % 5);
    b.columns.push_back(RandomColumn(rng, "col" + std::to_string(i) + (i % 2 ? "é" : ""), type, b.rows));
  }
  return b;
}

void ExpectSameColumns(const std::vector<AttrColumn>& got, const std::vector<AttrColumn>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE(want[i].name);
    EXPECT_EQ(got[i].name, want[i].name);
    EXPECT_EQ(got[i].type, want[i].type);
    EXPECT_EQ(got[i].valid, want[i].valid);
    EXPECT_EQ(got[i].ints, want[i].ints);
    ASSERT_EQ(got[i].floats.size(), want[i].floats.size());
    for (size_t r = 0; r < got[i].floats.size(); ++r)  // bit for bit: -0.0 stays -0.0
      EXPECT_EQ(std::memcmp(&got[i].floats[r], &want[i].floats[r], 8), 0) << r;
    EXPECT_EQ(got[i].bools, want[i].bools);
    EXPECT_EQ(got[i].offsets, want[i].offsets);
    EXPECT_EQ(got[i].tag_offsets, want[i].tag_offsets);
    EXPECT_EQ(got[i].bytes, want[i].bytes);
  }
}

TEST(RowBatch, RandomBatchesRoundTripWithEveryAttributeType) {
  std::mt19937_64 rng(18);
  for (int iter = 0; iter < 500; ++iter) {
    SCOPED_TRACE(iter);
    const Batch b = RandomBatch(rng);
    ASSERT_TRUE(CheckAttrColumns(b.columns, b.rows).ok());
    const std::string payload = b.Encode();
    ASSERT_EQ(payload.size(), b.Size());
    DecodedRecord rec;
    rec.ops.resize(3);  // left from an earlier record: cleared
    ASSERT_TRUE(DecodeRecord(static_cast<uint8_t>(RecordType::kRowBatch), payload, kOrigin, &rec).ok());
    EXPECT_EQ(rec.type, RecordType::kRowBatch);
    EXPECT_TRUE(rec.ops.empty());
    const RowBatch& d = rec.batch;
    EXPECT_EQ(d.cid, b.cid);
    EXPECT_EQ(d.dim, b.dim);
    ASSERT_EQ(d.rows, b.rows);
    EXPECT_EQ(std::memcmp(d.ids, b.ids.data(), b.rows * 8), 0);
    EXPECT_EQ(std::memcmp(d.vectors, b.vectors.data(), b.vectors.size() * 4), 0);
    EXPECT_EQ(d.has_metadata, b.has_metadata);
    EXPECT_EQ(d.meta_offsets, b.meta_offsets);
    EXPECT_EQ(d.meta_blob, b.meta_blob);
    ExpectSameColumns(d.columns, b.columns);
    // Decode then encode gives the same bytes.
    EXPECT_EQ(EncodeRowBatch(d.cid, d.dim, d.rows, d.ids, d.vectors, d.has_metadata ? d.meta_offsets.data() : nullptr,
                             d.meta_blob, d.columns),
              payload);
  }
}

TEST(RowBatch, HeadArraysAndTailMakeThePayload) {
  std::mt19937_64 rng(3);
  for (int iter = 0; iter < 50; ++iter) {
    const Batch b = RandomBatch(rng);
    uint8_t head[kRowBatchHeadSize];
    EncodeRowBatchHead(b.cid, b.dim, b.rows, b.columns.size(), b.has_metadata, head);
    std::string pieces(reinterpret_cast<const char*>(head), sizeof(head));
    pieces.append(reinterpret_cast<const char*>(b.ids.data()), b.rows * 8);
    pieces.append(reinterpret_cast<const char*>(b.vectors.data()), b.vectors.size() * 4);
    pieces += EncodeRowBatchTail(b.rows, b.has_metadata ? b.meta_offsets.data() : nullptr, b.meta_blob, b.columns);
    EXPECT_EQ(pieces, b.Encode()) << iter;
  }
}

TEST(RowBatch, ANextRecordOfAnotherTypeClearsTheBatch) {
  std::mt19937_64 rng(1);
  Batch b = RandomBatch(rng);
  b.columns = {RandomColumn(rng, "n", AttrType::kInt64, b.rows)};
  DecodedRecord rec;
  ASSERT_TRUE(DecodeRecord(18, b.Encode(), kOrigin, &rec).ok());
  ASSERT_EQ(rec.batch.columns.size(), 1u);
  std::string array(kRowArrayHeadSize, '\0');
  EncodeRowArrayHead(1, 1, 1, reinterpret_cast<uint8_t*>(array.data()));
  array += std::string(8, '\0') + std::string(4, '\0');
  ASSERT_TRUE(DecodeRecord(17, array, kOrigin, &rec).ok());
  EXPECT_EQ(rec.type, RecordType::kRowArray);
  EXPECT_TRUE(rec.batch.columns.empty());
  EXPECT_STREQ(RecordTypeName(RecordType::kRowBatch), "row batch");
}

// ---------------------------------------------------------------------------
// Hand-built payloads

std::string U16(uint16_t v) { return std::string{static_cast<char>(v & 0xFF), static_cast<char>(v >> 8)}; }
std::string U32(uint32_t v) {
  std::string p;
  PutFixed32(&p, v);
  return p;
}
std::string U64(uint64_t v) {
  std::string p;
  PutFixed64(&p, v);
  return p;
}
std::string F32(float f) { return std::string(reinterpret_cast<const char*>(&f), 4); }
std::string F64(double f) { return std::string(reinterpret_cast<const char*>(&f), 8); }
std::string Head(uint32_t dim, uint32_t rows, uint16_t columns, uint8_t flags = 0, std::string zero = std::string(5, '\0')) {
  return U64(7) + U32(dim) + U32(rows) + U16(columns) + static_cast<char>(flags) + zero;
}
// Two rows (ids 1, 2) of dim 2; 24 + 16 + 16 = 56 bytes before metadata or columns.
const std::string kRows = U64(1) + U64(2) + F32(1) + F32(2) + F32(3) + F32(4);
constexpr size_t kColumnsAt = 56;
// A column of two rows: name, type, has_valid (and validity) and values.
std::string Col(const std::string& name, uint8_t type, const std::string& validity, const std::string& values) {
  return U16(static_cast<uint16_t>(name.size())) + name + static_cast<char>(type) + validity + values;
}
const std::string kAllValid(1, '\0');
std::string Valid(uint8_t a, uint8_t b) { return std::string{'\x01', static_cast<char>(a), static_cast<char>(b)}; }
// One record of two rows and the given columns.
std::string Rec(const std::vector<std::string>& columns, std::string tail = "") {
  std::string p = Head(2, 2, static_cast<uint16_t>(columns.size())) + kRows;
  for (const auto& c : columns) p += c;
  return p + tail;
}
const std::string kInts = U64(5) + U64(6);
std::string Offsets(std::vector<uint64_t> v) {
  std::string s;
  for (uint64_t x : v) s += U64(x);
  return s;
}

TEST(RowBatch, HandBuiltRecordOfEveryTypeDecodes) {
  const std::string p = Rec({
      Col("i", 1, Valid(1, 0), U64(static_cast<uint64_t>(-5)) + U64(0)),
      Col("f", 2, kAllValid, F64(-0.5) + F64(std::numeric_limits<double>::infinity())),
      Col("b", 3, kAllValid, std::string("\x01\x00", 2)),
      Col("s", 4, Valid(0, 1), Offsets({0, 0, 3}) + "abc"),
      Col("t", 5, kAllValid, Offsets({0, 2, 2}) + Offsets({0, 1, 1}) + "x"),  // ["x", ""], []
  });
  RowBatch b;
  ASSERT_TRUE(DecodeRowBatch(p, kOrigin, &b).ok()) << DecodeRowBatch(p, kOrigin, &b).ToString();
  ASSERT_EQ(b.columns.size(), 5u);
  EXPECT_EQ(b.columns[0].ints, (std::vector<int64_t>{-5, 0}));
  EXPECT_FALSE(b.columns[0].has_value(1));
  EXPECT_TRUE(std::isinf(b.columns[1].floats[1]));
  EXPECT_EQ(b.columns[2].bools, (std::vector<uint8_t>{1, 0}));
  EXPECT_FALSE(b.columns[3].has_value(0));
  EXPECT_EQ(b.columns[3].str(1), "abc");
  EXPECT_EQ(b.columns[4].tag_count(0), 2u);
  EXPECT_EQ(b.columns[4].tag(0, 0), "x");
  EXPECT_EQ(b.columns[4].tag(0, 1), "");
  EXPECT_TRUE(b.columns[4].has_value(1));
  EXPECT_EQ(b.columns[4].tag_count(1), 0u);
  EXPECT_FALSE(b.has_metadata);
}

TEST(RowBatch, EveryMalformedFieldIsCorruptionNamingTheByte) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const float fnan = std::numeric_limits<float>::quiet_NaN();
  const std::string meta = Offsets({0, 1, 3}) + "abc";  // 27 bytes of metadata
  std::vector<std::string> many;
  for (int i = 0; i < 257; ++i) many.push_back(Col("c" + std::to_string(i), 1, kAllValid, kInts));
  std::string too_many = Rec(many);
  const size_t first_col_len = Col("i", 1, kAllValid, kInts).size();  // 20
  struct Case {
    const char* name;
    std::string payload;
    size_t byte;
    const char* says;
  } cases[] = {
      {"empty", "", 0, "shorter than the 24-byte head"},
      {"short head", Head(2, 2, 0).substr(0, 23), 0, "shorter than the 24-byte head"},
      {"dim 0", Head(0, 2, 0) + kRows, 8, "dim 0 is not in 1..65535"},
      {"dim 65536", Head(65536, 2, 0) + kRows, 8, "dim 65536 is not in 1..65535"},
      {"no rows", Head(2, 0, 0), 12, "no rows"},
      {"257 columns", too_many.replace(16, 2, U16(257)), 16, "257 columns (at most 256)"},
      {"flag bit 1", Head(2, 2, 0, 2) + kRows, 18, "unknown flags 2"},
      {"flag bit 7", Head(2, 2, 0, 0x81) + kRows, 18, "unknown flags 129"},
      {"reserved byte", Head(2, 2, 0, 0, std::string("\0\0\x01\0\0", 5)) + kRows, 21, "reserved byte is 1"},
      {"last reserved byte", Head(2, 2, 0, 0, std::string("\0\0\0\0\xFF", 5)) + kRows, 23, "reserved byte is 255"},
      {"short ids", Head(2, 2, 0) + U64(1), 24, "truncated ids"},
      {"short vectors", Head(2, 2, 0) + kRows.substr(0, 31), 40, "truncated vectors"},
      {"NaN component", Head(2, 2, 0) + U64(1) + U64(2) + F32(1) + F32(2) + F32(3) + F32(fnan), 52,
       "row 1 has a non-finite vector component"},
      {"infinite component", Head(2, 2, 0) + U64(1) + U64(2) + F32(std::numeric_limits<float>::infinity()) + F32(2) +
                                 F32(3) + F32(4),
       40, "row 0 has a non-finite vector component"},
      {"short metadata offsets", Head(2, 2, 0, 1) + kRows + Offsets({0, 1}), 56, "truncated metadata offsets"},
      {"metadata offsets start at 1", Head(2, 2, 0, 1) + kRows + Offsets({1, 1, 3}) + "abc", 56,
       "metadata offsets start at 1, not 0"},
      {"metadata offsets decrease", Head(2, 2, 0, 1) + kRows + Offsets({0, 3, 2}) + "abc", 72,
       "metadata offset 2 decreases (3 then 2)"},
      {"metadata past the end", Head(2, 2, 0, 1) + kRows + Offsets({0, 1, 4}) + "abc", 72,
       "metadata offsets end at 4, past the payload"},
      {"huge metadata", Head(2, 2, 0, 1) + kRows + Offsets({0, 1, UINT64_MAX}) + "abc", 72, "past the payload"},
      {"metadata trailing", Head(2, 2, 0, 1) + kRows + meta + "z", kColumnsAt + 27, "1 trailing bytes"},
      {"missing column", Rec({}).replace(16, 2, U16(1)), kColumnsAt, "truncated column 0"},
      {"name length 0", Rec({Col("", 1, kAllValid, kInts)}), kColumnsAt, "column 0 name length 0 is not in 1..255"},
      {"name length 256", Rec({Col(std::string(256, 'n'), 1, kAllValid, kInts)}), kColumnsAt,
       "column 0 name length 256 is not in 1..255"},
      {"short name", Rec({U16(9) + "abc"}), kColumnsAt + 2, "truncated column 0 name"},
      {"name id", Rec({Col("id", 1, kAllValid, kInts)}), kColumnsAt, "'id' is reserved"},
      {"name with NUL", Rec({Col(std::string("a\0b", 3), 1, kAllValid, kInts)}), kColumnsAt, "contains a NUL byte"},
      {"name not UTF-8", Rec({Col("a\xC0\x80", 1, kAllValid, kInts)}), kColumnsAt, "is not valid UTF-8"},
      {"no type", Rec({U16(1) + "i"}), kColumnsAt + 3, "truncated attribute column 'i'"},
      {"type 0", Rec({Col("i", 0, kAllValid, kInts)}), kColumnsAt + 3, "'i' has unknown type 0"},
      {"type 6", Rec({Col("i", 6, kAllValid, kInts)}), kColumnsAt + 3, "'i' has unknown type 6"},
      {"has_valid 2", Rec({Col("i", 1, "\x02", kInts)}), kColumnsAt + 4, "has_valid is 2 (0 or 1)"},
      {"short validity", Rec({Col("i", 1, "\x01\x01", "")}), kColumnsAt + 5, "truncated attribute column 'i' validity"},
      {"validity byte 2", Rec({Col("i", 1, Valid(1, 2), kInts)}), kColumnsAt, "row 1 has validity byte 2 (0 or 1)"},
      {"short ints", Rec({Col("i", 1, kAllValid, U64(5))}), kColumnsAt + 5, "truncated attribute column 'i' values"},
      {"int null slot", Rec({Col("i", 1, Valid(0, 1), kInts)}), kColumnsAt,
       "row 0 is null but its slot holds a value"},
      {"float NaN", Rec({Col("f", 2, kAllValid, F64(1) + F64(nan))}), kColumnsAt, "'f' row 1 is NaN"},
      {"float null slot", Rec({Col("f", 2, Valid(1, 0), F64(1) + F64(2))}), kColumnsAt,
       "row 1 is null but its slot holds a value"},
      {"short bools", Rec({Col("b", 3, kAllValid, "\x01")}), kColumnsAt + 5, "truncated attribute column 'b' values"},
      {"bool byte 2", Rec({Col("b", 3, kAllValid, std::string("\x00\x02", 2))}), kColumnsAt,
       "row 1 has bool byte 2 (0 or 1)"},
      {"bool null slot", Rec({Col("b", 3, Valid(0, 1), std::string("\x01\x01", 2))}), kColumnsAt,
       "row 0 is null but its slot holds a value"},
      {"short string offsets", Rec({Col("s", 4, kAllValid, Offsets({0, 1}))}), kColumnsAt + 5,
       "truncated attribute column 's' string offsets"},
      {"string offsets start at 2", Rec({Col("s", 4, kAllValid, Offsets({2, 2, 3}) + "abc")}), kColumnsAt + 5,
       "string offsets start at 2, not 0"},
      {"string offsets decrease", Rec({Col("s", 4, kAllValid, Offsets({0, 2, 1}) + "ab")}), kColumnsAt + 5 + 16,
       "string offset 2 decreases (2 then 1)"},
      {"short string bytes", Rec({Col("s", 4, kAllValid, Offsets({0, 2, 4}) + "abc")}), kColumnsAt + 5 + 24,
       "truncated attribute column 's' bytes"},
      {"string not UTF-8", Rec({Col("s", 4, kAllValid, Offsets({0, 1, 3}) + "a\xED\xA0")}), kColumnsAt,
       "'s' row 1 is not valid UTF-8"},
      {"string surrogate", Rec({Col("s", 4, kAllValid, Offsets({0, 0, 3}) + "\xED\xA0\x80")}), kColumnsAt,
       "'s' row 1 is not valid UTF-8"},
      {"string too long", Rec({Col("s", 4, kAllValid, Offsets({0, 0, 65536}) + std::string(65536, 's'))}),
       kColumnsAt, "'s' row 1 is 65536 bytes (at most 65535)"},
      {"string null slot", Rec({Col("s", 4, Valid(1, 0), Offsets({0, 1, 2}) + "ab")}), kColumnsAt,
       "row 1 is null but its slot holds a value"},
      {"tag list offsets decrease", Rec({Col("t", 5, kAllValid, Offsets({0, 1, 0}) + Offsets({0}))}),
       kColumnsAt + 5 + 16, "list offset 2 decreases (1 then 0)"},
      {"tag list offsets start at 1", Rec({Col("t", 5, kAllValid, Offsets({1, 1, 1}) + Offsets({0, 0}))}),
       kColumnsAt + 5, "list offsets start at 1, not 0"},
      {"huge tag count", Rec({Col("t", 5, kAllValid, Offsets({0, 0, UINT64_MAX}))}), kColumnsAt + 5 + 24,
       "truncated attribute column 't' tag offsets"},
      {"tag count past the end", Rec({Col("t", 5, kAllValid, Offsets({0, 1, 2}) + Offsets({0, 1}))}),
       kColumnsAt + 5 + 24, "truncated attribute column 't' tag offsets"},
      {"tag offsets start at 1", Rec({Col("t", 5, kAllValid, Offsets({0, 1, 1}) + Offsets({1, 1}) + "a")}),
       kColumnsAt + 5 + 24, "tag offsets start at 1, not 0"},
      {"tag offsets decrease", Rec({Col("t", 5, kAllValid, Offsets({0, 2, 2}) + Offsets({0, 2, 1}) + "ab")}),
       kColumnsAt + 5 + 24 + 16, "tag offset 2 decreases (2 then 1)"},
      {"short tag bytes", Rec({Col("t", 5, kAllValid, Offsets({0, 1, 1}) + Offsets({0, 3}) + "ab")}),
       kColumnsAt + 5 + 24 + 16, "truncated attribute column 't' bytes"},
      {"tag not UTF-8", Rec({Col("t", 5, kAllValid, Offsets({0, 0, 2}) + Offsets({0, 1, 2}) + "a\xFF")}), kColumnsAt,
       "'t' row 1 tag 1 is not valid UTF-8"},
      {"tag too long", Rec({Col("t", 5, kAllValid, Offsets({0, 1, 1}) + Offsets({0, 65536}) + std::string(65536, 't'))}),
       kColumnsAt, "'t' row 0 tag 0 is 65536 bytes"},
      {"tags null slot", Rec({Col("t", 5, Valid(0, 1), Offsets({0, 1, 1}) + Offsets({0, 0}))}), kColumnsAt,
       "row 0 is null but its slot holds a value"},
      {"name twice", Rec({Col("i", 1, kAllValid, kInts), Col("i", 1, kAllValid, kInts)}), kColumnsAt + first_col_len,
       "attribute column 'i' appears twice"},
      {"trailing bytes", Rec({Col("i", 1, kAllValid, kInts)}, "xy"), kColumnsAt + first_col_len, "2 trailing bytes"},
      {"trailing after rows", Rec({}, "x"), kColumnsAt, "1 trailing bytes"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    RowBatch b;
    Status s = DecodeRowBatch(c.payload, kOrigin, &b);
    ASSERT_TRUE(s.IsCorruption()) << s.ToString();
    const std::string prefix = kOrigin + ": row batch byte " + std::to_string(c.byte) + ": ";
    EXPECT_EQ(s.message().rfind(prefix, 0), 0u) << s.message();
    EXPECT_NE(s.message().find(c.says), std::string::npos) << s.message();
    DecodedRecord rec;
    EXPECT_TRUE(DecodeRecord(18, c.payload, kOrigin, &rec).IsCorruption());
  }
}

TEST(RowBatch, TheSameRecordWithMetadataAndEveryTypeDecodes) {
  // The well-formed base of the table above decodes, so each case fails for its own field.
  const std::string meta = Offsets({0, 1, 3}) + "abc";
  const std::string p = Head(2, 2, 2, 1) + kRows + meta + Col("i", 1, kAllValid, kInts) +
                        Col("t", 5, Valid(1, 0), Offsets({0, 2, 2}) + Offsets({0, 1, 3}) + "abc");
  RowBatch b;
  Status s = DecodeRowBatch(p, kOrigin, &b);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(b.has_metadata);
  EXPECT_EQ(b.meta_blob.substr(b.meta_offsets[1], b.meta_offsets[2] - b.meta_offsets[1]), "bc");
  EXPECT_EQ(b.columns[1].tag(0, 1), "bc");
}

TEST(RowBatch, EveryTruncationIsCorruptionNamingTheRecord) {
  std::mt19937_64 rng(7);
  Batch b;
  b.cid = 3;
  b.dim = 2;
  b.rows = 3;
  b.ids = {1, 2, 1};
  b.vectors = {1, 2, 3, 4, 5, 6};
  b.has_metadata = true;
  b.meta_offsets = {0, 2, 2, 5};
  b.meta_blob = std::string("ab\0cd", 5);
  const AttrType types[] = {AttrType::kInt64, AttrType::kFloat64, AttrType::kBool, AttrType::kString, AttrType::kTags};
  for (AttrType t : types) {
    AttrColumn c = AttrColumn::Make(std::string("c_") + AttrTypeName(t), t);
    for (int r = 0; r < 3; ++r) {
      if (r == 1) {
        c.AppendNull();
        continue;
      }
      const std::string_view tags[] = {"é", ""};
      switch (t) {
        case AttrType::kInt64: c.AppendInt(-r); break;
        case AttrType::kFloat64: c.AppendFloat(r + 0.5); break;
        case AttrType::kBool: c.AppendBool(r == 0); break;
        case AttrType::kString: c.AppendString(r == 0 ? "日本" : ""); break;
        case AttrType::kTags: c.AppendTags(tags, r == 0 ? 2 : 0); break;
      }
    }
    b.columns.push_back(std::move(c));
  }
  const std::string payload = b.Encode();
  RowBatch out;
  ASSERT_TRUE(DecodeRowBatch(payload, kOrigin, &out).ok()) << DecodeRowBatch(payload, kOrigin, &out).ToString();
  for (size_t n = 0; n < payload.size(); ++n) {
    // A copy of exactly n bytes, so a read past it is a heap overflow under ASan.
    const std::string prefix = payload.substr(0, n);
    Status s = DecodeRowBatch(prefix, kOrigin, &out);
    ASSERT_TRUE(s.IsCorruption()) << n;
    EXPECT_EQ(s.message().rfind(kOrigin + ": row batch byte ", 0), 0u) << s.message();
  }
}

TEST(RowBatch, SizeCountsEveryByte) {
  // 24 head, 2 x (8 + 12) rows, 3 x 8 + 4 metadata, column "s": 2 + 1 + 1 + 1 + 2 valid + 3 x 8 + 2.
  AttrColumn s = AttrColumn::Make("s", AttrType::kString);
  s.AppendString("hi");
  s.AppendNull();
  EXPECT_EQ(RowBatchSize(3, 2, true, 4, {s}), 24u + 40 + 28 + 2 + 1 + 2 + 2 + 24 + 2);
  EXPECT_EQ(RowBatchSize(3, 2, false, 0, {}), 24u + 40);
}

}  // namespace
}  // namespace pomai::wal
