// Damaged segment files of the default collection (u64 rows; docs/ENGINE.md
// 3.3 and 3.4). After a bit flip in a segment file, every
// read (get, exists, count, exact and graph search, metadata, the stats'
// counts) gives the undamaged answer or Corruption, never another answer,
// and a compaction either fails with Corruption, leaving the files, or writes
// exactly what it writes from the undamaged files (damage is never rewritten
// under valid checksums).
//
// Segment format 2 has sections format 1 had not: the entries, keys and
// values (here the default collection's configuration, committed by the
// first open and written by the first flush), the group descriptors and the
// block CRCs. A flip there follows the same rule: the open of the database or
// of the default collection fails with Corruption, or every read answers as
// before or with Corruption. The reads test flips three bits of every byte
// of the structure (header, file-level sections, descriptors, block CRCs,
// tombstones, section table, footer, the first 64 bytes of every section and
// the padding) and of one byte in two inside the larger sections (rows,
// metadata, graph links), ~18500 flips; the compaction test one bit of every
// byte. Each takes under 15 s in a release build.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "engine/db.h"
#include "db_test_util.h"
#include "engine/search.h"
#include "segment/file.h"
#include "segment/section_kind.h"
#include "support/temp_dir.h"

namespace pomai::engine {
namespace {

using testing::SegmentFiles;
using testing::TempDir;
using testing::VectorFor;

constexpr uint32_t kDim = 4;
constexpr uint64_t kIdSpace = 56;  // every id written, deleted or never written, and a few beyond
constexpr uint32_t kGraphK = 5;    // 4k < 40 rows: the graph segment is searched through its graph
constexpr uint32_t kExactK = 64;   // every live row: each layer is scanned

// These tests open thousands of small databases that nobody needs to
// survive a power cut: their fsyncs are skipped.
class NoSyncEnv : public EnvWrapper {
 public:
  NoSyncEnv() : EnvWrapper(Env::Default()) {}
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return Wrap(target()->NewWritableFile(path));
  }
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    return Wrap(target()->NewAppendableFile(path));
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
  static Result<std::unique_ptr<WritableFile>> Wrap(Result<std::unique_ptr<WritableFile>> r) {
    if (!r.ok()) return r.status();
    return std::unique_ptr<WritableFile>(new File(std::move(r).value()));
  }
};

using DamageOptions = testing::RowsOptions;

DamageOptions MakeDamageOptions(const std::string& path) {
  static NoSyncEnv env;
  DamageOptions o;
  o.kv = testing::DiskOptions(path);
  o.kv.env = &env;
  o.kv.search_threads = 1;  // no pool: a compaction builds its graph the same way every time
  o.coll = testing::RowsCollection(kDim, 1, simd::Metric::kL2);
  o.coll.adaptive_threshold = 24;  // the 40-row segment gets a graph, the 14-row one none
  o.coll.hnsw_m = 4;               // small graph sections keep the file small
  o.coll.hnsw_ef_construction = 32;
  o.coll.hnsw_ef_search = 16;
  return o;
}

Result<std::unique_ptr<DB>> TryOpen(const DamageOptions& o) { return testing::TryOpenRows(o.kv, o.coll); }

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
  for (const Hit& h : hits)
    s += std::to_string(h.id) + ":" + std::to_string(std::bit_cast<uint32_t>(h.score)) + ":" +
         std::to_string(h.shard) + " ";
  return s;
}

std::string VectorString(const std::vector<float>& v) {
  std::string s;
  for (float x : v) s += std::to_string(std::bit_cast<uint32_t>(x)) + " ";
  return s;
}

// What StatsJson says that the files' checked parts decide: the counts and
// sizes, and which segments have a graph (not the graphs' own statistics,
// which come from their unchecked links; ENGINE.md 3.4).
std::string StatsString(const std::string& json) {
  testing::Json j;
  if (!testing::JsonParser(json).Parse(&j)) return "not JSON: " + json;
  std::string s;
  for (const char* key : {"dim", "segments", "segment_rows", "segment_tombstones", "segment_bytes", "memtable_rows",
                          "live_rows", "dead_rows"})
    s += std::string(key) + "=" + std::to_string(j[key].u64()) + " ";
  for (const testing::Json& f : j["segment_files"].items) {
    s += "[" + f["file"].str + " rows=" + std::to_string(f["rows"].u64()) +
         " tombstones=" + std::to_string(f["tombstones"].u64()) + " bytes=" + std::to_string(f["bytes"].u64()) +
         " graph=" + (f["graph"].is_null() ? "no" : "yes") + "] ";
  }
  return s;
}

// The first lines of a failure's examples, one a line.
std::string Joined(const std::vector<std::string>& examples) {
  std::string s;
  for (const auto& e : examples) s += "  " + e + "\n";
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
  auto stats = db->StatsJson();
  out.push_back({"stats", stats.status().code(), stats.ok() ? StatsString(stats.value()) : "", -1, {}});
  return out;
}

// The database every damage is made to, built once: a 40-row segment with a
// graph, metadata on most rows and the default collection's configuration
// entry, then a 14-row segment that adds rows, overwrites two of the first
// segment's and deletes four (its tombstones).
class CollectionRowsDamage : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    live_ = new std::map<uint64_t, std::vector<float>>();
    auto db = TryOpen(MakeDamageOptions(dir_->path())).value();
    auto put = [&](uint64_t id, uint32_t version, const std::string& meta) {
      (*live_)[id] = VectorFor(id, version, kDim);
      WriteOp op{WriteOp::Kind::kPut, id, (*live_)[id].data(), meta};
      ASSERT_TRUE(db->Write(&op, 1).ok());
    };
    for (uint64_t id = 0; id < 40; ++id) put(id, 0, id % 3 == 0 ? "" : "meta of " + std::to_string(id));
    ASSERT_TRUE(db->Flush().ok());
    for (uint64_t id = 40; id < 52; ++id) put(id, 0, id % 2 == 0 ? "" : "later " + std::to_string(id));
    put(3, 1, "overwritten 3");
    put(7, 1, "");
    for (uint64_t id : {5, 11, 17, 23}) {
      live_->erase(id);
      WriteOp del{WriteOp::Kind::kDelete, id, nullptr, {}};
      ASSERT_TRUE(db->Write(&del, 1).ok());
    }
    ASSERT_TRUE(db->Flush().ok());
    ASSERT_EQ(db->TEST_SegmentCount(), 2u);
    ASSERT_TRUE(db->Close().ok());
    // An open removes the empty WAL the flush left: from here on, an open
    // that only reads leaves the directory as it is.
    db = TryOpen(MakeDamageOptions(dir_->path())).value();
    ASSERT_TRUE(db->Close().ok());
    ASSERT_TRUE(testing::WalFiles(dir_->path()).empty());
  }
  static void TearDownTestSuite() {
    delete live_;
    delete dir_;
  }

  // Every file of `dir` but its LOCK, sorted.
  static std::vector<std::string> DataFiles(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().filename() != "LOCK") names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
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

  // The byte offsets of the segment file `path` to damage: every byte of the
  // header, of the section table and footer, of every section of at most
  // 512 bytes (the file-level sections, the descriptors, the block CRCs, the
  // tombstones, the small graph sections), the first 64 bytes of every
  // larger one and the padding between sections; in the rest of the larger
  // sections one byte in `stride` (shifted by one every 64 bytes: every
  // byte of a float, an id or a link is hit somewhere).
  static std::vector<uint64_t> DamageOffsets(const std::string& path, uint64_t stride) {
    auto opened = segment::SegmentFile::Open(Env::Default(), path);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    if (!opened.ok()) return {};
    const segment::SegmentFile& seg = *opened.value();
    const uint64_t size = seg.file_size();
    std::vector<bool> sampled(size, false);  // bytes inside large sections
    for (const auto& ref : seg.sections()) {
      if (ref.length <= 512) continue;
      for (uint64_t off = ref.offset + 64; off < ref.offset + ref.length && off < size; ++off) sampled[off] = true;
    }
    std::vector<uint64_t> out;
    for (uint64_t off = 0; off < size; ++off)
      if (!sampled[off] || (off + off / 64) % stride == 0) out.push_back(off);
    return out;
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
      if (h.shard != 0) return got.read + " gave id " + std::to_string(h.id) + " shard " + std::to_string(h.shard);
      if (i > 0 && Better(h, got.hits[i - 1])) return got.read + " is out of order";
    }
    return "";
  }

  static TempDir* dir_;
  static std::map<uint64_t, std::vector<float>>* live_;
};

TempDir* CollectionRowsDamage::dir_ = nullptr;
std::map<uint64_t, std::vector<float>>* CollectionRowsDamage::live_ = nullptr;

TEST_F(CollectionRowsDamage, EveryBitFlipGivesTheSameAnswersOrCorruption) {
  TempDir work;
  CopyDatabase(dir_->path(), work.path());
  const DamageOptions o = MakeDamageOptions(work.path());
  std::vector<Answer> want;
  {
    auto db = TryOpen(o).value();
    want = ReadEverything(db.get());
    ASSERT_NE(db->StatsJson().value().find("\"graph\": {"), std::string::npos) << "no segment has a graph";
  }
  for (const Answer& a : want) ASSERT_TRUE(a.code == Code::kOk || a.code == Code::kNotFound) << a.read;
  // An open that only reads changes nothing (SetUpTestSuite's last open
  // removed the empty WAL the last flush left).
  const std::vector<std::string> files = DataFiles(work.path());
  ASSERT_EQ(DataFiles(dir_->path()), files);

  // The sections of format 2 that every open or every ReadEverything reads
  // whole under a checksum: the entries and keys (CRCs checked by the
  // lookup of the configuration), the values (the configuration, under its
  // entry's CRC), the group descriptors (each under its CRC at Open) and the
  // block CRCs (the exact searches read every block). Every flip there is
  // detected, not only harmless.
  const std::vector<segment::SectionKind> always_detected = {
      segment::SectionKind::kEntries, segment::SectionKind::kKeys, segment::SectionKind::kValues,
      segment::SectionKind::kGroups, segment::SectionKind::kBlockCrcs};
  std::map<segment::SectionKind, std::pair<uint64_t, uint64_t>> in_section;  // kind: flips, undetected

  uint64_t flips = 0, bytes = 0, failed_open = 0, failed_reads = 0, other_rows_found = 0, silent = 0, changed_dir = 0;
  std::vector<std::string> examples;
  for (const std::string& name : SegmentFiles(work.path())) {
    const std::string path = work.file(name);
    const std::string good = testing::ReadFileBytes(path);
    bytes += good.size();
    std::vector<segment::SegmentFile::SectionRef> sections;
    {
      auto seg = segment::SegmentFile::Open(Env::Default(), path);
      ASSERT_TRUE(seg.ok()) << seg.status().ToString();
      sections = seg.value()->sections();
    }
    auto kind_at = [&](uint64_t off, segment::SectionKind* kind) {
      for (const auto& ref : sections) {
        if (off >= ref.offset && off - ref.offset < ref.length) {
          *kind = ref.kind;
          return std::find(always_detected.begin(), always_detected.end(), ref.kind) != always_detected.end();
        }
      }
      return false;
    };
    const std::vector<uint64_t> offsets = DamageOffsets(path, 2);
    for (uint64_t off : offsets) {
      segment::SectionKind kind{};
      const bool must_detect = kind_at(off, &kind);
      for (int bit : {static_cast<int>(off % 8), static_cast<int>((off + 3) % 8), static_cast<int>((off + 6) % 8)}) {
        ++flips;
        const std::string where = name + " byte " + std::to_string(off) + " bit " + std::to_string(bit);
        WriteByte(path, off, static_cast<char>(good[off] ^ (1 << bit)));
        auto db = TryOpen(o);
        bool detected = !db.ok();
        if (!db.ok()) {
          ASSERT_TRUE(db.status().IsCorruption()) << where << ": " << db.status().ToString();
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
            if (examples.size() < 20) examples.push_back(where + ": " + why);
          }
          failed_reads += failed;
          other_rows_found += other_rows;
          detected = failed;
        }
        if (must_detect) {
          ++in_section[kind].first;
          if (!detected) {
            ++in_section[kind].second;
            if (examples.size() < 20) examples.push_back(where + ": undetected in a section read whole");
          }
        }
        if (db.ok()) db->reset();  // closes the database before the file is repaired
        WriteByte(path, off, good[off]);
        if (DataFiles(work.path()) != files) {
          // An open of a damaged file wrote something (a new configuration?):
          // start the next flip from the undamaged database.
          ++changed_dir;
          if (examples.size() < 20) examples.push_back(where + ": the open changed the directory");
          CopyDatabase(dir_->path(), work.path());
        }
      }
    }
  }
  EXPECT_EQ(silent, 0u) << silent << " reads of " << flips << " damaged files changed without an error, e.g.:\n"
                        << Joined(examples);
  EXPECT_EQ(changed_dir, 0u) << changed_dir << " opens of damaged files changed the directory";
  for (segment::SectionKind kind : always_detected) {
    const std::string kind_name(segment::SectionKindName(kind));
    EXPECT_GT(in_section[kind].first, 0u) << "no flip in the " << kind_name << " sections";
    EXPECT_EQ(in_section[kind].second, 0u) << in_section[kind].second << " of " << in_section[kind].first
                                           << " flips in the " << kind_name << " sections went undetected";
    std::cout << kind_name << ": " << in_section[kind].first << " flips, all detected unless said above\n";
  }
  // Both kinds of detection are exercised, and the graph walk reads the damaged links.
  EXPECT_GT(failed_open, 0u);
  EXPECT_GT(failed_reads, 0u);
  EXPECT_GT(other_rows_found, 0u);
  std::cout << flips << " flips over " << bytes << " bytes: " << failed_open << " failed the open, " << failed_reads
            << " failed a read, " << other_rows_found << " changed a graph search's rows\n";
}

// One bit of every byte of each segment file, each in a fresh copy of the
// database: a forced compaction fails with Corruption and leaves the files,
// or writes the bytes and gives the answers of the undamaged compaction.
TEST_F(CollectionRowsDamage, CompactionOfADamagedFileFailsOrWritesWhatTheUndamagedFilesGive) {
  // What a forced compaction of the undamaged files writes and answers.
  std::string want_bytes;
  std::vector<Answer> want;
  {
    TempDir scratch;
    CopyDatabase(dir_->path(), scratch.path());
    auto db = TryOpen(MakeDamageOptions(scratch.path())).value();
    ASSERT_TRUE(db->Compact(true).ok());
    ASSERT_EQ(db->TEST_SegmentCount(), 1u);
    want = ReadEverything(db.get());
    ASSERT_EQ(SegmentFiles(scratch.path()).size(), 1u);
    want_bytes = testing::ReadFileBytes(scratch.file(SegmentFiles(scratch.path())[0]));
  }
  for (const Answer& a : want) ASSERT_TRUE(a.code == Code::kOk || a.code == Code::kNotFound) << a.read;

  uint64_t flips = 0, failed_open = 0, failed = 0, laundered = 0, bytes = 0;
  std::vector<std::string> examples;
  TempDir scratch;
  for (const std::string& name : SegmentFiles(dir_->path())) {
    const std::string good = testing::ReadFileBytes(dir_->file(name));
    bytes += good.size();
    for (uint64_t off : DamageOffsets(dir_->file(name), 1)) {
      const int bit = static_cast<int>(off % 8);
      ++flips;
      CopyDatabase(dir_->path(), scratch.path());
      WriteByte(scratch.file(name), off, static_cast<char>(good[off] ^ (1 << bit)));
      const std::string where = name + " byte " + std::to_string(off) + " bit " + std::to_string(bit);
      auto db = TryOpen(MakeDamageOptions(scratch.path()));
      if (!db.ok()) {
        ++failed_open;
        continue;  // caught by the open (EveryBitFlipGivesTheSameAnswersOrCorruption checks how)
      }
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
      bool same = files.size() == 1 && testing::ReadFileBytes(scratch.file(files[0])) == want_bytes;
      for (size_t i = 0; i < got.size() && same; ++i)
        same = got[i].code == want[i].code && got[i].value == want[i].value;
      if (!same) {
        ++laundered;
        if (examples.size() < 20) examples.push_back(where);
      }
    }
  }
  EXPECT_EQ(laundered, 0u) << laundered << " of " << flips << " damaged files compacted into another database, e.g.:\n"
                           << Joined(examples);
  EXPECT_GT(failed, 0u);
  std::cout << flips << " flips over " << bytes << " bytes: " << failed_open << " failed the open, " << failed
            << " failed the compaction\n";
}

}  // namespace
}  // namespace pomai::engine
