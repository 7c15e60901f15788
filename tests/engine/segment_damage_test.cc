// Damaged u64-id segment files (DESIGN.md invariant 4): after any bit flip in
// any segment file, every read (get, exists, count, exact and graph search,
// metadata) gives the undamaged answer or Corruption, never another answer,
// and a compaction either fails or writes exactly what it writes from the
// undamaged files (damage is never rewritten under valid checksums).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine/db.h"
#include "engine_test_util.h"
#include "support/temp_dir.h"

namespace pomai::engine {
namespace {

using testing::TempDir;
using testing::VectorFor;

constexpr uint32_t kDim = 4;
constexpr uint64_t kIdSpace = 56;  // every id written, deleted or never written, and a few beyond
constexpr uint32_t kGraphK = 5;    // 4k < 40 rows: the graph segment is searched through its graph
constexpr uint32_t kExactK = 64;   // every live row: each layer is scanned

// These tests write thousands of small databases that nobody needs to
// survive a power cut: their fsyncs are skipped.
class NoSyncEnv : public EnvWrapper {
 public:
  NoSyncEnv() : EnvWrapper(Env::Default()) {}
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    auto r = target()->NewWritableFile(path);
    if (!r.ok()) return r.status();
    return std::unique_ptr<WritableFile>(new File(std::move(r).value()));
  }
  Status SyncDir(const std::string&) override { return Status::OK(); }

 private:
  class File : public WritableFile {
   public:
    explicit File(std::unique_ptr<WritableFile> base) : base_(std::move(base)) {}
    Status Append(const void* data, size_t n) override { return base_->Append(data, n); }
    Status Sync() override { return Status::OK(); }
    Status Close() override { return base_->Close(); }
    uint64_t Size() const override { return base_->Size(); }
    const std::string& path() const override { return base_->path(); }

   private:
    std::unique_ptr<WritableFile> base_;
  };
};

Options DamageOptions(const std::string& path) {
  static NoSyncEnv env;
  Options o;
  o.path = path;
  o.env = &env;
  o.dim = kDim;
  o.metric = simd::Metric::kL2;
  o.search_threads = 1;       // no pool: a compaction builds its graph the same way every time
  o.adaptive_threshold = 24;  // the 40-row segment gets a graph, the 14-row one none
  o.hnsw_m = 4;               // small graph sections keep the file small
  o.hnsw_ef_construction = 32;
  o.hnsw_ef_search = 16;
  return o;
}

// One read and what it gave. Graph searches (query >= 0) are approximate:
// damage to the graph may change which rows they find, never the scores of
// those rows.
struct Answer {
  std::string read;
  Code code = Code::kOk;
  std::string value;
  int query = -1;  // for a graph search: its query, Query(query)
  std::vector<Hit> hits;
};

std::string HitsString(const std::vector<Hit>& hits) {
  std::string s;
  for (const Hit& h : hits) s += std::to_string(h.id) + ":" + std::to_string(std::bit_cast<uint32_t>(h.score)) + " ";
  return s;
}

std::string VectorString(const std::vector<float>& v) {
  std::string s;
  for (float x : v) s += std::to_string(std::bit_cast<uint32_t>(x)) + " ";
  return s;
}

std::vector<float> Query(uint64_t q) { return VectorFor(1000000 + q, 0, kDim); }

std::vector<Answer> ReadEverything(DB* db) {
  std::vector<Answer> out;
  for (uint64_t id = 0; id < kIdSpace; ++id) {
    const std::string name = std::to_string(id);
    std::vector<float> v;
    std::string meta;
    Status s = db->Get(id, &v, &meta);
    out.push_back({"get " + name, s.code(), s.ok() ? VectorString(v) + "| " + meta : "", -1, {}});
    v.clear();
    s = db->Get(id, &v, nullptr);
    out.push_back({"get vector " + name, s.code(), s.ok() ? VectorString(v) : "", -1, {}});
    meta.clear();
    s = db->Get(id, nullptr, &meta);
    out.push_back({"get metadata " + name, s.code(), s.ok() ? meta : "", -1, {}});
    auto e = db->Exists(id);
    out.push_back({"exists " + name, e.status().code(), e.ok() ? std::to_string(*e) : "", -1, {}});
  }
  auto n = db->Count();
  out.push_back({"count", n.status().code(), n.ok() ? std::to_string(*n) : "", -1, {}});
  for (uint64_t q = 0; q < 3; ++q) {
    const std::vector<float> query = Query(q);
    for (uint32_t k : {kGraphK, kExactK}) {
      std::vector<std::vector<Hit>> hits;
      Status s = db->Search(query.data(), 1, &k, 0, 0, &hits);
      Answer a{"search " + std::to_string(q) + " k " + std::to_string(k), s.code(), "",
               k == kGraphK ? static_cast<int>(q) : -1, {}};
      if (s.ok()) a.hits = hits[0];
      a.value = HitsString(a.hits);
      out.push_back(std::move(a));
    }
  }
  return out;
}

// The database every damage is made to, built once: a 40-row segment with a
// graph and metadata on most rows, then a 14-row segment that adds rows,
// overwrites two of the first segment's and deletes four (its tombstones).
class SegmentDamage : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    live_ = new std::map<uint64_t, std::vector<float>>();
    auto db = DB::Open(DamageOptions(dir_->path())).value();
    auto put = [&](uint64_t id, uint32_t version, const std::string& meta) {
      (*live_)[id] = VectorFor(id, version, kDim);
      WriteOp op{WriteOp::Kind::kPut, id, (*live_)[id].data(), meta};
      ASSERT_TRUE(db->Write(&op, 1).ok());
    };
    for (uint64_t id = 0; id < 40; ++id) put(id, 0, id % 3 == 0 ? "" : "meta of " + std::to_string(id));
    ASSERT_TRUE(db->Freeze().ok());
    for (uint64_t id = 40; id < 52; ++id) put(id, 0, id % 2 == 0 ? "" : "later " + std::to_string(id));
    put(3, 1, "overwritten 3");
    put(7, 1, "");
    for (uint64_t id : {5, 11, 17, 23}) {
      live_->erase(id);
      WriteOp del{WriteOp::Kind::kDelete, id, nullptr, {}};
      ASSERT_TRUE(db->Write(&del, 1).ok());
    }
    ASSERT_TRUE(db->Freeze().ok());
    ASSERT_EQ(db->TEST_SegmentCount(), 2u);
    ASSERT_TRUE(db->Close().ok());
  }
  static void TearDownTestSuite() {
    delete live_;
    delete dir_;
  }

  static std::vector<std::string> SegmentFiles(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.ends_with(".pseg")) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  static std::string ReadFile(const std::string& path) {
    std::string bytes(std::filesystem::file_size(path), '\0');
    FILE* f = std::fopen(path.c_str(), "rb");
    EXPECT_EQ(std::fread(bytes.data(), 1, bytes.size(), f), bytes.size());
    std::fclose(f);
    return bytes;
  }
  static void WriteByte(const std::string& path, uint64_t offset, char byte) {
    FILE* f = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fseek(f, static_cast<long>(offset), SEEK_SET), 0);
    ASSERT_EQ(std::fputc(static_cast<unsigned char>(byte), f), static_cast<unsigned char>(byte));
    std::fclose(f);
  }
  // Makes `to` hold the database's files (not its LOCK) and nothing else.
  static void CopyDatabase(const std::string& from, const std::string& to) {
    for (const auto& e : std::filesystem::directory_iterator(to))
      if (e.path().filename() != "LOCK") std::filesystem::remove(e.path());
    for (const auto& e : std::filesystem::directory_iterator(from)) {
      if (e.path().filename() == "LOCK") continue;
      std::filesystem::copy_file(e.path(), std::filesystem::path(to) / e.path().filename(),
                                 std::filesystem::copy_options::overwrite_existing);
    }
  }

  // Why `got` is not an acceptable answer where `want` is the undamaged one,
  // or empty: the same answer, Corruption, or (graph searches only) as many
  // hits, each a live row with its true score, best first.
  static std::string Unacceptable(const Answer& want, const Answer& got) {
    if (got.code == Code::kCorruption) return "";
    if (got.code == want.code && got.value == want.value) return "";
    if (want.query < 0 || got.code != Code::kOk || got.hits.size() != want.hits.size()) {
      return got.read + " gave code " + std::to_string(static_cast<int>(got.code)) + " [" + got.value +
             "], undamaged code " + std::to_string(static_cast<int>(want.code)) + " [" + want.value + "]";
    }
    const std::vector<float> query = Query(static_cast<uint64_t>(want.query));
    for (size_t i = 0; i < got.hits.size(); ++i) {
      const Hit& h = got.hits[i];
      auto it = live_->find(h.id);
      if (it == live_->end()) return got.read + " returned id " + std::to_string(h.id) + ", which is not live";
      const float truth = simd::ScalarScore(simd::Metric::kL2, query.data(), it->second.data(), kDim);
      if (!(std::fabs(h.score - truth) <= 1e-5f * (1 + std::fabs(truth)))) {
        return got.read + " scored id " + std::to_string(h.id) + " " + std::to_string(h.score) +
               ", its true score is " + std::to_string(truth);
      }
      if (i > 0 && Better(h, got.hits[i - 1])) return got.read + " is out of order";
    }
    return "";
  }

  static TempDir* dir_;
  static std::map<uint64_t, std::vector<float>>* live_;
};

TempDir* SegmentDamage::dir_ = nullptr;
std::map<uint64_t, std::vector<float>>* SegmentDamage::live_ = nullptr;

TEST_F(SegmentDamage, EveryBitFlipGivesTheSameAnswersOrCorruption) {
  TempDir work;
  CopyDatabase(dir_->path(), work.path());
  const Options o = DamageOptions(work.path());
  std::vector<Answer> want;
  {
    auto db = DB::Open(o).value();
    want = ReadEverything(db.get());
  }
  for (const Answer& a : want) ASSERT_TRUE(a.code == Code::kOk || a.code == Code::kNotFound) << a.read;
  {
    auto db = DB::Open(o).value();
    ASSERT_NE(db->StatsJson().value().find("\"graph\": {"), std::string::npos) << "no segment has a graph";
  }

  uint64_t flips = 0, failed_open = 0, failed_reads = 0, other_rows_found = 0, silent = 0;
  std::vector<std::string> examples;
  for (const std::string& name : SegmentFiles(work.path())) {
    const std::string path = work.file(name);
    const std::string good = ReadFile(path);
    for (uint64_t off = 0; off < good.size(); ++off) {
      for (int bit : {static_cast<int>(off % 8), static_cast<int>((off + 3) % 8), static_cast<int>((off + 6) % 8)}) {
        ++flips;
        WriteByte(path, off, static_cast<char>(good[off] ^ (1 << bit)));
        auto db = DB::Open(o);
        if (!db.ok()) {
          ASSERT_TRUE(db.status().IsCorruption()) << name << " byte " << off << " bit " << bit << ": "
                                                  << db.status().ToString();
          ++failed_open;
        } else {
          const std::vector<Answer> got = ReadEverything(db->get());
          bool failed = false;
          bool other_rows = false;
          for (size_t i = 0; i < got.size(); ++i) {
            failed = failed || got[i].code == Code::kCorruption;
            other_rows = other_rows || (got[i].code == Code::kOk && got[i].value != want[i].value);
            const std::string why = Unacceptable(want[i], got[i]);
            if (why.empty()) continue;
            ++silent;
            if (examples.size() < 20)
              examples.push_back(name + " byte " + std::to_string(off) + " bit " + std::to_string(bit) + ": " + why);
          }
          failed_reads += failed;
          other_rows_found += other_rows;
        }
        if (db.ok()) db->reset();  // closes the database before the file is repaired
        WriteByte(path, off, good[off]);
      }
    }
  }
  EXPECT_EQ(silent, 0u) << silent << " reads of " << flips << " damaged files changed without an error, e.g.:\n"
                        << [&] {
                             std::string s;
                             for (const auto& e : examples) s += "  " + e + "\n";
                             return s;
                           }();
  // Both kinds of detection are exercised, and the graph walk reads the damaged links.
  EXPECT_GT(failed_open, 0u);
  EXPECT_GT(failed_reads, 0u);
  EXPECT_GT(other_rows_found, 0u);
  std::printf("%llu flips: %llu failed the open, %llu failed a read, %llu changed a graph search's rows\n",
              static_cast<unsigned long long>(flips), static_cast<unsigned long long>(failed_open),
              static_cast<unsigned long long>(failed_reads), static_cast<unsigned long long>(other_rows_found));
}

TEST_F(SegmentDamage, CompactionOfADamagedFileFailsOrWritesWhatTheUndamagedFilesGive) {
  // What a forced compaction of the undamaged files writes and answers.
  std::string want_bytes;
  std::vector<Answer> want;
  {
    TempDir scratch;
    CopyDatabase(dir_->path(), scratch.path());
    auto db = DB::Open(DamageOptions(scratch.path())).value();
    ASSERT_TRUE(db->Compact(true).ok());
    ASSERT_EQ(db->TEST_SegmentCount(), 1u);
    want = ReadEverything(db.get());
    ASSERT_EQ(SegmentFiles(scratch.path()).size(), 1u);
    want_bytes = ReadFile(scratch.file(SegmentFiles(scratch.path())[0]));
  }

  uint64_t flips = 0, failed = 0, laundered = 0;
  std::vector<std::string> examples;
  TempDir scratch;
  for (const std::string& name : SegmentFiles(dir_->path())) {
    const std::string good = ReadFile(dir_->file(name));
    for (uint64_t off = 0; off < good.size(); ++off) {
      const int bit = static_cast<int>(off % 8);
      ++flips;
      CopyDatabase(dir_->path(), scratch.path());
      WriteByte(scratch.file(name), off, static_cast<char>(good[off] ^ (1 << bit)));
      const std::string where = name + " byte " + std::to_string(off) + " bit " + std::to_string(bit);
      const Options o = DamageOptions(scratch.path());
      auto db = DB::Open(o);
      if (!db.ok()) continue;  // caught by Open (EveryBitFlipGivesTheSameAnswersOrCorruption checks how)
      const std::vector<std::string> before = SegmentFiles(scratch.path());
      Status s = (*db)->Compact(true);
      if (!s.ok()) {
        ++failed;
        ASSERT_TRUE(s.IsCorruption()) << where << ": " << s.ToString();
        ASSERT_EQ(SegmentFiles(scratch.path()), before) << where << ": a failed compaction changed the files";
        continue;
      }
      const std::vector<Answer> got = ReadEverything(db->get());
      const std::vector<std::string> files = SegmentFiles(scratch.path());
      bool same = files.size() == 1 && ReadFile(scratch.file(files[0])) == want_bytes;
      for (size_t i = 0; i < got.size() && same; ++i)
        same = got[i].code == want[i].code && got[i].value == want[i].value;
      if (!same) {
        ++laundered;
        if (examples.size() < 20) examples.push_back(where);
      }
    }
  }
  EXPECT_EQ(laundered, 0u) << laundered << " of " << flips << " damaged files compacted into another database, e.g.:\n"
                           << [&] {
                                std::string s;
                                for (const auto& e : examples) s += "  " + e + "\n";
                                return s;
                              }();
  EXPECT_GT(failed, 0u);
}

}  // namespace
}  // namespace pomai::engine
