// pomai-inspect over a segment with attribute columns (lib/inspect and the
// tool's text face, tools/render_text.cc): the attribute sections and
// columns in the JSON report and the text, and damage in them reported by
// `segment` and `verify` with the file and the offset.
#include <gtest/gtest.h>

#include <map>

#include "file_test_util.h"
#include "inspect/inspect.h"
#include "render_text.h"
#include "support/temp_dir.h"

namespace pomai::segment {
namespace {

using pomai::testing::TempDir;
using namespace testing;

class InspectAttributes : public ::testing::Test {
 protected:
  void SetUp() override {
    columns_.push_back(AttrColumn::Make("year", AttrType::kInt64));
    columns_.push_back(AttrColumn::Make("genre", AttrType::kString));
    columns_.push_back(AttrColumn::Make("labels", AttrType::kTags));
    columns_.push_back(AttrColumn::Make("gone", AttrType::kBool));
    const std::string_view tags[] = {"x", "y", "x"};
    for (int r = 0; r < 5; ++r) {
      columns_[0].AppendInt(1990 + r);
      if (r == 2) {
        columns_[1].AppendNull();
      } else {
        columns_[1].AppendString(r % 2 ? "rock" : "jazz");
      }
      columns_[2].AppendTags(tags, r % 4);
      columns_[3].AppendNull();
    }
    data_ = MakeU64(5, 5, 3, 1);
    SegmentWriter w;
    U64Rows u = data_.Rows();
    u.columns = &columns_;
    w.AddU64Group(u);
    ASSERT_TRUE(w.Finish(Env::Default(), path_, 1).ok());
  }
  // Offset of (kind, column) of group 0 in the file.
  uint64_t SectionOffset(SectionKind kind, uint16_t column) {
    auto f = SegmentFile::Open(Env::Default(), path_);
    EXPECT_TRUE(f.ok());
    for (const SegmentFile::SectionRef& s : (*f)->sections()) {
      if (s.kind == kind && s.column == column) return s.offset;
    }
    ADD_FAILURE() << "no section";
    return 0;
  }

  TempDir dir_;
  const std::string path_ = dir_.file("seg-000001.pseg");
  std::vector<AttrColumn> columns_;
  U64Data data_;
};

TEST_F(InspectAttributes, SectionsAndColumnsAreShown) {
  inspect::Report r = inspect::InspectSegment(path_, {});
  ASSERT_EQ(r.exit_code, 0) << r.json.Dump();
  // Sections: 168 once (no column), each column's kinds with their column.
  std::vector<std::string> attr_sections;
  for (const inspect::Json& s : r.json["sections"].items()) {
    if (s["kind"].AsUint() < 168) {
      EXPECT_TRUE(s["column"].is_null());
      continue;
    }
    attr_sections.push_back(s["name"].AsString() + "/" + s["column"].Text());
    EXPECT_TRUE(s["crc_ok"].AsBool());
  }
  // Columns by name: genre 0, gone 1, labels 2, year 3.
  EXPECT_EQ(attr_sections, (std::vector<std::string>{
                               "attr columns/-", "attr valid/0", "attr values/0", "attr dict offsets/0",
                               "attr dict bytes/0", "attr valid/1", "attr values/1", "attr values/2",
                               "attr tag offsets/2", "attr dict offsets/2", "attr dict bytes/2", "attr values/3"}));
  const inspect::Json& g = r.json["kv"]["vector_groups"].items().at(0);
  std::vector<std::string> attrs;
  for (const inspect::Json& a : g["attributes"].items()) {
    attrs.push_back(a["name"].AsString() + " " + a["type"].AsString() + " " + a["nulls"].Text() + " " +
                    a["dictionary"].Text());
  }
  EXPECT_EQ(attrs, (std::vector<std::string>{"genre string 1 2", "gone bool 5 -", "labels tags 0 2", "year int64 0 -"}));
  const std::string text = inspect::RenderText(r.json);
  EXPECT_NE(text.find("attribute \"genre\" string: 1 nulls, dictionary of 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("attribute \"gone\" bool: 5 nulls\n"), std::string::npos) << text;
  EXPECT_NE(text.find(" attr tag offsets       0.2 "), std::string::npos) << text;

  inspect::Report v = inspect::Verify(path_, {});
  ASSERT_EQ(v.exit_code, 0) << v.json.Dump();
  EXPECT_NE(v.json.Dump().find("4 attribute columns"), std::string::npos) << v.json.Dump();
}

TEST(InspectIndexAttributes, DumpShowsEachEntrysAttributes) {
  TempDir dir;
  const std::string path = dir.file("seg-000002.pseg");
  FileData data = MixedFile(2, 3, false);  // rows r100 (n), r101 (n, s) carry attributes; r102 none
  ASSERT_TRUE(data.Write(Env::Default(), path, 2).ok());
  inspect::InspectOptions all_rows;
  all_rows.limit = 0;
  inspect::Report r = inspect::Dump(path, all_rows);
  ASSERT_EQ(r.exit_code, 0) << r.json.Dump();
  std::map<std::string, std::string> shown;  // key suffix -> attributes
  for (const inspect::Json& e : r.json["entries"].items()) {
    if (e["kind"].AsString() != "vector" || e["attributes"].is_null()) continue;
    shown[e["key"].AsString()] = e["attributes"].Dump();
  }
  ASSERT_EQ(shown.size(), 2u) << r.json.Dump();
  std::string all;
  for (const auto& [key, attrs] : shown) all += attrs + ";";
  EXPECT_NE(all.find("\"n\": 0"), std::string::npos) << all;
  EXPECT_NE(all.find("\"s\": \"s101\""), std::string::npos) << all;
}

TEST_F(InspectAttributes, DamageIsReportedWithFileAndOffset) {
  struct Case {
    SectionKind kind;
    uint16_t column;
    uint64_t byte;  // within the section
  };
  // A code of "labels", a dictionary byte of "genre", the first name's first
  // byte ("genre" -> "Genre", still in name order): only the CRCs see them.
  for (const Case& c : {Case{SectionKind::kAttrValues, 2, 1}, Case{SectionKind::kAttrDictBytes, 0, 1},
                        Case{SectionKind::kAttrColumns, 0, attrdir::kHeadSize + attrdir::kRecordHead}}) {
    const uint64_t offset = SectionOffset(c.kind, c.column);
    const std::string good = ReadAll(path_);
    std::string bad = good;
    bad[offset + c.byte] ^= 0x20;
    WriteAll(path_, bad);
    inspect::Report r = inspect::InspectSegment(path_, {});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.json["error"]["file"].AsString(), path_);
    EXPECT_EQ(r.json["error"]["offset"].AsUint(), offset) << r.json.Dump();
    EXPECT_NE(r.json["error"]["message"].AsString().find("checksum mismatch in " +
                                                         std::string(SectionKindName(c.kind))), std::string::npos)
        << r.json.Dump();
    inspect::Report v = inspect::Verify(path_, {});
    EXPECT_EQ(v.exit_code, 1);
    ASSERT_EQ(v.json["problems"].items().size(), 1u) << v.json.Dump();
    EXPECT_EQ(v.json["problems"].items()[0]["file"].AsString(), path_);
    EXPECT_EQ(v.json["problems"].items()[0]["offset"].AsUint(), offset);
    WriteAll(path_, good);
  }
}

}  // namespace
}  // namespace pomai::segment
