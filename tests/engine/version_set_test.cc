// The version set of format version 2 (lib/engine/{filename,version_edit,
// version_set}; docs/ENGINE.md 3.1 and 3.5): file names, version edits,
// the manifest log's replay, rollover and refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/filename.h"
#include "engine/version_edit.h"
#include "engine/version_set.h"
#include "support/fault_env.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "util/env_memory.h"
#include "wal/log_format.h"

namespace pomai::engine {
namespace {

using files::FileName;
using files::FileType;
using files::ParseFileName;
using files::RemoveObsoleteFiles;

constexpr char kDir[] = "/db";

std::string Read(Env* env, const std::string& path) {
  std::string s;
  EXPECT_TRUE(ReadFileToString(env, path, &s).ok()) << path;
  return s;
}

void Write(Env* env, const std::string& path, const std::string& bytes) {
  auto f = env->NewWritableFile(path);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append(bytes.data(), bytes.size()).ok());
  ASSERT_TRUE((*f)->Close().ok());
}

std::string ManifestPath(VersionSet* vs) {
  MutexLock l(vs->install_mu());
  return JoinPath(kDir, FileName(FileType::kManifest, vs->manifest_number()));
}

Status Apply(VersionSet* vs, VersionEdit edit) {
  MutexLock l(vs->install_mu());
  return vs->LogAndApply(&edit);
}

// A flush: a new segment standing for (last seq, last seq + rows], and the WALs before `log`.
Status Flush(VersionSet* vs, uint64_t rows, uint64_t log) {
  const uint64_t last = vs->current()->last_seq;
  VersionEdit e;
  e.added.push_back({vs->NewFileNumber(), 1000 + rows, last + 1, last + rows});
  e.last_seq = last + rows;
  e.log_number = log;
  return Apply(vs, e);
}

// A merge of every live segment into one.
Status MergeAll(VersionSet* vs) {
  auto v = vs->current();
  VersionEdit e;
  uint64_t size = 0;
  for (const SegmentMeta& s : v->segments) {
    e.removed.push_back(s.number);
    size += s.file_size;
  }
  e.added.push_back({vs->NewFileNumber(), size, v->segments.back().first_seq, v->segments.front().last_seq});
  return Apply(vs, e);
}

std::unique_ptr<VersionSet> MustRecover(Env* env, const VersionSetOptions& o = {}) {
  auto r = VersionSet::Recover(env, kDir, o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

// --- file names ---

TEST(FileName, NamesEveryKind) {
  EXPECT_EQ(FileName(FileType::kLock, 3), "LOCK");
  EXPECT_EQ(FileName(FileType::kCurrent, 3), "CURRENT");
  EXPECT_EQ(FileName(FileType::kManifest, 7), "MANIFEST-000007");
  EXPECT_EQ(FileName(FileType::kLog, 7), "wal-000007.log");
  EXPECT_EQ(FileName(FileType::kSegment, 7), "seg-000007.pseg");
  EXPECT_EQ(FileName(FileType::kTemp, 7), "seg-000007.pseg.tmp");
  EXPECT_EQ(FileName(FileType::kSegment, 1234567), "seg-1234567.pseg");
  EXPECT_EQ(files::TempFileName("CURRENT"), "CURRENT.tmp");
}

TEST(FileName, ParsesWhatItWrites) {
  for (FileType t : {FileType::kLock, FileType::kCurrent, FileType::kManifest, FileType::kLog, FileType::kSegment,
                     FileType::kTemp}) {
    for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{999999}, uint64_t{1000000}, UINT64_MAX}) {
      FileType got;
      uint64_t number = 42;
      ASSERT_TRUE(ParseFileName(FileName(t, n), &got, &number)) << FileName(t, n);
      EXPECT_EQ(got, t);
      EXPECT_EQ(number, (t == FileType::kLock || t == FileType::kCurrent) ? 0 : n);
    }
  }
  FileType t;
  uint64_t n;
  ASSERT_TRUE(ParseFileName("CURRENT.tmp", &t, &n));
  EXPECT_EQ(t, FileType::kTemp);
  ASSERT_TRUE(ParseFileName("wal-000012.log.tmp", &t, &n));
  EXPECT_EQ(t, FileType::kTemp);
  EXPECT_EQ(n, 12u);
}

TEST(FileName, RejectsJunk) {
  for (const char* name :
       {"", "LOCK2", "lock", "CURRENT\n", "MANIFEST", "KVMANIFEST", "MANIFEST-", "MANIFEST-12345", "MANIFEST-0000001",
        "MANIFEST-00000a", "MANIFEST-000001 ", "wal-7.log", "wal-000007.lo", "wal-000007.log.", "seg-000007.pseg2",
        "seg--00007.pseg", "seg-+00007.pseg", "seg-000007.pseg.tmp.tmp", ".tmp", "MANIFEST.tmp",
        "seg-18446744073709551616.pseg", "seg-99999999999999999999.pseg", "idx-000001.pgraph", "wal-000001.log/"}) {
    FileType t = FileType::kLock;
    uint64_t n = 77;
    EXPECT_FALSE(ParseFileName(name, &t, &n)) << name;
    EXPECT_EQ(n, 77u) << name;
  }
}

// Recovery's removal: every *.tmp, segments not live, WALs
// below the log number, manifests other than the live one (none with 0);
// everything else stays.
TEST(FileName, RemoveObsoleteFilesKeepsWhatAVersionNeeds) {
  for (uint64_t manifest : {uint64_t{5}, uint64_t{0}}) {
    MemoryEnv env;
    const std::vector<std::string> all = {
        "LOCK", "CURRENT", "MANIFEST", "MANIFEST-000005", "MANIFEST-000002", "CURRENT.tmp", "MANIFEST.tmp",
        "seg-000003.pseg", "seg-000004.pseg", "seg-000009.pseg.tmp", "wal-000006.log", "wal-000007.log",
        "idx-0123456789abcdef-5.pgraph", "idx-0123456789abcdef-5.pgraph.tmp", "notes.txt", "wal-7.log"};
    for (const std::string& name : all) {
      auto f = env.NewWritableFile(JoinPath(kDir, name));
      ASSERT_TRUE(f.ok());
      ASSERT_TRUE((*f)->Append("x", 1).ok());
      ASSERT_TRUE((*f)->Close().ok());
    }
    RemoveObsoleteFiles(&env, kDir, all, {4}, 7, manifest);
    std::vector<std::string> left = std::move(env.ListDir(kDir)).value();
    std::sort(left.begin(), left.end());
    std::vector<std::string> want = {"CURRENT", "LOCK", "MANIFEST", "MANIFEST-000005", "idx-0123456789abcdef-5.pgraph",
                                     "notes.txt", "seg-000004.pseg", "wal-000007.log", "wal-7.log"};
    if (manifest == 0) want.insert(want.begin() + 3, "MANIFEST-000002");
    EXPECT_EQ(left, want) << manifest;
  }
}

// --- version edits ---

VersionEdit FullEdit() {
  VersionEdit e;
  e.format_version = 2;
  e.log_number = 9;
  e.last_seq = 1234;
  e.next_file_number = 17;
  e.added.push_back({12, 4096, 1, 1000});
  e.added.push_back({15, 8192, 1001, 1234});
  e.removed = {3, 4};
  return e;
}

TEST(VersionEdit, RoundTrips) {
  for (const VersionEdit& e : {VersionEdit(), FullEdit()}) {
    const std::string bytes = e.Encode();
    VersionEdit d;
    ASSERT_TRUE(VersionEdit::Decode(bytes, "m", &d).ok());
    EXPECT_EQ(d, e);
    EXPECT_EQ(d.Encode(), bytes);
  }
  EXPECT_EQ(FullEdit().Encode().size(), 12u + 3 * 16 + 2 * 40 + 2 * 16);
}

TEST(VersionEdit, FieldLayoutIsTagZeroLengthValue) {
  VersionEdit e;
  e.log_number = 0x0102030405060708ull;
  const std::string b = e.Encode();
  ASSERT_EQ(b.size(), 16u);
  const auto* p = reinterpret_cast<const uint8_t*>(b.data());
  EXPECT_EQ(p[0], 2);
  EXPECT_EQ(p[1], 0);
  EXPECT_EQ(p[2], 0);
  EXPECT_EQ(p[3], 0);
  EXPECT_EQ(DecodeFixed32(p + 4), 8u);
  EXPECT_EQ(DecodeFixed64(p + 8), 0x0102030405060708ull);
}

void ExpectCorruptAt(const std::string& bytes, uint64_t offset, const std::string& what) {
  VersionEdit d;
  Status s = VersionEdit::Decode(bytes, "dir/MANIFEST-000001", &d, 100);
  ASSERT_TRUE(s.IsCorruption()) << what << ": " << s.ToString();
  EXPECT_NE(s.message().find("dir/MANIFEST-000001 at offset " + std::to_string(100 + offset)), std::string::npos)
      << what << ": " << s.message();
}

TEST(VersionEdit, EveryTruncationIsCorruption) {
  const std::string bytes = FullEdit().Encode();
  // Field boundaries decode (a shorter edit); anything else is Corruption at the cut field.
  size_t field_start = 0;
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    VersionEdit d;
    Status s = VersionEdit::Decode(std::string_view(bytes).substr(0, cut), "m", &d);
    const uint32_t len = DecodeFixed32(reinterpret_cast<const uint8_t*>(bytes.data()) + field_start + 4);
    if (cut == field_start + 8 + len) {
      EXPECT_TRUE(s.ok()) << cut;
      field_start = cut;
    } else {
      ExpectCorruptAt(bytes.substr(0, cut), field_start, "cut at " + std::to_string(cut));
    }
  }
}

TEST(VersionEdit, MalformedFieldsAreCorruption) {
  const std::string good = FullEdit().Encode();
  // Field starts: 0 (tag 1, 12 bytes), 12, 28, 44 (tags 2-4), 60, 100 (adds), 140, 156 (removes).
  auto with = [&](size_t at, uint8_t byte) {
    std::string b = good;
    b[at] = static_cast<char>(byte);
    return b;
  };
  ExpectCorruptAt(with(0, 7), 0, "unknown tag 7");
  ExpectCorruptAt(with(0, 0), 0, "tag 0");
  ExpectCorruptAt(with(13, 1), 12, "tag 258");
  ExpectCorruptAt(with(2, 1), 0, "reserved low byte");
  ExpectCorruptAt(with(31, 1), 28, "reserved high byte");
  ExpectCorruptAt(with(4, 8), 0, "format version of length 8");
  ExpectCorruptAt(with(16, 4), 12, "log number of length 4");
  ExpectCorruptAt(with(64, 31), 60, "add of length 31");
  ExpectCorruptAt(with(144, 16), 140, "remove of length 16");
  ExpectCorruptAt(with(7, 1), 0, "length 2^24 + 4");
  // Out of order and repeated fields.
  VersionEdit a, b;
  a.last_seq = 1;
  b.log_number = 1;
  ExpectCorruptAt(a.Encode() + b.Encode(), 16, "log number after last seq");
  ExpectCorruptAt(b.Encode() + b.Encode(), 16, "log number twice");
  VersionEdit add, rm;
  add.added.push_back({1, 2, 3, 4});
  rm.removed.push_back(1);
  ExpectCorruptAt(rm.Encode() + add.Encode(), 16, "add after remove");
  VersionEdit fv;
  fv.format_version = 2;
  ExpectCorruptAt(b.Encode() + fv.Encode(), 16, "format version not first");
}

// --- the version set ---

TEST(VersionSet, CreateWritesTheFirstManifestAndCurrent) {
  MemoryEnv env;
  auto vs = VersionSet::Create(&env, kDir);
  ASSERT_TRUE(vs.ok()) << vs.status().ToString();
  EXPECT_EQ(Read(&env, "/db/CURRENT"), "MANIFEST-000001\n");
  EXPECT_TRUE(env.FileExists("/db/MANIFEST-000001"));
  auto v = (*vs)->current();
  EXPECT_TRUE(v->segments.empty());
  EXPECT_EQ(v->next_file_number, 2u);
  EXPECT_EQ((*vs)->NewFileNumber(), 2u);
  // A second Create refuses the existing database.
  EXPECT_EQ(VersionSet::Create(&env, kDir).status().code(), Code::kAlreadyExists);
}

TEST(VersionSet, RecoverGivesTheCreatedVersionAndWritesNothing) {
  MemoryEnv env;
  ASSERT_TRUE(VersionSet::Create(&env, kDir).ok());
  const std::string manifest = Read(&env, "/db/MANIFEST-000001");
  auto vs = MustRecover(&env);
  ASSERT_TRUE(vs);
  EXPECT_TRUE(vs->current()->segments.empty());
  EXPECT_EQ(vs->current()->next_file_number, 2u);
  EXPECT_EQ(Read(&env, "/db/MANIFEST-000001"), manifest);
  EXPECT_EQ(env.ListDir(kDir)->size(), 2u);
}

TEST(VersionSet, ManyEditsRecoverToTheSameVersion) {
  MemoryEnv env;
  auto vs = std::move(VersionSet::Create(&env, kDir)).value();
  for (int i = 1; i <= 40; ++i) {
    ASSERT_TRUE(Flush(vs.get(), 10 + i, vs->NewFileNumber()).ok()) << i;
    if (i % 7 == 0) ASSERT_TRUE(MergeAll(vs.get()).ok()) << i;
  }
  auto v = vs->current();
  ASSERT_EQ(v->segments.size(), 6u);  // merged at 35, then 5 flushes
  for (size_t i = 1; i < v->segments.size(); ++i) {
    EXPECT_EQ(v->segments[i].last_seq + 1, v->segments[i - 1].first_seq);  // newest first, adjacent
  }
  auto again = MustRecover(&env);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again->current(), *v);
  EXPECT_EQ(again->NewFileNumber(), v->next_file_number);
}

TEST(VersionSet, MarkFileNumberUsedSkipsNumbersNoManifestNames) {
  MemoryEnv env;
  ASSERT_TRUE(VersionSet::Create(&env, kDir).ok());
  auto vs = MustRecover(&env);
  ASSERT_TRUE(vs);
  vs->MarkFileNumberUsed(1);  // below the counter: no change
  EXPECT_EQ(vs->NewFileNumber(), 2u);
  vs->MarkFileNumberUsed(9);  // a WAL file created after the last edit
  EXPECT_EQ(vs->NewFileNumber(), 10u);
  MutexLock l(vs->install_mu());
  VersionEdit e;
  ASSERT_TRUE(vs->LogAndApply(&e).ok());
  EXPECT_GT(vs->current()->next_file_number, 10u);  // logged: the next open hands out none of them either
}

TEST(VersionSet, TheFirstEditAfterRecoverStartsANewManifest) {
  MemoryEnv env;
  ASSERT_TRUE(VersionSet::Create(&env, kDir).ok());
  auto vs = MustRecover(&env);
  ASSERT_TRUE(Flush(vs.get(), 5, 0).ok());
  const std::string m = ManifestPath(vs.get());
  EXPECT_NE(m, "/db/MANIFEST-000001");
  EXPECT_EQ(Read(&env, "/db/CURRENT"), m.substr(4) + "\n");
  EXPECT_FALSE(env.FileExists("/db/MANIFEST-000001"));
  EXPECT_EQ(*MustRecover(&env)->current(), *vs->current());
}

// Writes a database with `edits` flushes and returns the manifest's path (the log is never rolled over).
std::string BuildLog(MemoryEnv* env, int edits, std::shared_ptr<const Version>* after_each_but_last = nullptr) {
  auto vs = std::move(VersionSet::Create(env, kDir)).value();
  for (int i = 0; i < edits; ++i) {
    if (i == edits - 1 && after_each_but_last) *after_each_but_last = vs->current();
    EXPECT_TRUE(Flush(vs.get(), 3, 0).ok());
  }
  return ManifestPath(vs.get());
}

TEST(VersionSet, TornTailIsDroppedNotReported) {
  MemoryEnv env;
  std::shared_ptr<const Version> before_last;
  const std::string path = BuildLog(&env, 4, &before_last);
  const std::string full = Read(&env, path);
  VersionEdit last;
  last.added.push_back({});  // the last record's size: one add, last seq, log number, next file number
  last.last_seq = last.log_number = last.next_file_number = 0;
  const size_t last_record = wal::kHeaderSize + last.Encode().size();
  for (size_t cut = full.size() - last_record; cut < full.size(); ++cut) {
    Write(&env, path, full.substr(0, cut));
    auto vs = MustRecover(&env);
    ASSERT_TRUE(vs) << cut;
    EXPECT_EQ(*vs->current(), *before_last) << cut;
  }
  // Zeros past the last good record are a torn tail too.
  Write(&env, path, full.substr(0, full.size() - last_record) + std::string(last_record, '\0'));
  ASSERT_TRUE(MustRecover(&env));
}

TEST(VersionSet, AFlippedByteIsCorruptionNamingFileAndOffset) {
  MemoryEnv env;
  const std::string path = BuildLog(&env, 3);
  const std::string full = Read(&env, path);
  for (size_t i = 0; i < full.size(); ++i) {
    std::string bad = full;
    bad[i] ^= 0x20;
    Write(&env, path, bad);
    // Every byte is under a checksum (the length too: the header has its own), so no flip is a torn tail.
    auto r = VersionSet::Recover(&env, kDir);
    ASSERT_TRUE(r.status().IsCorruption()) << i << ": " << r.status().ToString();
    EXPECT_EQ(r.status().message().rfind(path + " at offset ", 0), 0u) << i << ": " << r.status().message();
  }
}

TEST(VersionSet, RolloverPastTheThresholdKeepsTheState) {
  MemoryEnv env;
  VersionSetOptions o;
  o.max_manifest_bytes = 300;
  auto vs = std::move(VersionSet::Create(&env, kDir, o)).value();
  std::string first = ManifestPath(vs.get());
  int rollovers = 0;
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(Flush(vs.get(), 2, 0).ok());
    const std::string now = ManifestPath(vs.get());
    if (now != first) {
      ++rollovers;
      EXPECT_FALSE(env.FileExists(first)) << first;
      EXPECT_EQ(Read(&env, "/db/CURRENT"), now.substr(4) + "\n");
      first = now;
    }
    auto again = MustRecover(&env, o);
    ASSERT_TRUE(again);
    EXPECT_EQ(*again->current(), *vs->current()) << i;
  }
  EXPECT_GE(rollovers, 3);
  auto names = env.ListDir(kDir).value();
  EXPECT_EQ(names.size(), 2u);  // CURRENT and one manifest
}

TEST(VersionSet, AFailedAppendInstallsNothingAndTheNextEditRollsOver) {
  MemoryEnv mem;
  testing::FaultInjectionEnv env(&mem);
  auto vs = std::move(VersionSet::Create(&env, kDir)).value();
  ASSERT_TRUE(Flush(vs.get(), 4, 0).ok());
  const std::string m1 = ManifestPath(vs.get());
  const Version before = *vs->current();
  for (testing::Op op : {testing::Op::kAppend, testing::Op::kSync}) {
    env.FailNth(op, 1);
    EXPECT_TRUE(Flush(vs.get(), 4, 0).IsIOError());
    env.ClearFaults();
    EXPECT_EQ(*vs->current(), before);
    EXPECT_EQ(ManifestPath(vs.get()), m1);  // the old manifest stays live
  }
  ASSERT_TRUE(Flush(vs.get(), 4, 0).ok());
  const std::string m2 = ManifestPath(vs.get());
  EXPECT_NE(m2, m1);
  EXPECT_FALSE(mem.FileExists(m1));
  EXPECT_EQ(Read(&mem, "/db/CURRENT"), m2.substr(4) + "\n");
  EXPECT_EQ(vs->current()->segments.size(), 2u);
  EXPECT_EQ(*MustRecover(&mem)->current(), *vs->current());
}

TEST(VersionSet, AFailedRolloverLeavesTheOldManifestLiveAndIsRetried) {
  MemoryEnv mem;
  testing::FaultInjectionEnv env(&mem);
  auto vs = std::move(VersionSet::Create(&env, kDir)).value();
  ASSERT_TRUE(Flush(vs.get(), 4, 0).ok());
  env.FailNth(testing::Op::kSync, 1);  // the append
  ASSERT_FALSE(Flush(vs.get(), 4, 0).ok());
  for (testing::Op op : {testing::Op::kAppend, testing::Op::kSync, testing::Op::kSyncDir, testing::Op::kRename}) {
    env.FailNth(op, 1);  // now inside the rollover
    EXPECT_FALSE(Flush(vs.get(), 4, 0).ok());
    env.ClearFaults();
    EXPECT_EQ(vs->current()->segments.size(), 1u);
    auto r = MustRecover(&mem);  // CURRENT names the old manifest or (after the rename) the abandoned one
    ASSERT_TRUE(r);
  }
  ASSERT_TRUE(Flush(vs.get(), 4, 0).ok());
  EXPECT_EQ(vs->current()->segments.size(), 2u);
  EXPECT_EQ(mem.ListDir(kDir)->size(), 2u);  // the abandoned manifests are gone
  EXPECT_EQ(*MustRecover(&mem)->current(), *vs->current());
}

TEST(VersionSet, EditsBreakingTheRulesAreRefused) {
  MemoryEnv env;
  auto vs = std::move(VersionSet::Create(&env, kDir)).value();
  ASSERT_TRUE(Flush(vs.get(), 10, 5).ok());  // seqs [1, 10]
  const Version before = *vs->current();
  const uint64_t live = before.segments[0].number;
  const struct {
    const char* what;
    VersionEdit edit;
  } cases[] = {
      {"remove a segment that is not live", {.removed = {live + 100}}},
      {"remove twice", {.removed = {live, live}}},
      {"add a live number", {.last_seq = 12, .added = {{live, 1, 11, 12}}}},
      {"overlapping intervals", {.last_seq = 12, .added = {{vs->NewFileNumber(), 1, 10, 12}}}},
      {"an interval past last seq", {.added = {{vs->NewFileNumber(), 1, 11, 12}}}},
      {"first seq above last seq", {.last_seq = 13, .added = {{vs->NewFileNumber(), 1, 13, 12}}}},
      {"a number not below the next file number",
       {.last_seq = 12, .added = {{vs->current()->next_file_number + 1000, 1, 11, 12}}}},
      {"last seq decreasing", {.last_seq = 9}},
      {"log number decreasing", {.log_number = 4}},
      {"format version", {.format_version = 2}},
  };
  for (const auto& c : cases) {
    Status s = Apply(vs.get(), c.edit);
    EXPECT_TRUE(s.IsInvalidArgument()) << c.what << ": " << s.ToString();
    EXPECT_EQ(*vs->current(), before) << c.what;
  }
  // Still usable, and nothing of the refused edits is in the log.
  ASSERT_TRUE(Flush(vs.get(), 2, 5).ok());
  EXPECT_EQ(*MustRecover(&env)->current(), *vs->current());
}

// Writes a manifest log of the given edits (payloads as given) and CURRENT naming it.
void WriteLog(Env* env, const std::vector<std::string>& payloads, uint8_t type = 32) {
  std::string log;
  uint64_t seq = 0;
  for (const std::string& p : payloads) {
    uint8_t h[wal::kHeaderSize];
    wal::EncodeHeader(h, type, ++seq, p.size(), crc32c::Value(p.data(), p.size()));
    log.append(reinterpret_cast<const char*>(h), sizeof(h));
    log += p;
  }
  Write(env, "/db/MANIFEST-000003", log);
  Write(env, "/db/CURRENT", "MANIFEST-000003\n");
}

// A first record of a manifest: format version, a snapshot of every field,
// segment 5 holding seqs [1, 10].
VersionEdit SnapshotEdit(std::optional<uint32_t> format_version = 2, std::optional<uint64_t> next_file_number = 10,
                         bool with_segment = true) {
  VersionEdit e;
  e.format_version = format_version;
  e.log_number = 1;
  e.last_seq = 10;
  e.next_file_number = next_file_number;
  if (with_segment) e.added.push_back({5, 100, 1, 10});
  return e;
}

void ExpectRecoverCorrupt(Env* env, const std::string& file, const std::string& what) {
  auto r = VersionSet::Recover(env, kDir);
  ASSERT_TRUE(r.status().IsCorruption()) << what << ": " << r.status().ToString();
  EXPECT_EQ(r.status().message().rfind(file + " at offset ", 0), 0u) << what << ": " << r.status().message();
}

TEST(VersionSet, ReplayChecksTheRules) {
  MemoryEnv env;
  const std::string m = "/db/MANIFEST-000003";
  WriteLog(&env, {SnapshotEdit().Encode()});
  ASSERT_TRUE(MustRecover(&env));
  const struct {
    const char* what;
    std::vector<VersionEdit> edits;
  } cases[] = {
      {"format version 1", {SnapshotEdit(1)}},
      {"no format version", {SnapshotEdit(std::nullopt)}},
      {"not a snapshot", {SnapshotEdit(2, std::nullopt)}},
      {"the manifest's own number not below next file number", {SnapshotEdit(2, 3, false)}},
      {"a segment number not below next file number", {SnapshotEdit(2, 5)}},
      {"remove a segment that is not live", {SnapshotEdit(), {.removed = {6}}}},
      {"overlapping intervals", {SnapshotEdit(), {.last_seq = 11, .added = {{6, 1, 10, 11}}}}},
      {"add a live segment", {SnapshotEdit(), {.last_seq = 11, .added = {{5, 1, 11, 11}}}}},
      {"format version in a later record", {SnapshotEdit(), {.format_version = 2}}},
      {"no record", {}},
  };
  for (const auto& c : cases) {
    std::vector<std::string> payloads;
    for (const VersionEdit& e : c.edits) payloads.push_back(e.Encode());
    WriteLog(&env, payloads);
    ExpectRecoverCorrupt(&env, m, c.what);
  }
  WriteLog(&env, {SnapshotEdit().Encode()}, 16);
  ExpectRecoverCorrupt(&env, m, "a record of type 16");
}

TEST(VersionSet, CurrentMustNameAManifestExactly) {
  MemoryEnv env;
  ASSERT_TRUE(VersionSet::Create(&env, kDir).ok());
  for (const char* junk : {"", "MANIFEST-000001", "MANIFEST-000001\n\n", "MANIFEST-1\n", "manifest-000001\n",
                           "MANIFEST-000001\r\n", " MANIFEST-000001\n", "seg-000001.pseg\n", "CURRENT\n"}) {
    Write(&env, "/db/CURRENT", junk);
    ExpectRecoverCorrupt(&env, "/db/CURRENT", std::string("CURRENT = '") + junk + "'");
  }
  Write(&env, "/db/CURRENT", "MANIFEST-000009\n");
  ExpectRecoverCorrupt(&env, "/db/CURRENT", "names a missing manifest");
  ASSERT_TRUE(env.RemoveFile("/db/CURRENT").ok());
  EXPECT_TRUE(VersionSet::Recover(&env, kDir).status().IsNotFound());
}

TEST(VersionSet, OldFormatDirectoriesAreRefusedNamingTheirVersion) {
  for (const char* name : {"MANIFEST", "KVMANIFEST"}) {
    for (bool long_enough : {true, false}) {
      MemoryEnv env;
      std::string bytes = "POMAIKVM";
      if (long_enough) {
        PutFixed32(&bytes, 3);
        bytes += "rest of the file";
      } else {
        bytes += "abc";
      }
      Write(&env, std::string("/db/") + name, bytes);
      const std::string want = std::string("/db/") + name + " holds a pomai database of format version 1 (manifest version " +
                               (long_enough ? "3" : "unknown") +
                               "); this build reads format version 2 and does not convert (no migration before 1.0)";
      Status s = CheckNotOldFormat(&env, kDir);
      EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
      EXPECT_EQ(s.message(), want);
      auto r = VersionSet::Recover(&env, kDir);
      EXPECT_TRUE(r.status().IsInvalidArgument());
      EXPECT_EQ(r.status().message(), want);
      EXPECT_EQ(VersionSet::Create(&env, kDir).status().message(), want);
      EXPECT_EQ(env.ListDir(kDir)->size(), 1u);  // nothing written
      // With a CURRENT the directory is a format-2 one.
      Write(&env, "/db/CURRENT", "MANIFEST-000001\n");
      EXPECT_TRUE(CheckNotOldFormat(&env, kDir).ok());
    }
  }
  MemoryEnv empty;
  EXPECT_TRUE(CheckNotOldFormat(&empty, kDir).ok());
}

}  // namespace
}  // namespace pomai::engine
