// The C ABI of attributes, filters and scans (docs/FILTERS.md): pomai_put_rows
// with Arrow-layout columns (validity bitmaps, sliced offsets), filtered
// search / count / delete, pomai_scan's Arrow C stream read by hand (formats,
// buffers, release), and every bad input naming its argument and storing
// nothing.
#include <cmath>
#include <cstring>

#include "capi/capi_test_util.h"

namespace {

using pomai::testing::Code;

// A status's code and message; frees it.
struct Outcome {
  int code;
  std::string message;
};
Outcome Take(pomai_status_t* s) {
  Outcome o{pomai_status_code(s), pomai_status_message(s)};
  pomai_status_free(s);
  return o;
}

class CFilter : public pomai::testing::U64DbTest {
 protected:
  // Rows 0..9: vector (i, 0, 0, 0); year 2000 + i (null for 3); lang "en"/"fr"
  // alternating (from a buffer whose offsets start at 5); tags {"a"} for odd
  // rows; flag i < 5.
  void Fill() {
    uint64_t ids[10];
    float vecs[40] = {};
    int64_t years[10];
    uint8_t flags[10];
    for (int i = 0; i < 10; ++i) {
      ids[i] = static_cast<uint64_t>(i);
      vecs[i * 4] = static_cast<float>(i);
      years[i] = i == 3 ? 12345 : 2000 + i;  // the null's slot holds garbage: the ABI zeroes it
      flags[i] = i < 5;
    }
    const uint8_t year_valid[2] = {0xF7, 0x03};  // row 3 null
    // lang: "xxxxx" then "en","fr",...: offsets start at 5 (an Arrow slice).
    std::string lang = "xxxxx";
    int64_t lang_off[11];
    lang_off[0] = 5;
    for (int i = 0; i < 10; ++i) {
      lang += i % 2 ? "fr" : "en";
      lang_off[i + 1] = static_cast<int64_t>(lang.size());
    }
    int64_t tag_lists[11];
    int64_t tag_off[6] = {0, 1, 2, 3, 4, 5};
    for (int i = 0, t = 0; i <= 10; ++i) {
      tag_lists[i] = t;
      if (i < 10 && i % 2) ++t;
    }
    const char tag_bytes[] = "aaaaa";
    const int64_t meta_off[11] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    const uint8_t meta[] = "0123456789";
    pomai_column_t cols[4] = {
        {sizeof(pomai_column_t), POMAI_ATTR_INT64, "year", year_valid, years, nullptr, nullptr},
        {sizeof(pomai_column_t), POMAI_ATTR_STRING, "lang", nullptr, lang.data(), lang_off, nullptr},
        {sizeof(pomai_column_t), POMAI_ATTR_TAGS, "tags", nullptr, tag_bytes, tag_lists, tag_off},
        {sizeof(pomai_column_t), POMAI_ATTR_BOOL, "flag", nullptr, flags, nullptr, nullptr},
    };
    pomai_rows_t rows = {sizeof(pomai_rows_t), 4, 10, ids, vecs, meta_off, meta, cols, 4};
    ASSERT_EQ(Code(pomai_put_rows(db_, &rows)), 0);
  }

  uint64_t CountWhere(const char* expr) {
    pomai_filter_t f = {sizeof(pomai_filter_t), expr, nullptr, 0};
    uint64_t n = 0;
    const Outcome o = Take(pomai_count_where(db_, &f, &n));
    EXPECT_EQ(o.code, 0) << o.message;
    return n;
  }
};

TEST_F(CFilter, PutRowsThenCountSearchAndDeleteByFilter) {
  Fill();
  EXPECT_EQ(CountWhere("year >= 2005"), 5u);
  EXPECT_EQ(CountWhere("year IS NULL"), 1u);
  EXPECT_EQ(CountWhere("lang = 'fr' AND tags CONTAINS 'a'"), 5u);
  EXPECT_EQ(CountWhere("flag AND NOT (lang = 'en')"), 2u);
  EXPECT_EQ(CountWhere(""), 10u);
  for (bool frozen : {false, true}) {
    if (frozen) ASSERT_EQ(Code(pomai_freeze(db_)), 0);
    // One query filtered by text, one by an id allow-list, in one batch.
    const float q[4] = {1, 0, 0, 0};
    const uint64_t allow[3] = {2, 4, 77};
    pomai_query_t qs[2] = {Query(q, 3), Query(q, 3)};
    qs[0].filter_expression = "lang = 'en'";
    qs[1].filter_ids = allow;
    qs[1].filter_id_count = 3;
    pomai_search_results_t* r = nullptr;
    ASSERT_EQ(Code(pomai_search_batch(db_, qs, 2, &r)), 0);
    ASSERT_EQ(r[0].count, 3u);
    EXPECT_EQ(r[0].ids[0], 8u);  // IP with (1,0,0,0): the largest even i
    ASSERT_EQ(r[1].count, 2u);
    EXPECT_EQ(r[1].ids[0], 4u);
    EXPECT_EQ(r[1].ids[1], 2u);
    pomai_search_batch_free(r, 2);
  }
  pomai_filter_t f = {sizeof(pomai_filter_t), "year < 2004", nullptr, 0};
  uint64_t deleted = 0;
  ASSERT_EQ(Code(pomai_delete_where(db_, &f, &deleted)), 0);
  EXPECT_EQ(deleted, 3u);  // 0, 1, 2 (3 is null)
  uint64_t n = 0;
  ASSERT_EQ(Code(pomai_count(db_, &n)), 0);
  EXPECT_EQ(n, 7u);
  char* json = nullptr;
  ASSERT_EQ(Code(pomai_schema_json(db_, &json)), 0);
  EXPECT_STREQ(json,
               "{\n  \"columns\": [\n    {\n      \"name\": \"flag\",\n      \"type\": \"bool\"\n    },\n    {\n      "
               "\"name\": \"lang\",\n      \"type\": \"string\"\n    },\n    {\n      \"name\": \"tags\",\n      "
               "\"type\": \"tags\"\n    },\n    {\n      \"name\": \"year\",\n      \"type\": \"int64\"\n    }\n  ]\n}");
  pomai_free(json);
}

// The stream's batches, read by hand as a consumer of the C Data Interface would.
TEST_F(CFilter, ScanStreamsArrowBatchesInIdOrder) {
  Fill();
  const char* cols[] = {"year", "tags", "flag"};
  pomai_filter_t f = {sizeof(pomai_filter_t), "id >= 2", nullptr, 0};
  pomai_scan_options_t o = {sizeof(o), POMAI_SCAN_VECTORS | POMAI_SCAN_METADATA, &f, cols, 3, 4};
  ArrowArrayStream stream;
  ASSERT_EQ(Code(pomai_scan(db_, &o, &stream)), 0);
  ArrowSchema schema;
  ASSERT_EQ(stream.get_schema(&stream, &schema), 0);
  ASSERT_EQ(schema.n_children, 6);
  const char* want[][2] = {{"id", "L"}, {"vector", "+w:4"}, {"metadata", "Z"},
                           {"year", "l"}, {"tags", "+L"}, {"flag", "b"}};
  for (int c = 0; c < 6; ++c) {
    EXPECT_STREQ(schema.children[c]->name, want[c][0]);
    EXPECT_STREQ(schema.children[c]->format, want[c][1]);
  }
  EXPECT_STREQ(schema.children[4]->children[0]->format, "U");
  schema.release(&schema);
  EXPECT_EQ(schema.release, nullptr);
  uint64_t next_id = 2;
  for (;;) {
    ArrowArray a;
    ASSERT_EQ(stream.get_next(&stream, &a), 0);
    if (a.release == nullptr) break;  // the end
    ASSERT_LE(a.length, 4);
    const auto* ids = static_cast<const uint64_t*>(a.children[0]->buffers[1]);
    const auto* vec = static_cast<const float*>(a.children[1]->children[0]->buffers[1]);
    const auto* meta_off = static_cast<const int64_t*>(a.children[2]->buffers[1]);
    const auto* meta = static_cast<const char*>(a.children[2]->buffers[2]);
    const ArrowArray* year = a.children[3];
    const auto* years = static_cast<const int64_t*>(year->buffers[1]);
    const auto* year_valid = static_cast<const uint8_t*>(year->buffers[0]);
    const auto* flag_bits = static_cast<const uint8_t*>(a.children[5]->buffers[1]);
    const auto* tag_lists = static_cast<const int64_t*>(a.children[4]->buffers[1]);
    for (int64_t j = 0; j < a.length; ++j, ++next_id) {
      EXPECT_EQ(ids[j], next_id);
      EXPECT_EQ(vec[j * 4], static_cast<float>(next_id));
      EXPECT_EQ(std::string(meta + meta_off[j], meta_off[j + 1] - meta_off[j]), std::to_string(next_id));
      const bool valid = year_valid == nullptr || ((year_valid[j / 8] >> (j % 8)) & 1);
      EXPECT_EQ(valid, next_id != 3);
      if (valid) EXPECT_EQ(years[j], static_cast<int64_t>(2000 + next_id));
      EXPECT_EQ((flag_bits[j / 8] >> (j % 8)) & 1, next_id < 5 ? 1 : 0);
      EXPECT_EQ(tag_lists[j + 1] - tag_lists[j], next_id % 2 ? 1 : 0);
    }
    // A consumer may move a child out and release it on its own first.
    ArrowArray moved = *a.children[3];
    a.children[3]->release = nullptr;
    moved.release(&moved);
    a.release(&a);
  }
  EXPECT_EQ(next_id, 10u);
  stream.release(&stream);
  EXPECT_EQ(stream.release, nullptr);
}

TEST_F(CFilter, AStreamAfterCloseFailsWithClosedAndReleasesCleanly) {
  Fill();
  ArrowArrayStream stream;
  ASSERT_EQ(Code(pomai_scan(db_, nullptr, &stream)), 0);
  Reopen();  // closes the handle the stream was made on
  ArrowArray a;
  EXPECT_NE(stream.get_next(&stream, &a), 0);
  EXPECT_EQ(a.release, nullptr);
  ASSERT_NE(stream.get_last_error(&stream), nullptr);
  EXPECT_NE(std::string(stream.get_last_error(&stream)).find("pomai status 12: "), std::string::npos)
      << stream.get_last_error(&stream);
  stream.release(&stream);
}

// Bad inputs: INVALID_ARGUMENT naming the argument, and nothing stored.
TEST_F(CFilter, BadRowsColumnsAndFiltersAreRefusedNamingTheArgument) {
  Fill();
  const uint64_t id = 100;
  const float v[4] = {1, 2, 3, 4};
  const int64_t one = 1;
  const double nan = std::nan("");
  const int64_t off_bad[2] = {3, 1};
  const int64_t off_neg[2] = {-1, 0};
  const char bad_utf8[] = "\xff";
  const int64_t off_utf8[2] = {0, 1};
  auto col = [](uint32_t type, const char* name, const void* values, const int64_t* offsets = nullptr) {
    return pomai_column_t{sizeof(pomai_column_t), type, name, nullptr, values, offsets, nullptr};
  };
  struct Case {
    const char* what;
    pomai_column_t column;
    const char* fragment;
  };
  const Case cases[] = {
      {"unknown type", col(9, "x", &one), ".type is 9"},
      {"NULL name", col(POMAI_ATTR_INT64, nullptr, &one), ".name is NULL"},
      {"NULL values", col(POMAI_ATTR_INT64, "x", nullptr), ".values is NULL"},
      {"reserved name", col(POMAI_ATTR_INT64, "id", &one), "'id' is reserved"},
      {"empty name", col(POMAI_ATTR_INT64, "", &one), "column names are 1 to 255 bytes"},
      {"NaN", col(POMAI_ATTR_FLOAT64, "x", &nan), "NaN"},
      {"type conflict", col(POMAI_ATTR_STRING, "year", "ab", off_utf8), "'year' is int64"},
      {"decreasing offsets", col(POMAI_ATTR_STRING, "s", "abc", off_bad), "decrease"},
      {"negative offsets", col(POMAI_ATTR_STRING, "s", "abc", off_neg), "non-negative"},
      {"NULL offsets", col(POMAI_ATTR_STRING, "s", "abc"), ".offsets is NULL"},
      {"invalid UTF-8", col(POMAI_ATTR_STRING, "s", bad_utf8, off_utf8), "UTF-8"},
      {"NULL tag offsets", col(POMAI_ATTR_TAGS, "t", "abc", off_utf8), ".tag_offsets is NULL"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    pomai_rows_t rows = {sizeof(pomai_rows_t), 4, 1, &id, v, nullptr, nullptr, &c.column, 1};
    const Outcome o = Take(pomai_put_rows(db_, &rows));
    EXPECT_EQ(o.code, POMAI_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(o.message.find(c.fragment), std::string::npos) << o.message;
  }
  const pomai_column_t good = col(POMAI_ATTR_INT64, "x", &one);
  const pomai_column_t twice[2] = {good, good};
  pomai_rows_t dup = {sizeof(pomai_rows_t), 4, 1, &id, v, nullptr, nullptr, twice, 2};
  Outcome s = Take(pomai_put_rows(db_, &dup));
  EXPECT_NE(s.message.find("appears twice"), std::string::npos) << s.message;
  pomai_rows_t short_rows = {16, 4, 1, &id, v, nullptr, nullptr, nullptr, 0};
  s = Take(pomai_put_rows(db_, &short_rows));
  EXPECT_NE(s.message.find("struct_size is too small"), std::string::npos) << s.message;
  pomai_rows_t no_cols = {sizeof(pomai_rows_t), 4, 1, &id, v, nullptr, nullptr, nullptr, 2};
  s = Take(pomai_put_rows(db_, &no_cols));
  EXPECT_NE(s.message.find("columns is NULL"), std::string::npos) << s.message;
  EXPECT_EQ(Code(pomai_put_rows(db_, nullptr)), POMAI_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(CountWhere(""), 10u);  // nothing was stored
  // Filters.
  pomai_filter_t f = {sizeof(pomai_filter_t), nullptr, nullptr, 5};
  uint64_t n = 0;
  s = Take(pomai_count_where(db_, &f, &n));
  EXPECT_NE(s.message.find("filter->ids is NULL but id_count is 5"), std::string::npos) << s.message;
  f = {sizeof(pomai_filter_t), "year = ", nullptr, 0};
  s = Take(pomai_count_where(db_, &f, &n));
  EXPECT_EQ(s.code, POMAI_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(s.message.find("at 7"), std::string::npos) << s.message;
  s = Take(pomai_delete_where(db_, nullptr, &n));
  EXPECT_NE(s.message.find("filter is NULL"), std::string::npos) << s.message;
  // Scans.
  pomai_scan_options_t o = {sizeof(o), 8, nullptr, nullptr, 0, 0};
  ArrowArrayStream stream;
  s = Take(pomai_scan(db_, &o, &stream));
  EXPECT_NE(s.message.find("flags is 8"), std::string::npos) << s.message;
  EXPECT_EQ(stream.release, nullptr);
  const char* nope[] = {"nope"};
  o = {sizeof(o), 0, nullptr, nope, 1, 0};
  s = Take(pomai_scan(db_, &o, &stream));
  EXPECT_NE(s.message.find("no column 'nope'"), std::string::npos) << s.message;
  EXPECT_EQ(Code(pomai_scan(db_, nullptr, nullptr)), POMAI_STATUS_INVALID_ARGUMENT);
  // update_attributes of a missing id changes nothing.
  const uint64_t ids[2] = {1, 999};
  const int64_t years[2] = {1, 2};
  const pomai_column_t y = col(POMAI_ATTR_INT64, "year", years);
  s = Take(pomai_update_attributes(db_, ids, 2, &y, 1));
  EXPECT_EQ(s.code, POMAI_STATUS_NOT_FOUND);
  EXPECT_NE(s.message.find("999"), std::string::npos) << s.message;
  EXPECT_EQ(CountWhere("year = 1"), 0u);
}

}  // namespace
