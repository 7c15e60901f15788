// Helpers for the tests of the engine (lib/engine/db.h): open a database on
// disk or in memory, with or without its default collection (u64 rows;
// docs/ENGINE.md 2.2); transactions of the keyspace face; deterministic
// vectors and a brute-force model; the files of a directory by type, a
// segment's u64 group, a WAL's records; StatsJson parsed; untouched address
// space; whole-file reads, writes and bit flips.
#pragma once

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/db.h"
#include "engine/filename.h"
#include "engine/search.h"
#include "segment/file.h"
#include "segment/format.h"
#include "simd/distance.h"
#include "support/temp_dir.h"
#include "util/env.h"
#include "util/status.h"
#include "wal/log_reader.h"

namespace pomai::testing {

// A deterministic vector for (id, version).
inline std::vector<float> VectorFor(uint64_t id, uint32_t version, uint32_t dim) {
  std::mt19937_64 rng(id * 1000003ull + version);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(dim);
  for (auto& x : v) x = u(rng);
  return v;
}

// Brute-force reference: what a search must return given the live rows.
inline std::vector<engine::Hit> BruteForce(const std::map<uint64_t, std::vector<float>>& live, simd::Metric metric,
                                           const float* q, uint32_t dim, size_t k) {
  std::vector<engine::Hit> all;
  for (const auto& [id, v] : live) all.push_back({id, simd::ScalarScore(metric, q, v.data(), dim), 0});
  std::sort(all.begin(), all.end(), engine::Better<engine::Hit>);
  if (all.size() > k) all.resize(k);
  return all;
}

// Opens a disk database in `dir` or, with dir empty, an in-memory one (no
// default collection: the keyspace face).
inline std::unique_ptr<engine::DB> OpenKv(const std::string& dir, engine::Options o = {}) {
  o.in_memory = dir.empty();
  o.path = dir;
  if (o.search_threads == 0) o.search_threads = 2;
  auto r = engine::DB::Open(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

// Flush, then the merges the tiered policy asks for, which Flush leaves to
// the compaction thread: for a test that counts segments after a flush.
inline void FlushAndMerge(engine::DB& db) {
  ASSERT_TRUE(db.Flush().ok());
  ASSERT_TRUE(db.Compact(false).ok());
}

inline std::unique_ptr<engine::Txn> BeginRw(engine::DB& db) {
  auto r = db.Begin(engine::TxnMode::kReadWrite);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}
inline std::unique_ptr<engine::Txn> BeginRo(engine::DB& db) {
  auto r = db.Begin(engine::TxnMode::kReadOnly);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

// The value of `key` seen by `txn`, or nullopt.
inline std::optional<std::string> GetValue(engine::Txn& txn, const std::string& key) {
  std::string v;
  bool found = false;
  Status s = txn.Get(key, &v, &found);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!found) return std::nullopt;
  return v;
}

inline std::optional<std::string> Committed(engine::DB& db, const std::string& key) {
  auto t = BeginRo(db);
  return GetValue(*t, key);
}

inline void PutCommit(engine::DB& db, const std::string& key, const std::string& value) {
  auto t = BeginRw(db);
  ASSERT_TRUE(t->Put(key, value).ok());
  Status s = t->Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
}

inline std::vector<float> RandomVector(std::mt19937_64& rng, uint32_t dim) {
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> v(dim);
  for (auto& x : v) x = n(rng);
  return v;
}

// Both storage modes: a parameter "disk" or "memory".
class BothModes : public ::testing::TestWithParam<bool> {
 protected:
  bool disk() const { return GetParam(); }
  std::string dir() const { return disk() ? tmp_.path() : std::string(); }
  std::unique_ptr<engine::DB> Open(engine::Options o = {}) { return OpenKv(dir(), o); }
  TempDir tmp_;
};

inline std::string ModeName(const ::testing::TestParamInfo<bool>& info) { return info.param ? "Disk" : "InMemory"; }

// A disk database at `path` with two search threads.
inline engine::Options DiskOptions(const std::string& path) {
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

// What one open of a rows test asks: the database and its default collection.
struct RowsOptions {
  engine::Options kv;
  engine::DefaultCollectionOptions coll;
};
inline RowsOptions MakeRowsOptions(const std::string& path, uint32_t dim = 8, uint32_t shards = 1,
                                   simd::Metric metric = simd::Metric::kL2) {
  return {DiskOptions(path), RowsCollection(dim, shards, metric)};
}
inline std::unique_ptr<engine::DB> OpenRows(const RowsOptions& o) { return OpenRows(o.kv, o.coll); }

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

// What a read of damaged data may give: `truth` or Corruption, never another answer.
template <typename T, typename U>
::testing::AssertionResult TruthOrCorruption(const Result<T>& r, const U& truth) {
  if (r.ok() ? r.value() == truth : r.status().IsCorruption()) return ::testing::AssertionSuccess();
  if (r.ok()) return ::testing::AssertionFailure() << "gave " << r.value() << ", truly " << truth;
  return ::testing::AssertionFailure() << r.status().ToString();
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
        *out = {name, rec.offset, rec.payload.size()};
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
  bool Has(const std::string& key) const { return std::find(keys.begin(), keys.end(), key) != keys.end(); }
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
  bool At(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
  // The members of an object or the items of an array, after its opening
  // bracket: `item()` reads each, up to `close`.
  template <class Item>
  bool Items(char close, const Item& item) {
    ++pos_;
    Skip();
    if (At(close)) return ++pos_, true;
    for (;;) {
      if (!item()) return false;
      Skip();
      if (At(',')) {
        ++pos_;
        continue;
      }
      if (!At(close)) return false;
      return ++pos_, true;
    }
  }
  bool Value(Json* out) {
    Skip();
    if (pos_ >= s_.size()) return false;
    const char c = s_[pos_];
    if (c == '{') {
      out->type = Json::Type::kObject;
      return Items('}', [&] {
        Skip();
        std::string key;
        if (!String(&key)) return false;
        Skip();
        if (!At(':')) return false;
        ++pos_;
        Json v;
        if (!Value(&v)) return false;
        out->keys.push_back(std::move(key));
        out->values.push_back(std::move(v));
        return true;
      });
    }
    if (c == '[') {
      out->type = Json::Type::kArray;
      return Items(']', [&] {
        Json v;
        if (!Value(&v)) return false;
        out->items.push_back(std::move(v));
        return true;
      });
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

// `bytes` of address space that reads as zeros and costs no memory until
// written (nothing writes it): the arguments of calls refused for their size.
class Reserved {
 public:
  explicit Reserved(size_t bytes) : bytes_(bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    EXPECT_NE(p, MAP_FAILED) << bytes << " bytes";
    p_ = p == MAP_FAILED ? nullptr : p;
  }
  ~Reserved() {
    if (p_ != nullptr) munmap(p_, bytes_);
  }
  Reserved(const Reserved&) = delete;
  Reserved& operator=(const Reserved&) = delete;
  template <typename T>
  const T* as() const {
    return static_cast<const T*>(p_);
  }

 private:
  size_t bytes_;
  void* p_ = nullptr;
};

// ---- Whole files: read, write, flip one bit.
inline std::string ReadFileBytes(const std::string& path) {
  std::string data;
  Status s = ReadFileToString(Env::Default(), path, &data);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return data;
}
inline void WriteFileBytes(const std::string& path, const std::string& data) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(std::fwrite(data.data(), 1, data.size(), f), data.size()) << path;
  ASSERT_EQ(std::fclose(f), 0) << path;
}
// Flips bit `bit` of the byte at `offset` of the file at `path`.
inline void FlipBit(const std::string& path, uint64_t offset, int bit) {
  FILE* f = std::fopen(path.c_str(), "r+b");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(std::fseek(f, static_cast<long>(offset), SEEK_SET), 0);
  const int byte = std::fgetc(f);
  ASSERT_NE(byte, EOF) << path << " has no byte " << offset;
  ASSERT_EQ(std::fseek(f, static_cast<long>(offset), SEEK_SET), 0);
  ASSERT_NE(std::fputc(byte ^ (1 << bit), f), EOF);
  std::fclose(f);
}

}  // namespace pomai::testing
