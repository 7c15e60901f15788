// Helpers for the tests of the keyspace engine's default collection (u64 rows;
// docs/ENGINE.md 2.2, step 10): open a DB and its default collection, write
// and search rows, list the files of a directory by type, find a segment's u64
// group and a WAL's records, read StatsJson.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/filename.h"
#include "engine/db.h"
#include "segment/file.h"
#include "segment/format.h"
#include "util/env.h"
#include "util/status.h"
#include "wal/log_reader.h"

namespace pomai::testing {

inline engine::Options RowsKvOptions(const std::string& path) {
  engine::Options o;
  o.path = path;
  o.search_threads = 2;
  return o;
}

inline engine::DefaultCollectionOptions RowsCollection(uint32_t dim, uint32_t shards = 1,
                                                       simd::Metric metric = simd::Metric::kL2) {
  engine::DefaultCollectionOptions c;
  c.dim = dim;
  c.shards = shards;
  c.metric = metric;
  return c;
}

// DB::Open, then OpenDefaultCollection: the first failure of the two.
inline Result<std::unique_ptr<engine::DB>> TryOpenRows(const engine::Options& o,
                                                         const engine::DefaultCollectionOptions& c) {
  auto r = engine::DB::Open(o);
  if (!r.ok()) return r.status();
  std::unique_ptr<engine::DB> db = std::move(r).value();
  Status s = db->OpenDefaultCollection(c);
  if (!s.ok()) return s;
  return db;
}

// Same, expecting success (null, and a test failure, otherwise).
inline std::unique_ptr<engine::DB> OpenRows(const engine::Options& o, const engine::DefaultCollectionOptions& c) {
  auto r = TryOpenRows(o, c);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

inline Status PutRow(engine::DB* db, uint64_t id, const std::vector<float>& v, std::string_view meta = {}) {
  engine::WriteOp op;
  op.kind = engine::WriteOp::Kind::kPut;
  op.id = id;
  op.vector = v.data();
  op.metadata = meta;
  return db->Write(&op, 1);
}

inline Status DelRow(engine::DB* db, uint64_t id) {
  engine::WriteOp op;
  op.kind = engine::WriteOp::Kind::kDelete;
  op.id = id;
  return db->Write(&op, 1);
}

// One query with the open's deadline; `ef` 0 = the open's ef_search.
inline std::vector<engine::Hit> SearchRows(engine::DB* db, const float* q, uint32_t k, uint32_t ef = 0) {
  std::vector<std::vector<engine::Hit>> out;
  Status s = db->Search(q, 1, &k, 0, ef, &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out.empty() ? std::vector<engine::Hit>{} : out[0];
}

// The names of the files of `type` in `dir` (as filename.h parses them), sorted.
inline std::vector<std::string> FilesOfType(const std::string& dir, engine::files::FileType type) {
  std::vector<std::string> out;
  auto names = Env::Default()->ListDir(dir);
  EXPECT_TRUE(names.ok()) << names.status().ToString();
  if (!names.ok()) return out;
  for (const std::string& n : names.value()) {
    engine::files::FileType t;
    uint64_t number = 0;
    if (engine::files::ParseFileName(n, &t, &number) && t == type) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}
inline std::vector<std::string> SegmentFiles(const std::string& dir) {
  return FilesOfType(dir, engine::files::FileType::kSegment);
}
inline std::vector<std::string> WalFiles(const std::string& dir) {
  return FilesOfType(dir, engine::files::FileType::kLog);
}

// The index of the first u64 group of `seg` (the default collection's rows),
// or group_count() when it has none.
inline uint32_t U64Group(const segment::SegmentFile& seg) {
  for (uint32_t g = 0; g < seg.group_count(); ++g)
    if (seg.group(g).kind == segment::GroupKind::kU64) return g;
  return seg.group_count();
}

// The file offset of section (kind, group) of `seg`, or 0 when absent.
inline uint64_t SectionOffset(const segment::SegmentFile& seg, segment::SectionKind kind, uint32_t group) {
  for (const auto& ref : seg.sections())
    if (ref.kind == kind && ref.group == group) return ref.offset;
  return 0;
}

// A WAL record found by FindWalRecord.
struct WalRecordAt {
  std::string file;  // name in the directory
  uint64_t offset = 0;
  uint8_t type = 0;
  uint64_t payload_size = 0;
};

// The first record (WAL files in number order, records in file order) for
// which `want(type, payload)` holds.
inline bool FindWalRecord(const std::string& dir, const std::function<bool(uint8_t, std::string_view)>& want,
                          WalRecordAt* out) {
  for (const std::string& name : WalFiles(dir)) {
    std::string data;
    if (!ReadFileToString(Env::Default(), dir + "/" + name, &data).ok()) continue;
    wal::Reader reader(reinterpret_cast<const uint8_t*>(data.data()), data.size(), name);
    wal::Record rec;
    while (reader.Next(&rec)) {
      if (want(rec.type, rec.payload)) {
        out->file = name;
        out->offset = rec.offset;
        out->type = rec.type;
        out->payload_size = rec.payload.size();
        return true;
      }
    }
  }
  return false;
}

// ---- A small JSON reader for StatsJson (objects, arrays, strings without
// escapes beyond \" and \\, numbers, true, false, null).
struct Json {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string str;
  std::vector<Json> items;
  // An object's members: keys[i] names values[i] (two vectors: a vector of
  // an incomplete element type is allowed, a pair of one is not).
  std::vector<std::string> keys;
  std::vector<Json> values;

  bool is_null() const { return type == Type::kNull; }
  // The member `key` of an object; a null value when absent.
  const Json& operator[](const std::string& key) const {
    static const Json kNone;
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return values[i];
    return kNone;
  }
  bool Has(const std::string& key) const {
    for (const std::string& k : keys)
      if (k == key) return true;
    return false;
  }
  uint64_t u64() const { return static_cast<uint64_t>(number); }
};

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : s_(text) {}
  bool Parse(Json* out) {
    if (!Value(out)) return false;
    Skip();
    return pos_ == s_.size();
  }

 private:
  void Skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool Literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool String(std::string* out) {
    if (pos_ >= s_.size() || s_[pos_] != '"') return false;
    ++pos_;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;
      out->push_back(s_[pos_++]);
    }
    if (pos_ >= s_.size()) return false;
    ++pos_;
    return true;
  }
  bool Value(Json* out) {
    Skip();
    if (pos_ >= s_.size()) return false;
    const char c = s_[pos_];
    if (c == '{') {
      out->type = Json::Type::kObject;
      ++pos_;
      Skip();
      if (pos_ < s_.size() && s_[pos_] == '}') return ++pos_, true;
      for (;;) {
        Skip();
        std::string key;
        if (!String(&key)) return false;
        Skip();
        if (pos_ >= s_.size() || s_[pos_] != ':') return false;
        ++pos_;
        Json v;
        if (!Value(&v)) return false;
        out->keys.push_back(std::move(key));
        out->values.push_back(std::move(v));
        Skip();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == '}') return ++pos_, true;
        return false;
      }
    }
    if (c == '[') {
      out->type = Json::Type::kArray;
      ++pos_;
      Skip();
      if (pos_ < s_.size() && s_[pos_] == ']') return ++pos_, true;
      for (;;) {
        Json v;
        if (!Value(&v)) return false;
        out->items.push_back(std::move(v));
        Skip();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == ']') return ++pos_, true;
        return false;
      }
    }
    if (c == '"') {
      out->type = Json::Type::kString;
      return String(&out->str);
    }
    if (Literal("null")) return out->type = Json::Type::kNull, true;
    if (Literal("true")) return out->type = Json::Type::kBool, out->boolean = true, true;
    if (Literal("false")) return out->type = Json::Type::kBool, out->boolean = false, true;
    const std::string rest(s_.substr(pos_, 64));
    char* end = nullptr;
    out->number = std::strtod(rest.c_str(), &end);
    if (end == rest.c_str()) return false;
    out->type = Json::Type::kNumber;
    pos_ += static_cast<size_t>(end - rest.c_str());
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

// db->StatsJson() parsed; a test failure (and an empty object) when it fails.
inline Json Stats(engine::DB* db) {
  Json j;
  auto r = db->StatsJson();
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return j;
  EXPECT_TRUE(JsonParser(r.value()).Parse(&j)) << "StatsJson is not JSON: " << r.value();
  return j;
}

// The "graph" objects of every entry of stats["segment_files"] (null ones included).
inline std::vector<const Json*> SegmentGraphs(const Json& stats) {
  std::vector<const Json*> out;
  for (const Json& f : stats["segment_files"].items) out.push_back(&f["graph"]);
  return out;
}

}  // namespace pomai::testing
