#include "segment/segment.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "segment_test_util.h"
#include "support/fault_env.h"
#include "support/temp_dir.h"

namespace pomai::segment {
namespace {

using pomai::testing::FaultInjectionEnv;
using pomai::testing::Op;
using pomai::testing::TempDir;
using testing::MakeSegment;
using testing::TestSegment;

std::shared_ptr<Segment> WriteAndOpen(Env* env, const TempDir& dir, const TestSegment& s,
                                      const std::string& name = "seg-000001.pseg") {
  Status st = WriteSegment(env, dir.path(), name, s.Contents());
  EXPECT_TRUE(st.ok()) << st.ToString();
  auto r = Segment::Open(env, dir.file(name));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : nullptr;
}

std::vector<std::string> DirEntries(Env* env, const TempDir& dir) {
  auto r = env->ListDir(dir.path());
  EXPECT_TRUE(r.ok());
  return r.ok() ? r.value() : std::vector<std::string>{};
}

// Everything a reader can see must equal what was written.
void ExpectSameContents(const Segment& seg, const TestSegment& s) {
  EXPECT_EQ(seg.dim(), s.info.dim);
  EXPECT_EQ(seg.info().metric, s.info.metric);
  EXPECT_EQ(seg.info().shard, s.info.shard);
  EXPECT_EQ(seg.info().min_seq, s.info.min_seq);
  EXPECT_EQ(seg.info().max_seq, s.info.max_seq);
  ASSERT_EQ(seg.row_count(), s.rows());
  ASSERT_EQ(seg.tombstone_count(), s.tombstones.size());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(seg.vectors()) % 64, 0u);
  if (s.rows() > 0) {
    EXPECT_EQ(std::memcmp(seg.ids(), s.ids.data(), s.ids.size() * 8), 0);
    EXPECT_EQ(std::memcmp(seg.vectors(), s.vectors.data(), s.vectors.size() * 4), 0);
  }
  if (!s.tombstones.empty()) {
    EXPECT_EQ(std::memcmp(seg.tombstones(), s.tombstones.data(), s.tombstones.size() * 8), 0);
  }
  for (size_t i = 0; i < s.rows(); ++i) {
    uint64_t row = ~0ull;
    ASSERT_TRUE(seg.FindRow(s.ids[i], &row)) << "id " << s.ids[i];
    EXPECT_EQ(row, i);
    EXPECT_EQ(std::memcmp(seg.vector(i), &s.vectors[i * s.info.dim], s.info.dim * 4), 0);
    auto meta = seg.Metadata(i);
    ASSERT_TRUE(meta.ok()) << meta.status().ToString();
    EXPECT_EQ(meta.value(), s.Meta(i)) << "row " << i;
  }
  for (uint64_t t : s.tombstones) EXPECT_TRUE(seg.HasTombstone(t)) << t;
  for (const auto& [kind, bytes] : s.extra) EXPECT_EQ(seg.Section(kind), bytes) << "kind " << kind;
  Status v = seg.Verify();
  EXPECT_TRUE(v.ok()) << v.ToString();
}

class SegmentRoundTrip : public ::testing::TestWithParam<uint32_t> {};

TEST_P(SegmentRoundTrip, EveryFieldReadsBack) {
  TempDir dir;
  TestSegment s = MakeSegment(300, GetParam(), 50, GetParam());
  std::string graph(1000, '\0');
  for (size_t i = 0; i < graph.size(); ++i) graph[i] = static_cast<char>(i * 31);
  s.extra = {{16, graph}, {17, "abc"}};
  auto seg = WriteAndOpen(Env::Default(), dir, s);
  ASSERT_NE(seg, nullptr);
  ExpectSameContents(*seg, s);
  EXPECT_EQ(seg->path(), dir.file("seg-000001.pseg"));
  EXPECT_EQ(seg->file_size(), testing::ReadAll(dir.file("seg-000001.pseg")).size());
  EXPECT_TRUE(seg->Section(18).empty());
  EXPECT_EQ(DirEntries(Env::Default(), dir), std::vector<std::string>{"seg-000001.pseg"});
}

INSTANTIATE_TEST_SUITE_P(Dims, SegmentRoundTrip, ::testing::Values(3u, 128u));

TEST(Segment, LookupsOfAbsentIdsFail) {
  TempDir dir;
  TestSegment s = MakeSegment(100, 8, 30);
  auto seg = WriteAndOpen(Env::Default(), dir, s);
  ASSERT_NE(seg, nullptr);
  uint64_t row = 12345;
  EXPECT_FALSE(seg->FindRow(0, &row));
  EXPECT_FALSE(seg->FindRow(s.ids.back() + 1, &row));
  for (size_t i = 1; i < s.ids.size(); ++i) {
    for (uint64_t id = s.ids[i - 1] + 1; id < s.ids[i]; ++id) EXPECT_FALSE(seg->FindRow(id, &row)) << id;
  }
  EXPECT_EQ(row, 12345u);
  EXPECT_FALSE(seg->HasTombstone(0));
  EXPECT_FALSE(seg->HasTombstone(s.tombstones.back() + 1));
  for (size_t i = 1; i < s.tombstones.size(); ++i) {
    for (uint64_t id = s.tombstones[i - 1] + 1; id < s.tombstones[i]; ++id) EXPECT_FALSE(seg->HasTombstone(id));
  }
  EXPECT_EQ(seg->Metadata(100).status().code(), Code::kInvalidArgument);
}

TEST(Segment, WithoutMetadataEveryRowHasEmptyMetadata) {
  TempDir dir;
  TestSegment s = MakeSegment(40, 4, 0);
  s.meta_offsets.clear();
  s.meta_blob.clear();
  auto seg = WriteAndOpen(Env::Default(), dir, s);
  ASSERT_NE(seg, nullptr);
  ExpectSameContents(*seg, s);
}

TEST(Segment, EmptySegmentRoundTrips) {
  TempDir dir;
  TestSegment s = MakeSegment(0, 16, 0);
  auto seg = WriteAndOpen(Env::Default(), dir, s);
  ASSERT_NE(seg, nullptr);
  ExpectSameContents(*seg, s);
  uint64_t row;
  EXPECT_FALSE(seg->FindRow(6, &row));
  EXPECT_FALSE(seg->HasTombstone(6));
}

TEST(Segment, EmptySegmentWithoutMetadataRoundTrips) {
  TempDir dir;
  TestSegment s = MakeSegment(0, 16, 0);
  s.meta_offsets.clear();
  auto seg = WriteAndOpen(Env::Default(), dir, s);
  ASSERT_NE(seg, nullptr);
  ExpectSameContents(*seg, s);
}

TEST(Segment, TombstoneOnlySegmentRoundTrips) {
  TempDir dir;
  TestSegment s = MakeSegment(0, 5, 25);
  auto seg = WriteAndOpen(Env::Default(), dir, s);
  ASSERT_NE(seg, nullptr);
  ExpectSameContents(*seg, s);
  EXPECT_EQ(seg->tombstone_count(), 25u);
}

// Each invalid input is rejected before any byte is written.
struct InvalidCase {
  const char* name;
  void (*mutate)(TestSegment*);
  const char* message;
};

const InvalidCase kInvalidCases[] = {
    {"UnsortedIds", [](TestSegment* s) { std::swap(s->ids[3], s->ids[4]); }, "ids are not strictly ascending"},
    {"DuplicateIds", [](TestSegment* s) { s->ids[4] = s->ids[3]; }, "ids are not strictly ascending"},
    {"UnsortedTombstones", [](TestSegment* s) { std::swap(s->tombstones[0], s->tombstones[1]); },
     "tombstones are not strictly ascending"},
    {"DuplicateTombstones", [](TestSegment* s) { s->tombstones[2] = s->tombstones[1]; },
     "tombstones are not strictly ascending"},
    {"OffsetsNotStartingAtZero", [](TestSegment* s) { s->meta_offsets[0] = 1; }, "must start at 0"},
    {"DecreasingOffsets", [](TestSegment* s) { s->meta_offsets[5] = s->meta_offsets[6] + 1; }, "offsets decrease"},
    {"ZeroDim",
     [](TestSegment* s) {
       s->info.dim = 0;
       s->vectors.clear();
     },
     "dim 0"},
    {"HugeDim", [](TestSegment* s) { s->info.dim = 65536; }, "dim 65536"},
    {"BadMetric", [](TestSegment* s) { s->info.metric = static_cast<simd::Metric>(3); }, "metric 3"},
    {"ExtraKindBelow16", [](TestSegment* s) { s->extra = {{5, "x"}}; }, "kind 5"},
    {"DuplicateExtraKind", [](TestSegment* s) { s->extra = {{20, "x"}, {21, "y"}, {20, "z"}}; }, "kind 20 appears twice"},
};

class SegmentInvalidContents : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(SegmentInvalidContents, IsInvalidArgumentAndWritesNothing) {
  TempDir dir;
  FaultInjectionEnv env;
  TestSegment s = MakeSegment(20, 4, 5);
  GetParam().mutate(&s);
  Status st = WriteSegment(&env, dir.path(), "seg-000001.pseg", s.Contents());
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find(GetParam().message), std::string::npos) << st.message();
  EXPECT_EQ(env.count(Op::kAppend), 0u);
  EXPECT_TRUE(DirEntries(&env, dir).empty());
}

INSTANTIATE_TEST_SUITE_P(Cases, SegmentInvalidContents, ::testing::ValuesIn(kInvalidCases),
                         [](const auto& info) { return std::string(info.param.name); });

// A failure anywhere in the write protocol leaves neither the segment nor its temporary file.
struct FaultCase {
  const char* name;
  Op op;
  uint64_t nth;
  int err;
  Code code;
};

const FaultCase kFaultCases[] = {
    {"FirstAppend", Op::kAppend, 1, EIO, Code::kIOError},
    {"ThirdAppend", Op::kAppend, 3, ENOSPC, Code::kResourceExhausted},
    {"Sync", Op::kSync, 1, EIO, Code::kIOError},
    {"SyncOutOfSpace", Op::kSync, 1, ENOSPC, Code::kResourceExhausted},
    {"Rename", Op::kRename, 1, EIO, Code::kIOError},
    {"SyncDir", Op::kSyncDir, 1, EIO, Code::kIOError},
};

class SegmentWriteFault : public ::testing::TestWithParam<FaultCase> {};

TEST_P(SegmentWriteFault, ReturnsErrorAndLeavesNoFile) {
  TempDir dir;
  FaultInjectionEnv env;
  TestSegment s = MakeSegment(50, 16, 5);
  env.FailNth(GetParam().op, GetParam().nth, GetParam().err);
  Status st = WriteSegment(&env, dir.path(), "seg-000001.pseg", s.Contents());
  EXPECT_EQ(st.code(), GetParam().code) << st.ToString();
  EXPECT_FALSE(env.FileExists(dir.file("seg-000001.pseg")));
  EXPECT_FALSE(env.FileExists(dir.file("seg-000001.pseg.tmp")));
  EXPECT_TRUE(DirEntries(&env, dir).empty());

  // The same write succeeds once the fault is gone.
  env.ClearFaults();
  ASSERT_TRUE(WriteSegment(&env, dir.path(), "seg-000001.pseg", s.Contents()).ok());
  auto seg = Segment::Open(&env, dir.file("seg-000001.pseg"));
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  EXPECT_TRUE(seg.value()->Verify().ok());
}

INSTANTIATE_TEST_SUITE_P(Faults, SegmentWriteFault, ::testing::ValuesIn(kFaultCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Segment, WriteIsDurableTmpSyncRenameSyncDir) {
  TempDir dir;
  FaultInjectionEnv env;
  TestSegment s = MakeSegment(10, 4, 1);
  ASSERT_TRUE(WriteSegment(&env, dir.path(), "seg-000001.pseg", s.Contents()).ok());
  EXPECT_EQ(env.count(Op::kSync), 1u);
  EXPECT_EQ(env.count(Op::kRename), 1u);
  EXPECT_EQ(env.count(Op::kSyncDir), 1u);
}

// Records the largest single Append, to check the writer streams.
class AppendSizeEnv : public EnvWrapper {
 public:
  AppendSizeEnv() : EnvWrapper(Env::Default()) {}
  size_t max_append() const { return max_append_; }
  uint64_t total() const { return total_; }
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& p) override {
    auto r = target()->NewWritableFile(p);
    if (!r.ok()) return r.status();
    return std::unique_ptr<WritableFile>(new File(this, std::move(r).value()));
  }

 private:
  class File : public WritableFile {
   public:
    File(AppendSizeEnv* env, std::unique_ptr<WritableFile> base) : env_(env), base_(std::move(base)) {}
    Status Append(const void* d, size_t n) override {
      env_->max_append_ = std::max(env_->max_append_, n);
      env_->total_ += n;
      return base_->Append(d, n);
    }
    Status Sync() override { return base_->Sync(); }
    Status Close() override { return base_->Close(); }
    uint64_t Size() const override { return base_->Size(); }
    const std::string& path() const override { return base_->path(); }

   private:
    AppendSizeEnv* env_;
    std::unique_ptr<WritableFile> base_;
  };
  size_t max_append_ = 0;
  uint64_t total_ = 0;
};

TEST(Segment, WriterStreamsLargeSectionsInBoundedAppends) {
  TempDir dir;
  AppendSizeEnv env;
  TestSegment s = MakeSegment(2048, 1024, 0);  // 8 MiB of vectors
  s.meta_offsets.clear();                      // 16 KiB of zero offsets, written from no buffer
  auto seg = WriteAndOpen(&env, dir, s);
  ASSERT_NE(seg, nullptr);
  EXPECT_EQ(env.total(), seg->file_size());
  EXPECT_LE(env.max_append(), size_t{4} << 20);
  ExpectSameContents(*seg, s);
}

// A mapping whose row-data pages are PROT_NONE: touching them faults.
class RowDataProtectedMapping : public MappedFile {
 public:
  RowDataProtectedMapping(std::string path, uint8_t* base, size_t size) : path_(std::move(path)), base_(base), size_(size) {}
  ~RowDataProtectedMapping() override { ::munmap(base_, size_); }
  const uint8_t* data() const override { return base_; }
  size_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  uint8_t* base_;
  size_t size_;
};

class RowDataProtectedEnv : public EnvWrapper {
 public:
  RowDataProtectedEnv() : EnvWrapper(Env::Default()) {}
  uint64_t protected_bytes() const { return protected_bytes_; }
  Result<std::unique_ptr<MappedFile>> MapFile(const std::string& path) override {
    const std::string bytes = testing::ReadAll(path);
    testing::Image image(bytes);
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const uint64_t lo = page;  // the header lives in page 0
    const uint64_t hi = image.table() / page * page;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::IOError("open " + path);
    void* base = ::mmap(nullptr, bytes.size(), PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (base == MAP_FAILED) return Status::IOError("mmap " + path);
    if (hi > lo) {
      if (::mprotect(static_cast<uint8_t*>(base) + lo, hi - lo, PROT_NONE) != 0) return Status::IOError("mprotect");
      protected_bytes_ = hi - lo;
    }
    return std::unique_ptr<MappedFile>(new RowDataProtectedMapping(path, static_cast<uint8_t*>(base), bytes.size()));
  }

 private:
  uint64_t protected_bytes_ = 0;
};

// Invariant 2: opening reads the header, the section table and the footer, never the rows.
TEST(Segment, OpenDoesNotTouchRowData) {
  TempDir dir;
  TestSegment s = MakeSegment(512, 256, 0);  // 512 KiB of vectors
  ASSERT_TRUE(WriteSegment(Env::Default(), dir.path(), "seg-000001.pseg", s.Contents()).ok());
  RowDataProtectedEnv env;
  auto seg = Segment::Open(&env, dir.file("seg-000001.pseg"));
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  EXPECT_GE(env.protected_bytes(), 512u * 256 * 4 - 8192);
  EXPECT_EQ(seg.value()->row_count(), 512u);
  EXPECT_EQ(seg.value()->dim(), 256u);
}

TEST(Segment, OpenOfMissingFileIsNotCorruption) {
  TempDir dir;
  auto r = Segment::Open(Env::Default(), dir.file("seg-000009.pseg"));
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(r.status().IsCorruption()) << r.status().ToString();
}

// The first checks of a section race from many threads (as searches do on a
// freshly opened segment): one reads it, all get its result.
TEST(Segment, ConcurrentFirstChecksAgree) {
  TempDir dir;
  TestSegment s = MakeSegment(2000, 32, 10);
  ASSERT_TRUE(WriteSegment(Env::Default(), dir.path(), "seg-000001.pseg", s.Contents()).ok());
  std::string bytes = testing::ReadAll(dir.file("seg-000001.pseg"));
  testing::Image img(bytes);
  img.bytes()[img.section_offset(static_cast<uint32_t>(SectionKind::kVectors)) + 5000] ^= 4;
  testing::MemoryMapEnv env;
  env.Put(dir.file("seg-000002.pseg"), img.bytes());
  for (int round = 0; round < 20; ++round) {
    auto seg = Segment::Open(&env, dir.file("seg-000002.pseg"));
    ASSERT_TRUE(seg.ok()) << seg.status().ToString();
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        if (!seg.value()->CheckSection(SectionKind::kIds).ok()) ++wrong;
        if (!seg.value()->CheckSection(SectionKind::kVectors).IsCorruption()) ++wrong;
        if (!seg.value()->CheckAllSections().IsCorruption()) ++wrong;
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(wrong.load(), 0);
  }
}

TEST(Segment, ConcurrentReadersSeeTheSameRows) {
  TempDir dir;
  TestSegment s = MakeSegment(200, 8, 10);
  auto seg = WriteAndOpen(Env::Default(), dir, s);
  ASSERT_NE(seg, nullptr);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (size_t i = 0; i < s.rows(); ++i) {
        uint64_t row;
        if (!seg->FindRow(s.ids[i], &row) || row != i) ++mismatches;
        auto m = seg->Metadata(i);
        if (!m.ok() || m.value() != s.Meta(i)) ++mismatches;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace pomai::segment
