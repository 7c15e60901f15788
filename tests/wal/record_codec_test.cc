// wal/record_codec.h: the payloads of WAL records round-trip, and every
// malformed field is Corruption naming the record and the byte.
#include "wal/record_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "util/coding.h"

namespace pomai::wal {
namespace {

const std::string kOrigin = "wal-000001.log at offset 0";

std::string UserKey(const std::string& k) { return std::string(1, '\0') + k; }
// A row key of collection `cid`: 0x02 + BE64(cid) + key.
std::string EntryKey(uint64_t cid, const std::string& k) {
  std::string key(1, '\x02');
  for (int i = 0; i < 8; ++i) key.push_back(static_cast<char>(cid >> (56 - 8 * i)));
  return key + k;
}

// An attribute record of every type (names ascending, one row each).
std::vector<AttrColumn> RecordColumns() {
  std::vector<AttrColumn> c;
  c.push_back(AttrColumn::Make("b", AttrType::kBool));
  c.back().AppendBool(true);
  c.push_back(AttrColumn::Make("f", AttrType::kFloat64));
  c.back().AppendFloat(-0.5);
  c.push_back(AttrColumn::Make("i", AttrType::kInt64));
  c.back().AppendInt(-7);
  c.push_back(AttrColumn::Make("s", AttrType::kString));
  c.back().AppendString("d\xc3\xa9j\xc3\xa0");
  c.push_back(AttrColumn::Make("t", AttrType::kTags));
  const std::string_view tags[] = {"x", "", "yz"};
  c.back().AppendTags(tags, 3);
  return c;
}

struct Fixture {
  std::vector<float> v3 = {1.5f, -2.0f, 0.25f};
  std::string record = EncodeAttrRecord(RecordColumns());
  std::string entry2 = EntryKey(7, "k2");
  std::string user = UserKey("doc-1");
  std::string config = "\x01" "docs";
  std::string entry = EntryKey(7, "k");
  std::vector<RecordOp> ops = {
      {.kind = OpKind::kPutBytes, .key = user, .bytes = "value"},
      {.kind = OpKind::kPutBytes, .key = config, .bytes = std::string_view("cfg\0x", 5)},
      {.kind = OpKind::kPutVector, .key = entry, .bytes = "meta", .metric = 2, .has_metadata = true, .dim = 3,
       .vector = v3.data()},
      {.kind = OpKind::kPutVector, .key = entry2, .bytes = "m", .metric = 0, .has_metadata = true, .has_attrs = true,
       .attrs = record, .dim = 3, .vector = v3.data()},
      {.kind = OpKind::kDeleteKey, .key = user, .bytes = {}},
      {.kind = OpKind::kPutRow, .key = {}, .bytes = "", .cid = 0, .id = 0xFFFFFFFFFFFFFFFFull, .dim = 3,
       .vector = v3.data()},
      {.kind = OpKind::kDeleteRow, .key = {}, .bytes = {}, .cid = 9, .id = 42},
  };
};

TEST(RecordCodec, WriteBatchRoundTripsEveryOpKind) {
  Fixture f;
  const std::string payload = EncodeWriteBatch(f.ops.data(), f.ops.size());
  EXPECT_EQ(payload.size(), WriteBatchSize(f.ops.data(), f.ops.size()));
  std::vector<RecordOp> out;
  ASSERT_TRUE(DecodeWriteBatch(payload, kOrigin, &out).ok());
  ASSERT_EQ(out.size(), f.ops.size());
  for (size_t i = 0; i < out.size(); ++i) {
    SCOPED_TRACE(OpKindName(f.ops[i].kind));
    EXPECT_EQ(out[i].kind, f.ops[i].kind);
    EXPECT_EQ(out[i].key, f.ops[i].key);
    EXPECT_EQ(out[i].bytes, f.ops[i].bytes);
    if (out[i].kind == OpKind::kPutVector || out[i].kind == OpKind::kPutRow) {
      ASSERT_EQ(out[i].dim, 3u);
      EXPECT_EQ(std::memcmp(out[i].vector, f.v3.data(), 12), 0);
    }
    if (out[i].kind == OpKind::kPutVector) {
      EXPECT_EQ(out[i].metric, f.ops[i].metric);
      EXPECT_EQ(out[i].has_metadata, f.ops[i].has_metadata);
      EXPECT_EQ(out[i].has_attrs, f.ops[i].has_attrs);
      EXPECT_EQ(out[i].attrs, f.ops[i].attrs);
    }
    if (out[i].kind == OpKind::kPutRow || out[i].kind == OpKind::kDeleteRow) {
      EXPECT_EQ(out[i].cid, f.ops[i].cid);
      EXPECT_EQ(out[i].id, f.ops[i].id);
    }
  }
  // Decode then encode gives the same bytes.
  EXPECT_EQ(EncodeWriteBatch(out.data(), out.size()), payload);
  DecodedRecord rec;
  ASSERT_TRUE(DecodeRecord(static_cast<uint8_t>(RecordType::kWriteBatch), payload, kOrigin, &rec).ok());
  EXPECT_EQ(rec.type, RecordType::kWriteBatch);
  EXPECT_EQ(rec.ops.size(), f.ops.size());
}

TEST(RecordCodec, EveryTruncationIsCorruptionNamingTheRecord) {
  Fixture f;
  const std::string payload = EncodeWriteBatch(f.ops.data(), f.ops.size());
  std::vector<RecordOp> out;
  for (size_t n = 0; n < payload.size(); ++n) {
    Status s = DecodeWriteBatch(std::string_view(payload.data(), n), kOrigin, &out);
    ASSERT_TRUE(s.IsCorruption()) << n;
    EXPECT_EQ(s.message().rfind(kOrigin + ": write batch byte ", 0), 0u) << s.message();
  }
  Status s = DecodeWriteBatch(payload + "x", kOrigin, &out);
  ASSERT_TRUE(s.IsCorruption());
  EXPECT_NE(s.message().find("trailing bytes"), std::string::npos) << s.message();
}

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
std::string Str(const std::string& s) { return U32(static_cast<uint32_t>(s.size())) + s; }
std::string Floats(std::vector<float> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}
// A batch of one op whose bytes after the kind are `body`.
std::string OneOp(OpKind kind, const std::string& body) { return U32(1) + static_cast<char>(kind) + body; }

TEST(RecordCodec, MalformedFieldsAreCorruptionSayingWhat) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    const char* name;
    std::string payload;
    const char* says;
  } cases[] = {
      {"no ops", U32(0), "no ops"},
      {"unknown op", OneOp(static_cast<OpKind>(9), ""), "unknown op 9"},
      {"empty key", OneOp(OpKind::kDeleteKey, Str("")), "empty"},
      {"unknown namespace", OneOp(OpKind::kDeleteKey, Str("\x07k")), "unknown key namespace"},
      {"user key empty", OneOp(OpKind::kDeleteKey, Str(std::string(1, '\0'))), "user key length"},
      {"user key too long", OneOp(OpKind::kDeleteKey, Str(UserKey(std::string(65536, 'k')))), "user key length"},
      {"config name too long", OneOp(OpKind::kDeleteKey, Str("\x01" + std::string(256, 'n'))), "index name"},
      {"row key without a whole cid", OneOp(OpKind::kDeleteKey, Str(std::string("\x02\0\0\0\0\0\0\x07", 8))), "collection row key"},
      {"row key without key", OneOp(OpKind::kDeleteKey, Str(EntryKey(7, ""))), "collection row key"},
      {"bytes under an entry", OneOp(OpKind::kPutBytes, Str(EntryKey(7, "k")) + Str("v")), "bytes value under"},
      {"vector under a config", OneOp(OpKind::kPutVector, Str("\x01" "docs") + "\x00\x00" + Str("") + U32(1) + Floats({1})),
       "vector under"},
      {"metric 3", OneOp(OpKind::kPutVector, Str(UserKey("k")) + std::string("\x03\x00", 2) + Str("") + U32(1) + Floats({1})),
       "bad metric"},
      {"flags 4", OneOp(OpKind::kPutVector, Str(UserKey("k")) + std::string("\x00\x04", 2) + Str("") + U32(1) + Floats({1})),
       "bad metric or flags"},
      {"attributes on a record", OneOp(OpKind::kPutVector, Str(UserKey("k")) + std::string("\x00\x02", 2) + Str("") +
                                                              Str(EncodeAttrRecord(RecordColumns())) + U32(1) + Floats({1})),
       "attributes on a vector outside an index"},
      {"attribute record short", OneOp(OpKind::kPutVector, Str(EntryKey(7, "k")) + std::string("\x00\x02", 2) + Str("") +
                                                               U32(100) + "ab"),
       "truncated attribute record"},
      {"attribute record empty", OneOp(OpKind::kPutVector, Str(EntryKey(7, "k")) + std::string("\x00\x02", 2) + Str("") +
                                                               Str(std::string(2, '\0')) + U32(1) + Floats({1})),
       "attribute record byte 0: 0 columns"},
      {"vector dim 0", OneOp(OpKind::kPutVector, Str(UserKey("k")) + std::string(2, '\0') + Str("") + U32(0)), "dim 0 is not in"},
      {"vector dim 65536", OneOp(OpKind::kPutVector, Str(UserKey("k")) + std::string(2, '\0') + Str("") + U32(65536)),
       "dim 65536 is not in"},
      {"vector NaN", OneOp(OpKind::kPutVector, Str(UserKey("k")) + std::string(2, '\0') + Str("") + U32(2) + Floats({1, nan})),
       "non-finite"},
      {"row dim 0", OneOp(OpKind::kPutRow, U64(0) + U64(1) + U32(0) + Str("")), "dim 0 is not in"},
      {"row infinity", OneOp(OpKind::kPutRow, U64(0) + U64(1) + U32(1) + Str("") + Floats({inf})), "non-finite"},
      {"row short", OneOp(OpKind::kPutRow, U64(0) + U64(1) + U32(2) + Str("") + Floats({1})), "truncated vector"},
      {"delete row short", OneOp(OpKind::kDeleteRow, U64(0) + "1234"), "truncated row id"},
      {"value short", OneOp(OpKind::kPutBytes, Str(UserKey("k")) + U32(10) + "abc"), "truncated value"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<RecordOp> out;
    Status s = DecodeWriteBatch(c.payload, kOrigin, &out);
    ASSERT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_EQ(s.message().rfind(kOrigin + ": write batch byte ", 0), 0u) << s.message();
    EXPECT_NE(s.message().find(c.says), std::string::npos) << s.message();
  }
}

TEST(RecordCodec, AttributeRecordsRoundTripAndRefuseWhatNoWriteMakes) {
  const std::vector<AttrColumn> in = RecordColumns();
  const std::string record = EncodeAttrRecord(in);
  std::vector<AttrColumn> out;
  ASSERT_TRUE(DecodeAttrRecord(record, kOrigin, &out).ok());
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    SCOPED_TRACE(in[i].name);
    EXPECT_EQ(out[i].name, in[i].name);
    EXPECT_EQ(out[i].type, in[i].type);
    EXPECT_TRUE(out[i].valid.empty());
    EXPECT_EQ(out[i].ints, in[i].ints);
    EXPECT_EQ(out[i].floats, in[i].floats);
    EXPECT_EQ(out[i].bools, in[i].bools);
    EXPECT_EQ(out[i].offsets, in[i].offsets);
    EXPECT_EQ(out[i].tag_offsets, in[i].tag_offsets);
    EXPECT_EQ(out[i].bytes, in[i].bytes);
  }
  for (size_t n = 0; n < record.size(); ++n) {  // every truncation
    Status s = DecodeAttrRecord(record.substr(0, n), kOrigin, &out);
    ASSERT_TRUE(s.IsCorruption()) << n;
    EXPECT_EQ(s.message().rfind(kOrigin + ": attribute record byte ", 0), 0u) << s.message();
  }
  auto refused = [&](std::vector<AttrColumn> cols, const std::string& says) {
    Status s = DecodeAttrRecord(EncodeAttrRecord(cols), kOrigin, &out);
    EXPECT_TRUE(s.IsCorruption()) << says;
    EXPECT_NE(s.message().find(says), std::string::npos) << s.message();
  };
  std::vector<AttrColumn> unsorted = in;
  std::swap(unsorted[0], unsorted[1]);
  refused(unsorted, "is not after");
  std::vector<AttrColumn> twice = {in[2], in[2]};
  refused(twice, "is not after");
  std::vector<AttrColumn> with_valid = {in[2]};
  with_valid[0].valid = {1};
  refused(with_valid, "has validity");
  std::vector<AttrColumn> bad_utf8 = {AttrColumn::Make("s", AttrType::kString)};
  bad_utf8[0].AppendString("\xff");
  refused(bad_utf8, "UTF-8");
  std::vector<AttrColumn> id = {AttrColumn::Make("id", AttrType::kInt64)};
  id[0].AppendInt(1);
  refused(id, "id");
  Status s = DecodeAttrRecord(record + "x", kOrigin, &out);
  EXPECT_NE(s.message().find("1 trailing bytes"), std::string::npos) << s.ToString();
}

TEST(RecordCodec, AttrRecordReaderGivesEveryValueAndStopsAtDamage) {
  const std::string record = EncodeAttrRecord(RecordColumns());
  AttrRecordReader reader(record);
  AttrValue a;
  std::vector<std::string> seen;
  while (reader.Next(&a)) {
    seen.emplace_back(a.name);
    switch (a.type) {
      case AttrType::kBool: EXPECT_TRUE(a.b); break;
      case AttrType::kFloat64: EXPECT_EQ(a.f, -0.5); break;
      case AttrType::kInt64: EXPECT_EQ(a.i, -7); break;
      case AttrType::kString: EXPECT_EQ(a.str, "d\xc3\xa9j\xc3\xa0"); break;
      case AttrType::kTags:
        ASSERT_EQ(a.tags, 3u);
        EXPECT_EQ(a.Tag(0), "x");
        EXPECT_EQ(a.Tag(1), "");
        EXPECT_EQ(a.Tag(2), "yz");
        break;
    }
  }
  EXPECT_TRUE(reader.status().ok()) << reader.status().ToString();
  EXPECT_EQ(seen, (std::vector<std::string>{"b", "f", "i", "s", "t"}));
  for (size_t n = 0; n < record.size(); ++n) {  // every truncation stops with Corruption
    AttrRecordReader r(std::string_view(record.data(), n));
    while (r.Next(&a)) {
    }
    EXPECT_TRUE(r.status().IsCorruption()) << n;
  }
  const std::string longer_record = record + "z";  // the reader views it: it must outlive the reader
  AttrRecordReader longer(longer_record);
  while (longer.Next(&a)) {
  }
  EXPECT_TRUE(longer.status().IsCorruption());
}

TEST(RecordCodec, TheDefaultCollectionsEmptyConfigurationNameIsAKey) {
  EXPECT_EQ(BadInternalKey("\x01"), nullptr);
  EXPECT_NE(BadInternalKey(std::string("\x01" "a\0b", 4)), nullptr);
  EXPECT_EQ(BadInternalKey(UserKey(std::string(65535, 'k'))), nullptr);
  EXPECT_EQ(BadInternalKey(EntryKey(0, std::string(65535, 'k'))), nullptr);
  EXPECT_NE(BadInternalKey(EntryKey(0, std::string(65536, 'k'))), nullptr);
}

TEST(RecordCodec, RowArrayRoundTripsAndChecksItsSize) {
  const uint64_t ids[2] = {5, 6};
  const float rows[4] = {1, 2, 3, 4};
  uint8_t head[kRowArrayHeadSize];
  EncodeRowArrayHead(7, 2, 2, head);
  std::string payload(reinterpret_cast<const char*>(head), sizeof(head));
  payload.append(reinterpret_cast<const char*>(ids), sizeof(ids));
  payload.append(reinterpret_cast<const char*>(rows), sizeof(rows));
  DecodedRecord rec;
  ASSERT_TRUE(DecodeRecord(static_cast<uint8_t>(RecordType::kRowArray), payload, kOrigin, &rec).ok());
  EXPECT_EQ(rec.type, RecordType::kRowArray);
  EXPECT_EQ(rec.array.cid, 7u);
  EXPECT_EQ(rec.array.dim, 2u);
  EXPECT_EQ(rec.array.rows, 2u);
  EXPECT_EQ(DecodeFixed64(rec.array.ids + 8), 6u);
  EXPECT_EQ(std::memcmp(rec.array.vectors, rows, sizeof(rows)), 0);

  RowArray a;
  for (size_t n = 0; n < payload.size(); ++n)
    EXPECT_TRUE(DecodeRowArray(payload.substr(0, n), kOrigin, &a).IsCorruption()) << n;
  EXPECT_TRUE(DecodeRowArray(payload + "xxxx", kOrigin, &a).IsCorruption());
  std::string no_rows(reinterpret_cast<const char*>(head), sizeof(head));
  EncodeRowArrayHead(7, 2, 0, reinterpret_cast<uint8_t*>(no_rows.data()));
  EXPECT_TRUE(DecodeRowArray(no_rows, kOrigin, &a).IsCorruption());
  std::string bad_dim = payload;
  EncodeFixed32(reinterpret_cast<uint8_t*>(bad_dim.data()) + 8, 0);
  Status s = DecodeRowArray(bad_dim, kOrigin, &a);
  ASSERT_TRUE(s.IsCorruption());
  EXPECT_NE(s.message().find("dim 0 is not in 1..65535"), std::string::npos) << s.message();
  std::string nan = payload;
  const float q = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(nan.data() + nan.size() - 4, &q, 4);
  s = DecodeRowArray(nan, kOrigin, &a);
  ASSERT_TRUE(s.IsCorruption());
  EXPECT_NE(s.message().find("row 1 has a non-finite"), std::string::npos) << s.message();
}

TEST(RecordCodec, RecordsOfFormatVersionOneAreNamed) {
  DecodedRecord rec;
  for (uint8_t type : {1, 2, 0x4B}) {
    Status s = DecodeRecord(type, "anything", kOrigin, &rec);
    ASSERT_TRUE(s.IsCorruption());
    EXPECT_EQ(s.message(), kOrigin + ": WAL record type " + std::to_string(type) + " is of database format version 1");
  }
  Status s = DecodeRecord(99, "", kOrigin, &rec);
  ASSERT_TRUE(s.IsCorruption());
  EXPECT_EQ(s.message(), kOrigin + ": unknown WAL record type 99");
}

}  // namespace
}  // namespace pomai::wal
