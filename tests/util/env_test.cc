#include "util/env.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/fault_env.h"
#include "support/temp_dir.h"
#include "util/coding.h"

namespace pomai {
namespace {

using testing::TempDir;

TEST(Env, WriteFileAtomicallyReplacesContentAndLeavesNoTemp) {
  TempDir dir;
  Env* env = Env::Default();
  const std::string path = dir.file("MANIFEST");
  ASSERT_TRUE(WriteFileAtomically(env, dir.path(), path, "first").ok());
  ASSERT_TRUE(WriteFileAtomically(env, dir.path(), path, "second").ok());
  std::string got;
  ASSERT_TRUE(ReadFileToString(env, path, &got).ok());
  EXPECT_EQ(got, "second");
  EXPECT_FALSE(env->FileExists(path + ".tmp"));
}

TEST(Env, AppendVWritesEveryPieceInOrderPastOneWritevsLimit) {
  TempDir dir;
  Env* env = Env::Default();
  auto file = env->NewWritableFile(dir.file("f")).value();
  std::string expected;
  std::vector<std::string> owned;
  for (int i = 0; i < 3000; ++i) owned.push_back(i % 7 == 0 ? std::string() : std::string(1 + i % 13, static_cast<char>('a' + i % 26)));
  std::vector<std::string_view> pieces(owned.begin(), owned.end());
  for (const auto& p : owned) expected += p;
  ASSERT_TRUE(file->AppendV(pieces.data(), pieces.size()).ok());
  ASSERT_TRUE(file->AppendV(pieces.data(), 0).ok());
  EXPECT_EQ(file->Size(), expected.size());
  ASSERT_TRUE(file->Close().ok());
  std::string got;
  ASSERT_TRUE(ReadFileToString(env, dir.file("f"), &got).ok());
  EXPECT_EQ(got, expected);
}

TEST(Env, FailedAtomicWriteKeepsOldContent) {
  TempDir dir;
  testing::FaultInjectionEnv env;
  const std::string path = dir.file("MANIFEST");
  ASSERT_TRUE(WriteFileAtomically(&env, dir.path(), path, "old").ok());
  env.FailNth(testing::Op::kSync, 1, ENOSPC);
  Status s = WriteFileAtomically(&env, dir.path(), path, "new");
  EXPECT_EQ(s.code(), Code::kResourceExhausted) << s.ToString();
  std::string got;
  ASSERT_TRUE(ReadFileToString(&env, path, &got).ok());
  EXPECT_EQ(got, "old");
  EXPECT_FALSE(env.FileExists(path + ".tmp"));
}

TEST(Env, MapFileSeesWholeFileAndEmptyFileMapsToNothing) {
  TempDir dir;
  Env* env = Env::Default();
  ASSERT_TRUE(WriteFileAtomically(env, dir.path(), dir.file("a"), std::string(10000, 'z')).ok());
  auto m = env->MapFile(dir.file("a"));
  ASSERT_TRUE(m.ok());
  ASSERT_EQ((*m)->size(), 10000u);
  EXPECT_EQ((*m)->data()[9999], 'z');
  ASSERT_TRUE(WriteFileAtomically(env, dir.path(), dir.file("e"), "").ok());
  auto e = env->MapFile(dir.file("e"));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ((*e)->size(), 0u);
}

TEST(Env, MissingFileIsIOErrorNamingThePath) {
  auto r = Env::Default()->NewReadableFile("/nonexistent/dir/file");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsIOError());
  EXPECT_NE(r.status().message().find("/nonexistent/dir/file"), std::string::npos);
}

TEST(Env, LockIsExclusiveWithinAndAcrossProcesses) {
  TempDir dir;
  Env* env = Env::Default();
  auto lock = env->LockFile(dir.file("LOCK"));
  ASSERT_TRUE(lock.ok());
  auto again = env->LockFile(dir.file("LOCK"));
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("locked"), std::string::npos);

  pid_t pid = fork();
  if (pid == 0) {
    auto child = Env::Default()->LockFile(dir.file("LOCK"));
    _exit(child.ok() ? 1 : 0);
  }
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "child could take a held lock";

  lock.value().reset();
  EXPECT_TRUE(env->LockFile(dir.file("LOCK")).ok());
}

// One directory reached through a symlink or a "a/../a" path is one lock
// within the process: the second open is told this process holds it.
TEST(Env, ALockReachedThroughASymlinkIsHeldByThisProcess) {
  TempDir dir;
  Env* env = Env::Default();
  ASSERT_TRUE(env->CreateDirIfMissing(dir.file("db")).ok());
  ASSERT_EQ(::symlink(dir.file("db").c_str(), dir.file("link").c_str()), 0);
  auto lock = env->LockFile(dir.file("db/LOCK"));
  ASSERT_TRUE(lock.ok());
  for (const std::string& other : {dir.file("link/LOCK"), dir.file("db/../db/LOCK")}) {
    auto again = env->LockFile(other);
    ASSERT_FALSE(again.ok()) << other;
    EXPECT_NE(again.status().message().find("held by this process"), std::string::npos) << again.status().message();
  }
  lock.value().reset();
  auto via_link = env->LockFile(dir.file("link/LOCK"));
  ASSERT_TRUE(via_link.ok()) << via_link.status().ToString();
  EXPECT_FALSE(env->LockFile(dir.file("db/LOCK")).ok());
}

TEST(Env, CreateDirIfMissingCreatesParentsAndRejectsAFile) {
  TempDir dir;
  Env* env = Env::Default();
  ASSERT_TRUE(env->CreateDirIfMissing(dir.file("a/b/c")).ok());
  EXPECT_TRUE(env->FileExists(dir.file("a/b/c")));
  ASSERT_TRUE(env->CreateDirIfMissing(dir.file("a/b/c")).ok());
  ASSERT_TRUE(WriteFileAtomically(env, dir.path(), dir.file("f"), "x").ok());
  EXPECT_TRUE(env->CreateDirIfMissing(dir.file("f")).IsInvalidArgument());
}

TEST(FaultInjectionEnv, CountsSyncsAndFailsTheNthOnce) {
  TempDir dir;
  testing::FaultInjectionEnv env;
  auto f = env.NewWritableFile(dir.file("x"));
  ASSERT_TRUE(f.ok());
  env.FailNth(testing::Op::kSync, 2, EIO);
  EXPECT_TRUE((*f)->Sync().ok());
  EXPECT_FALSE((*f)->Sync().ok());
  EXPECT_TRUE((*f)->Sync().ok());
  EXPECT_EQ(env.count(testing::Op::kSync), 3u);
}

TEST(Coding, DecoderNeverReadsPastTheEnd) {
  std::string buf;
  PutFixed32(&buf, 0xDEADBEEF);
  PutFixed64(&buf, 0x0123456789ABCDEFull);
  Decoder d(reinterpret_cast<const uint8_t*>(buf.data()), buf.size());
  uint32_t a = 0;
  uint64_t b = 0;
  ASSERT_TRUE(d.GetFixed32(&a));
  ASSERT_TRUE(d.GetFixed64(&b));
  EXPECT_EQ(a, 0xDEADBEEFu);
  EXPECT_EQ(b, 0x0123456789ABCDEFull);
  EXPECT_FALSE(d.GetFixed32(&a));
  const uint8_t* p = nullptr;
  EXPECT_FALSE(d.GetBytes(1, &p));
}

}  // namespace
}  // namespace pomai
