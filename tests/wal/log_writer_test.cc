#include "wal/log_writer.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/fault_env.h"
#include "support/temp_dir.h"
#include "wal/log_format.h"
#include "wal_test_util.h"

namespace pomai::wal {
namespace {

using pomai::testing::FaultInjectionEnv;
using pomai::testing::Op;
using pomai::testing::TempDir;
using testutil::Frame;
using testutil::Payload;
using testutil::ReadAll;

// Forwards to another file and calls a hook before every Sync (to slow it down or hold it).
class HookedFile : public WritableFile {
 public:
  HookedFile(std::unique_ptr<WritableFile> base, std::function<void()> before_sync)
      : base_(std::move(base)), before_sync_(std::move(before_sync)) {}
  Status Append(const void* d, size_t n) override { return base_->Append(d, n); }
  Status Sync() override {
    before_sync_();
    return base_->Sync();
  }
  Status Close() override { return base_->Close(); }
  uint64_t Size() const override { return base_->Size(); }
  const std::string& path() const override { return base_->path(); }

 private:
  std::unique_ptr<WritableFile> base_;
  std::function<void()> before_sync_;
};

class WalWriterTest : public ::testing::Test {
 protected:
  std::unique_ptr<WritableFile> NewFile(const std::string& name) {
    auto f = env_.NewWritableFile(dir_.file(name));
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    return std::move(f).value();
  }
  std::string Contents(const std::string& name) {
    std::string s;
    EXPECT_TRUE(ReadFileToString(&env_, dir_.file(name), &s).ok());
    return s;
  }
  testutil::ReadResult ReadBack(const std::string& name) { return ReadAll(Contents(name), dir_.file(name)); }
  // A commit fails with `code` and applies nothing.
  static void ExpectCommitFails(Writer& w, Code code) {
    bool applied = false;
    Status s = w.Commit(1, "x", [&](uint64_t) { applied = true; });
    EXPECT_EQ(s.code(), code) << s.ToString();
    EXPECT_FALSE(applied);
  }

  TempDir dir_;
  FaultInjectionEnv env_;
  const std::function<void(uint64_t)> no_apply_ = [](uint64_t) {};
};

TEST_F(WalWriterTest, WritesTheDocumentedByteLayout) {
  {
    Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 7);
    ASSERT_TRUE(w.Commit(3, "hello", no_apply_).ok());
    ASSERT_TRUE(w.Commit(255, "", no_apply_).ok());
  }
  EXPECT_EQ(Contents("wal-000001.log"), Frame(3, 7, "hello") + Frame(255, 8, ""));
}

TEST_F(WalWriterTest, RoundTripsVariedSizesTypesAndSeqs) {
  std::mt19937_64 rng(42);
  std::vector<size_t> sizes = {0, 1, 23, 24, 25, 4095, 4096, 4097, 65536, 1u << 20};
  for (int i = 0; i < 200; ++i) sizes.push_back(rng() % 3000);
  const uint64_t first_seq = 1000;
  std::vector<uint64_t> applied;
  {
    Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, first_seq);
    for (size_t i = 0; i < sizes.size(); ++i) {
      uint8_t type = static_cast<uint8_t>(1 + i % 255);
      ASSERT_TRUE(w.Commit(type, Payload(sizes[i], i), [&](uint64_t seq) { applied.push_back(seq); }).ok());
    }
    EXPECT_EQ(w.next_seq(), first_seq + sizes.size());
    EXPECT_EQ(w.file_size(), Contents("wal-000001.log").size());
  }
  auto r = ReadBack("wal-000001.log");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_FALSE(r.torn);
  ASSERT_EQ(r.records.size(), sizes.size());
  uint64_t offset = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(r.records[i].type, 1 + i % 255);
    EXPECT_EQ(r.records[i].seq, first_seq + i);
    EXPECT_EQ(applied[i], first_seq + i);
    EXPECT_EQ(r.records[i].offset, offset);
    EXPECT_TRUE(r.records[i].payload == Payload(sizes[i], i)) << "record " << i;
    offset += kHeaderSize + sizes[i];
  }
}

TEST_F(WalWriterTest, PiecesAreWrittenAsOneRecordIdenticalToTheJoinedPayload) {
  // More pieces than one writev takes (512), empty pieces among them.
  const std::string whole = Payload(1500 * 7, 3);
  std::vector<std::string_view> pieces;
  for (size_t i = 0; i < 1500; ++i) {
    pieces.emplace_back(whole.data() + i * 7, 7);
    if (i % 100 == 0) pieces.emplace_back();
  }
  {
    Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 5);
    ASSERT_TRUE(w.Commit(2, pieces.data(), pieces.size(), no_apply_).ok());
    ASSERT_TRUE(w.Commit(2, pieces.data(), 0, no_apply_).ok());
    ASSERT_TRUE(w.Commit(2, whole, no_apply_).ok());
  }
  EXPECT_EQ(Contents("wal-000001.log"), Frame(2, 5, whole) + Frame(2, 6, "") + Frame(2, 7, whole));
}

TEST_F(WalWriterTest, RecordBiggerThanTheGroupCapIsWrittenWhole) {
  const std::string big = Payload(5u << 20, 9);
  {
    Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 1);
    ASSERT_TRUE(w.Commit(1, big, no_apply_).ok());
  }
  auto r = ReadBack("wal-000001.log");
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_TRUE(r.records[0].payload == big);
}

TEST_F(WalWriterTest, AppendsAtTheEndOfAnExistingFile) {
  {
    Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 1);
    ASSERT_TRUE(w.Commit(1, "one", no_apply_).ok());
  }
  {
    auto f = env_.NewAppendableFile(dir_.file("wal-000001.log"));
    ASSERT_TRUE(f.ok());
    Writer w(std::move(f).value(), SyncPolicy::kNever, 2);
    EXPECT_EQ(w.file_size(), kHeaderSize + 3);
    ASSERT_TRUE(w.Commit(1, "two", no_apply_).ok());
  }
  auto r = ReadBack("wal-000001.log");
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[1].payload, "two");
  EXPECT_EQ(r.records[1].seq, 2u);
}

TEST_F(WalWriterTest, AlwaysPolicySyncsBeforeApplyAndReturn) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kAlways, 1);
  for (int i = 0; i < 10; ++i) {
    const uint64_t before = env_.count(Op::kSync);
    uint64_t at_apply = 0;
    ASSERT_TRUE(w.Commit(1, "x", [&](uint64_t) { at_apply = env_.count(Op::kSync); }).ok());
    EXPECT_GT(at_apply, before);
    EXPECT_EQ(env_.count(Op::kSync), before + 1);
  }
}

TEST_F(WalWriterTest, NeverPolicyDoesNotSyncOnCommitOnlyOnSync) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 1);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(w.Commit(1, "x", no_apply_).ok());
  EXPECT_EQ(env_.count(Op::kSync), 0u);
  EXPECT_EQ(env_.count(Op::kAppend), 50u);
  ASSERT_TRUE(w.Sync().ok());
  EXPECT_EQ(env_.count(Op::kSync), 1u);
}

TEST_F(WalWriterTest, ConcurrentCommitsAreGroupedAndAppliedOnceInSeqOrder) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  constexpr uint64_t kFirstSeq = 100;
  // A slow fdatasync, as on a real disk, so that callers queue up behind a leader.
  auto file = std::make_unique<HookedFile>(NewFile("wal-000001.log"),
                                           [] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); });
  Writer w(std::move(file), SyncPolicy::kAlways, kFirstSeq);

  uint64_t expected_seq = kFirstSeq;  // touched only by leaders, which the writer serialises
  std::vector<std::vector<uint64_t>> seq_of(kThreads, std::vector<uint64_t>(kPerThread, 0));
  std::vector<std::vector<int>> applies(kThreads, std::vector<int>(kPerThread, 0));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string payload = std::to_string(t) + ":" + std::to_string(i) + ":" + Payload(i % 50, i);
        Status s = w.Commit(1 + t, payload, [&](uint64_t seq) {
          if (seq != expected_seq) failures++;
          expected_seq = seq + 1;
          seq_of[t][i] = seq;
          applies[t][i]++;
        });
        if (!s.ok() || applies[t][i] != 1) failures++;  // applied before Commit returns
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);

  constexpr uint64_t kRecords = kThreads * kPerThread;
  EXPECT_EQ(expected_seq, kFirstSeq + kRecords);
  EXPECT_EQ(w.next_seq(), kFirstSeq + kRecords);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) ASSERT_EQ(applies[t][i], 1) << t << ":" << i;
  }
  const uint64_t syncs = env_.count(Op::kSync);
  EXPECT_GE(syncs, 1u);
  EXPECT_LT(syncs, kRecords) << "no two commits shared a sync";

  auto r = ReadBack("wal-000001.log");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.records.size(), kRecords);
  for (uint64_t k = 0; k < kRecords; ++k) {
    const auto& rec = r.records[k];
    ASSERT_EQ(rec.seq, kFirstSeq + k);
    // The record in the file under this seq is the one whose apply got this seq.
    int t = 0, i = 0;
    ASSERT_EQ(std::sscanf(rec.payload.c_str(), "%d:%d:", &t, &i), 2);
    ASSERT_EQ(rec.type, 1 + t);
    EXPECT_EQ(seq_of[t][i], rec.seq);
  }
}

TEST_F(WalWriterTest, FailedSyncIsStickyAndNothingIsApplied) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kAlways, 1);
  ASSERT_TRUE(w.Commit(1, "before", no_apply_).ok());
  env_.FailNth(Op::kSync, 1, EIO);  // once only
  ExpectCommitFails(w, Code::kIOError);
  const uint64_t appends = env_.count(Op::kAppend);
  const uint64_t syncs = env_.count(Op::kSync);
  ExpectCommitFails(w, Code::kIOError);
  EXPECT_EQ(env_.count(Op::kAppend), appends) << "a sticky writer must not write";
  EXPECT_EQ(env_.count(Op::kSync), syncs);
  EXPECT_TRUE(w.sticky_error().IsIOError());
  EXPECT_TRUE(w.Sync().IsIOError());
  EXPECT_EQ(w.next_seq(), 2u);
}

TEST_F(WalWriterTest, FailedAppendIsStickyWithItsCode) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 1);
  env_.FailNth(Op::kAppend, 1, ENOSPC);
  ExpectCommitFails(w, Code::kResourceExhausted);
  ExpectCommitFails(w, Code::kResourceExhausted);
  EXPECT_EQ(env_.count(Op::kAppend), 1u);
}

TEST_F(WalWriterTest, FailedExplicitSyncIsSticky) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 1);
  ASSERT_TRUE(w.Commit(1, "x", no_apply_).ok());
  env_.FailNth(Op::kSync, 1, EIO);
  EXPECT_TRUE(w.Sync().IsIOError());
  ExpectCommitFails(w, Code::kIOError);
}

TEST_F(WalWriterTest, EveryConcurrentCallerSeesTheStickyErrorAndNoneApplies) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kAlways, 1);
  env_.FailNth(Op::kSync, 1, EIO);
  std::atomic<int> applied{0}, ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (w.Commit(1, "x", [&](uint64_t) { applied++; }).ok()) ok++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(applied.load(), 0);
  EXPECT_EQ(ok.load(), 0);
  EXPECT_EQ(env_.count(Op::kSync), 1u);
}

// Stages: concurrent writers of small (staged on the leader) and large
// (staged on the helper thread while the group is written) records. Every
// record is staged once and applied once, stages and applies each in log
// order, and each apply after its record's stage.
TEST_F(WalWriterTest, StagesRunOnceInLogOrderBeforeTheirApplies) {
  constexpr int kThreads = 6;
  constexpr int kPerThread = 60;
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 1);
  std::mutex mu;  // the stages of a large group run on another thread than the applies
  std::vector<std::pair<char, uint64_t>> events;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // A third of the records are large enough to send their group to the helper thread.
        const std::string payload = Payload(i % 3 == 0 ? (200u << 10) : 100, t * 1000 + i);
        uint64_t staged = 0, applied = 0;
        const std::string_view piece(payload);
        Status s = w.Commit(
            1, &piece, 1,
            [&](uint64_t seq) {
              std::lock_guard<std::mutex> l(mu);
              events.push_back({'s', seq});
              staged = seq;
            },
            [&](uint64_t seq) {
              std::lock_guard<std::mutex> l(mu);
              events.push_back({'a', seq});
              applied = seq;
            });
        if (!s.ok() || staged == 0 || staged != applied) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  uint64_t next_stage = 1, next_apply = 1;
  for (const auto& [kind, seq] : events) {
    if (kind == 's') {
      ASSERT_EQ(seq, next_stage);
      ++next_stage;
    } else {
      ASSERT_EQ(seq, next_apply);
      ASSERT_LT(seq, next_stage) << "applied before it was staged";
      ++next_apply;
    }
  }
  EXPECT_EQ(next_stage, 1u + kThreads * kPerThread);
  EXPECT_EQ(next_apply, 1u + kThreads * kPerThread);
  auto r = ReadBack("wal-000001.log");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.records.size(), size_t{kThreads} * kPerThread);
}

// A failed write of a group, small or large: its stages ran (their effect is
// the caller's to keep unpublished), its applies did not, and the error is sticky.
TEST_F(WalWriterTest, AFailedGroupIsStagedButNeverApplied) {
  for (size_t size : {size_t{100}, size_t{300} << 10}) {
    SCOPED_TRACE("payload " + std::to_string(size));
    Writer w(NewFile("wal-" + std::to_string(size) + ".log"), SyncPolicy::kAlways, 1);
    ASSERT_TRUE(w.Commit(1, "before", no_apply_).ok());
    env_.FailNth(Op::kSync, 1, EIO);
    const std::string payload = Payload(size, 3);
    const std::string_view piece(payload);
    int staged = 0, applied = 0;
    Status s = w.Commit(1, &piece, 1, [&](uint64_t) { staged++; }, [&](uint64_t) { applied++; });
    EXPECT_TRUE(s.IsIOError()) << s.ToString();
    EXPECT_EQ(staged, 1);
    EXPECT_EQ(applied, 0);
    Status again = w.Commit(1, &piece, 1, [&](uint64_t) { staged++; }, [&](uint64_t) { applied++; });
    EXPECT_TRUE(again.IsIOError()) << again.ToString();
    EXPECT_EQ(staged, 1) << "a sticky writer staged a record";
    EXPECT_EQ(applied, 0);
    env_.ClearFaults();
  }
}

// A stage that runs out of memory fails its group with ResourceExhausted,
// sticky, and nothing of the group is applied (on the leader and on the helper).
TEST_F(WalWriterTest, AStageThatThrowsBadAllocFailsTheGroupStickily) {
  for (size_t size : {size_t{100}, size_t{300} << 10}) {
    SCOPED_TRACE("payload " + std::to_string(size));
    Writer w(NewFile("wal-" + std::to_string(size) + ".log"), SyncPolicy::kNever, 1);
    const std::string payload = Payload(size, 4);
    const std::string_view piece(payload);
    bool applied = false;
    Status s = w.Commit(1, &piece, 1, [](uint64_t) { throw std::bad_alloc(); }, [&](uint64_t) { applied = true; });
    EXPECT_EQ(s.code(), Code::kResourceExhausted) << s.ToString();
    EXPECT_FALSE(applied);
    ExpectCommitFails(w, Code::kResourceExhausted);
    EXPECT_EQ(w.sticky_error().code(), Code::kResourceExhausted);
  }
}

TEST_F(WalWriterTest, BadInputIsInvalidArgumentAndNotSticky) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 1);
  bool applied = false;
  EXPECT_TRUE(w.Commit(0, "x", [&](uint64_t) { applied = true; }).IsInvalidArgument());

  // kMaxPayload + 1 bytes of reserved, never-touched address space: the size is
  // rejected before any byte is read, so no memory is committed.
  const size_t huge = size_t{kMaxPayload} + 1;
  void* p = ::mmap(nullptr, huge, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  Status s = w.Commit(1, std::string_view(static_cast<const char*>(p), huge), [&](uint64_t) { applied = true; });
  ::munmap(p, huge);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();

  EXPECT_FALSE(applied);
  EXPECT_EQ(env_.count(Op::kAppend), 0u);
  EXPECT_TRUE(w.sticky_error().ok());
  uint64_t seq = 0;
  EXPECT_TRUE(w.Commit(1, "fine", [&](uint64_t s2) { seq = s2; }).ok());
  EXPECT_EQ(seq, 1u);
}

TEST_F(WalWriterTest, RecordsAfterSwitchFileLandInTheNewFileOnly) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kAlways, 1);
  ASSERT_TRUE(w.Commit(1, "old-a", no_apply_).ok());
  ASSERT_TRUE(w.Commit(1, "old-b", no_apply_).ok());
  ASSERT_TRUE(w.RunExclusive([&] { return w.SwitchFile(NewFile("wal-000002.log")); }).ok());
  EXPECT_EQ(w.file_size(), 0u);
  ASSERT_TRUE(w.Commit(1, "new-c", no_apply_).ok());

  auto old_file = ReadBack("wal-000001.log");
  ASSERT_EQ(old_file.records.size(), 2u);
  EXPECT_EQ(old_file.records[1].payload, "old-b");
  auto new_file = ReadBack("wal-000002.log");
  ASSERT_EQ(new_file.records.size(), 1u);
  EXPECT_EQ(new_file.records[0].payload, "new-c");
  EXPECT_EQ(new_file.records[0].seq, 3u);
  EXPECT_EQ(new_file.records[0].offset, 0u);
}

// Under either policy the old file is durable before the new one takes a
// record (a power cut must not keep a later file without an earlier one);
// a failed sync there is sticky and leaves the old file current.
TEST_F(WalWriterTest, SwitchFileSyncsTheOldFileFirstAndAFailureIsSticky) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 1);
  ASSERT_TRUE(w.Commit(1, "a", no_apply_).ok());
  const uint64_t before = env_.count(Op::kSync);
  ASSERT_TRUE(w.RunExclusive([&] { return w.SwitchFile(NewFile("wal-000002.log")); }).ok());
  EXPECT_EQ(env_.count(Op::kSync), before + 1);

  ASSERT_TRUE(w.Commit(1, "b", no_apply_).ok());
  env_.FailNth(Op::kSync, 1, EIO);
  Status s = w.RunExclusive([&] { return w.SwitchFile(NewFile("wal-000003.log")); });
  EXPECT_FALSE(s.ok());
  env_.ClearFaults();
  EXPECT_FALSE(w.sticky_error().ok());
  EXPECT_FALSE(w.Commit(1, "c", no_apply_).ok());
  EXPECT_EQ(ReadBack("wal-000002.log").records.size(), 1u);
  EXPECT_EQ(ReadBack("wal-000003.log").records.size(), 0u);
}

TEST_F(WalWriterTest, SwitchFileOutsideRunExclusiveIsRefused) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 1);
  EXPECT_FALSE(w.SwitchFile(NewFile("wal-000002.log")).ok());
  ASSERT_TRUE(w.Commit(1, "x", no_apply_).ok());
  EXPECT_EQ(ReadBack("wal-000001.log").records.size(), 1u);
}

TEST_F(WalWriterTest, CommitInsideRunExclusiveFailsInsteadOfDeadlocking) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 1);
  bool applied = false;
  Status inner;
  ASSERT_TRUE(w.RunExclusive([&] {
                 inner = w.Commit(1, "x", [&](uint64_t) { applied = true; });
                 return Status::OK();
               }).ok());
  EXPECT_FALSE(inner.ok());
  EXPECT_FALSE(applied);
  EXPECT_TRUE(w.sticky_error().ok());
}

TEST_F(WalWriterTest, RunExclusiveReturnsTheStatusOfFn) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 1);
  EXPECT_TRUE(w.RunExclusive([] { return Status::NotFound("x"); }).IsNotFound());
  EXPECT_TRUE(w.RunExclusive([] { return Status::OK(); }).ok());
}

TEST_F(WalWriterTest, RunExclusiveBlocksNewGroups) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 1);
  std::atomic<bool> applied{false};
  std::thread committer;
  bool applied_inside = true;
  ASSERT_TRUE(w.RunExclusive([&] {
                 committer = std::thread([&] { (void)w.Commit(1, "x", [&](uint64_t) { applied = true; }); });
                 std::this_thread::sleep_for(std::chrono::milliseconds(100));
                 applied_inside = applied.load();
                 return Status::OK();
               }).ok());
  committer.join();
  EXPECT_FALSE(applied_inside) << "a group ran inside RunExclusive";
  EXPECT_TRUE(applied.load());
}

// Holds every Sync until Release(), so a test can act while a group is being written.
class SyncGate {
 public:
  std::function<void()> Hook() {
    return [this] {
      std::unique_lock<std::mutex> l(mu_);
      in_sync_ = true;
      cv_.notify_all();
      cv_.wait(l, [&] { return released_; });
    };
  }
  bool WaitUntilInSync() {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(10), [&] { return in_sync_; });
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool in_sync_ = false;
  bool released_ = false;
};

TEST_F(WalWriterTest, RunExclusiveWaitsForTheActiveGroup) {
  SyncGate gate;
  Writer w(std::make_unique<HookedFile>(NewFile("wal-000001.log"), gate.Hook()), SyncPolicy::kAlways, 1);

  std::atomic<bool> applied{false};
  std::thread committer([&] { (void)w.Commit(1, "x", [&](uint64_t) { applied = true; }); });
  bool in_sync = gate.WaitUntilInSync();
  bool applied_when_fn_ran = false;
  std::thread exclusive([&] {
    (void)w.RunExclusive([&] {
      applied_when_fn_ran = applied.load();
      return Status::OK();
    });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  gate.Release();
  committer.join();
  exclusive.join();
  ASSERT_TRUE(in_sync) << "Commit under kAlways never synced";
  EXPECT_TRUE(applied_when_fn_ran) << "RunExclusive ran while a group was being written";
}

TEST_F(WalWriterTest, RunExclusiveIsNotOvertakenByLaterCommits) {
  SyncGate gate;
  Writer w(std::make_unique<HookedFile>(NewFile("wal-000001.log"), gate.Hook()), SyncPolicy::kAlways, 1);

  std::thread first([&] { (void)w.Commit(1, "first", no_apply_); });
  bool in_sync = gate.WaitUntilInSync();
  // Queued behind the active group, in this order: a commit, the exclusive
  // section, another commit. The next group must stop at the exclusive section.
  std::atomic<bool> earlier_applied{false}, later_applied{false};
  std::thread earlier([&] { (void)w.Commit(1, "earlier", [&](uint64_t) { earlier_applied = true; }); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  bool earlier_applied_when_fn_ran = false, later_applied_when_fn_ran = true;
  std::thread exclusive([&] {
    (void)w.RunExclusive([&] {
      earlier_applied_when_fn_ran = earlier_applied.load();
      later_applied_when_fn_ran = later_applied.load();
      return Status::OK();
    });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::thread later([&] { (void)w.Commit(1, "later", [&](uint64_t) { later_applied = true; }); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  gate.Release();
  first.join();
  earlier.join();
  exclusive.join();
  later.join();
  ASSERT_TRUE(in_sync);
  EXPECT_TRUE(earlier_applied_when_fn_ran) << "a commit queued before RunExclusive ran after it";
  EXPECT_FALSE(later_applied_when_fn_ran) << "a commit queued after RunExclusive ran before it";
  EXPECT_TRUE(later_applied.load());
}

TEST_F(WalWriterTest, SyncInsideRunExclusiveDoesNotDeadlock) {
  Writer w(NewFile("wal-000001.log"), SyncPolicy::kNever, 1);
  ASSERT_TRUE(w.Commit(1, "x", no_apply_).ok());
  EXPECT_TRUE(w.RunExclusive([&] { return w.Sync(); }).ok());
  EXPECT_EQ(env_.count(Op::kSync), 1u);
}

}  // namespace
}  // namespace pomai::wal
