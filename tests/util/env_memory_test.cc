// MemoryEnv (util/env_memory.h): the files of an in-memory keyspace database.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "util/env_memory.h"

namespace pomai {
namespace {

std::string Read(const MappedFile& m) { return std::string(reinterpret_cast<const char*>(m.data()), m.size()); }

TEST(MemoryEnv, WriteMapRenameRemoveAndList) {
  MemoryEnv env;
  auto w = env.NewWritableFile("db/a.tmp");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("hello ", 6).ok());
  const std::string_view pieces[2] = {"wor", "ld"};
  ASSERT_TRUE((*w)->AppendV(pieces, 2).ok());
  ASSERT_TRUE((*w)->Sync().ok());
  EXPECT_EQ((*w)->Size(), 11u);
  ASSERT_TRUE((*w)->Close().ok());
  ASSERT_TRUE(env.RenameFile("db/a.tmp", "db/a").ok());
  EXPECT_FALSE(env.FileExists("db/a.tmp"));
  ASSERT_TRUE(env.FileExists("db/a"));
  EXPECT_EQ(env.FileSize("db/a").value(), 11u);
  auto m = env.MapFile("db/a");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Read(**m), "hello world");
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*m)->data()) % 64, 0u);
  auto r = env.NewReadableFile("db/a");
  ASSERT_TRUE(r.ok());
  char buf[8];
  size_t got = 0;
  ASSERT_TRUE((*r)->Read(6, 8, buf, &got).ok());
  EXPECT_EQ(std::string(buf, got), "world");
  ASSERT_TRUE((*r)->Read(20, 8, buf, &got).ok());
  EXPECT_EQ(got, 0u);
  ASSERT_TRUE(env.NewWritableFile("db/b").ok());
  ASSERT_TRUE(env.NewWritableFile("db/sub/c").ok());
  ASSERT_TRUE(env.NewWritableFile("other/d").ok());
  auto names = env.ListDir("db");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(env.RemoveFile("db/a").ok());
  EXPECT_FALSE(env.FileExists("db/a"));
  EXPECT_EQ(Read(**m), "hello world");  // a mapping outlives the file's removal
  EXPECT_TRUE(env.RemoveFile("db/a").IsIOError());
  EXPECT_TRUE(env.MapFile("db/a").status().IsIOError());
  EXPECT_TRUE(env.RenameFile("db/a", "db/x").IsIOError());
  EXPECT_TRUE(env.FileSize("db/a").status().IsIOError());
  EXPECT_TRUE(env.LockFile("db/LOCK").ok());
  EXPECT_TRUE(env.SyncDir("db").ok());
}

TEST(MemoryEnv, MappedBytesNeverChange) {
  MemoryEnv env;
  auto w = env.NewAppendableFile("f");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("abc", 3).ok());
  auto m1 = env.MapFile("f");
  ASSERT_TRUE(m1.ok());
  ASSERT_TRUE((*w)->Append("def", 3).ok());  // appends after a mapping go to a copy
  auto m2 = env.MapFile("f");
  EXPECT_EQ(Read(**m1), "abc");
  EXPECT_EQ(Read(**m2), "abcdef");
  ASSERT_TRUE(env.TruncateFile("f", 2).ok());
  EXPECT_EQ(Read(**m2), "abcdef");
  EXPECT_EQ(Read(*env.MapFile("f").value()), "ab");
  ASSERT_TRUE(env.TruncateFile("f", 4).ok());
  EXPECT_EQ(Read(*env.MapFile("f").value()), std::string("ab\0\0", 4));
  // Rewritten under the same name: the old mapping keeps the old bytes.
  auto w2 = env.NewWritableFile("f");
  ASSERT_TRUE((*w2)->Append("new", 3).ok());
  EXPECT_EQ(Read(**m2), "abcdef");
  EXPECT_EQ(Read(*env.MapFile("f").value()), "new");
  // The first writer's file was replaced: it cannot write into the new one.
  EXPECT_TRUE((*w)->Append("x", 1).IsIOError());
  auto empty = env.NewWritableFile("e");
  auto me = env.MapFile("e");
  ASSERT_TRUE(me.ok());
  EXPECT_EQ((*me)->data(), nullptr);
  EXPECT_EQ((*me)->size(), 0u);
  EXPECT_GE(env.BytesInFiles(), 3u);
}

}  // namespace
}  // namespace pomai
