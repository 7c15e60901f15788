// pomai_verify: the checks of `pomai-inspect verify` on an open database, of
// either kind; damage is a report naming file and offset, not an error.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "capi_test_util.h"
#include "pomai/pomai.h"
#include "support/temp_dir.h"

namespace {

using pomai::testing::B;
using pomai::testing::Code;
using pomai::testing::Message;
using pomai::testing::TempDir;

// The report of pomai_verify, or the status code when it failed.
struct Verified {
  int code = 0;
  std::string message;
  std::string json;
  // The report's own "ok" (a top-level key: indented by two spaces), not a checked file's.
  bool ok() const { return json.find("\n  \"ok\": true") != std::string::npos; }
};

Verified Verify(pomai_db_t* db) {
  Verified v;
  char* json = nullptr;
  pomai_status_t* s = pomai_verify(db, &json);
  v.code = pomai_status_code(s);
  v.message = pomai_status_message(s);
  pomai_status_free(s);
  if (json != nullptr) v.json = json;
  pomai_free(json);
  return v;
}

// Whether the report names a problem or a note at `file`, byte `offset`.
bool NamesFileAndOffset(const std::string& json, const std::string& file, uint64_t offset) {
  const std::string head = "\"file\": \"" + file + "\",";
  const std::string want = "\"offset\": " + std::to_string(offset);
  for (size_t at = json.find(head); at != std::string::npos; at = json.find(head, at + 1)) {
    size_t i = at + head.size();
    while (i < json.size() && (json[i] == ' ' || json[i] == '\n')) ++i;
    if (json.compare(i, want.size(), want) == 0 && !std::isdigit(static_cast<unsigned char>(json[i + want.size()])))
      return true;
  }
  return false;
}

std::vector<std::string> FilesNamed(const std::string& dir, const std::string& prefix, const std::string& suffix) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

uint64_t U64(const std::string& b, size_t at) {
  uint64_t v;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}
uint32_t U32(const std::string& b, size_t at) {
  uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}

// The file offset of section `kind` of a segment file (docs/FORMAT.md,
// "Section table", "Footer"), or 0 when it has none.
uint64_t SectionOffset(const std::string& path, uint32_t kind) {
  const std::string b = ReadAll(path);
  const size_t footer = b.size() - 32;
  const uint64_t table = U64(b, footer);
  const uint32_t count = U32(b, footer + 8);
  for (uint32_t i = 0; i < count; ++i) {
    if (U32(b, table + 32 * i) == kind) return U64(b, table + 32 * i + 8);
  }
  return 0;
}

// The section kind of a u64 group's vectors (docs/FORMAT.md, "Section kinds").
constexpr uint32_t kRowVectors = 147;

// XORs the byte at `offset` of the file in place (through write(2): the
// database's own read-only mappings see the page change too).
void Flip(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5A));
}

class VerifyVectorDb : public pomai::testing::U64DbTest {
 protected:
  void Configure(pomai_options_t& o) override {
    o.adaptive_threshold = 0;  // every segment gets a graph
    o.hnsw_m = 8;
  }

  void Put(uint64_t first, size_t n) {
    std::vector<uint64_t> ids(n);
    std::vector<float> v(n * 4);
    for (size_t i = 0; i < n; ++i) {
      ids[i] = first + i;
      for (size_t j = 0; j < 4; ++j) v[i * 4 + j] = static_cast<float>((first + i) * 7 % 13 + j);
    }
    ASSERT_EQ(Code(pomai_put_array(db_, ids.data(), v.data(), n, 4)), 0);
  }
};

TEST_F(VerifyVectorDb, AHealthyDatabaseWithSegmentsAndAWalPasses) {
  Put(0, 200);
  ASSERT_EQ(Code(pomai_freeze(db_)), 0);
  Put(150, 100);
  const uint64_t gone = 3;
  ASSERT_EQ(Code(pomai_delete(db_, gone)), 0);
  Verified v = Verify(db_);
  ASSERT_EQ(v.code, 0) << v.message;
  EXPECT_TRUE(v.ok()) << v.json;
  EXPECT_NE(v.json.find("\"problems\": []"), std::string::npos) << v.json;
  for (const std::string& seg : FilesNamed(dir_.path(), "seg-", ".pseg"))
    EXPECT_NE(v.json.find("\"file\": \"" + seg + "\""), std::string::npos) << seg << "\n" << v.json;
  EXPECT_NE(v.json.find("\"kind\": \"manifest\""), std::string::npos) << v.json;
  EXPECT_NE(v.json.find("\"kind\": \"segment\""), std::string::npos) << v.json;
  EXPECT_NE(v.json.find("\"kind\": \"wal\""), std::string::npos) << v.json;
  EXPECT_NE(v.json.find("\"checked\": 3"), std::string::npos) << v.json;  // the manifest log, 1 segment, 1 WAL
}

TEST_F(VerifyVectorDb, ASegmentDamagedWhileOpenIsReportedWithFileAndOffset) {
  const uint64_t kFresh = 1000;  // an id no segment holds
  Put(0, 200);
  ASSERT_EQ(Code(pomai_freeze(db_)), 0);
  const std::string seg = FilesNamed(dir_.path(), "seg-", ".pseg").at(0);
  const uint64_t vectors = SectionOffset(seg, kRowVectors);
  ASSERT_GT(vectors, 0u);
  Flip(seg, vectors + 13);
  Verified v = Verify(db_);
  ASSERT_EQ(v.code, 0) << v.message;  // damage is a finding, not a failed call
  EXPECT_FALSE(v.ok()) << v.json;
  EXPECT_TRUE(NamesFileAndOffset(v.json, seg, vectors)) << v.json;
  EXPECT_NE(v.json.find("checksum mismatch in vectors section"), std::string::npos) << v.json;
  EXPECT_NE(v.json.find("\"problems\": 1"), std::string::npos) << v.json;
  // The database is still open: a read of the damaged block reports it (the
  // engine checks every block it reads), other calls work (a count reads no
  // block: the group's descriptor holds its rows).
  uint64_t n = 0;
  ASSERT_EQ(Code(pomai_count(db_, &n)), 0);
  EXPECT_EQ(n, 200u);
  pomai_record_t* rec = nullptr;
  const std::string got = Message(pomai_get(db_, 0, &rec));
  EXPECT_NE(got.find(seg), std::string::npos) << got;
  EXPECT_EQ(rec, nullptr);
  float row[4] = {1, 2, 3, 4};
  ASSERT_EQ(Code(pomai_put_array(db_, &kFresh, row, 1, 4)), 0);
  bool exists = false;
  ASSERT_EQ(Code(pomai_exists(db_, kFresh, &exists)), 0);
  EXPECT_TRUE(exists);
}

// pomai_verify of `db` runs again and again while `write(round)` runs rounds
// 0 .. rounds - 1 on a thread of its own: every report, and the one after, is ok.
void VerifyWhileWriting(pomai_db_t* db, int rounds, const std::function<void(int)>& write) {
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int round = 0; round < rounds && !stop; ++round) write(round);
    stop = true;
  });
  int runs = 0;
  while (!stop) {
    Verified v = Verify(db);
    ASSERT_EQ(v.code, 0) << v.message;
    EXPECT_TRUE(v.ok()) << v.json;
    ++runs;
  }
  writer.join();
  Verified v = Verify(db);
  EXPECT_TRUE(v.ok()) << v.json;
  EXPECT_GT(runs, 0);
}

TEST_F(VerifyVectorDb, RaceWithWritesFreezesAndCompactionsThatReplaceFiles) {
  VerifyWhileWriting(db_, 30, [&](int round) {
    Put(uint64_t(round) * 50, 80);
    if (round % 3 == 2) EXPECT_EQ(Code(pomai_freeze(db_)), 0);
    if (round % 7 == 6) EXPECT_EQ(Code(pomai_compact(db_)), 0);
  });
}

// A NULL, closed or garbage handle and a NULL report pointer:
// BadInput/U64.VerifyNull*, ClosedVerify, Garbage*Verify.

// A keyspace database (pomai_db_open_ex) on disk.
class VerifyKeyspaceDb : public ::testing::Test {
 protected:
  void SetUp() override {
    pomai_db_options_ex_init(&opts_);
    opts_.path = dir_.path().c_str();
    ASSERT_EQ(Code(pomai_db_open_ex(&opts_, &db_)), 0);
  }
  void TearDown() override { pomai_status_free(pomai_close(db_)); }

  void Commit(int first, int n) {
    pomai_txn_t* t = nullptr;
    ASSERT_EQ(Code(pomai_txn_begin(db_, POMAI_TXN_READ_WRITE, &t)), 0);
    for (int i = first; i < first + n; ++i) {
      const std::string key = "key-" + std::to_string(i), value = "value-" + std::to_string(i);
      ASSERT_EQ(Code(pomai_txn_put(t, B(key.c_str()), key.size(), B(value.c_str()), value.size())), 0);
    }
    ASSERT_EQ(Code(pomai_txn_commit(t)), 0);
  }

  TempDir dir_;
  pomai_db_options_ex_t opts_;
  pomai_db_t* db_ = nullptr;
};

TEST_F(VerifyKeyspaceDb, AHealthyDatabaseWithSegmentsAndAWalPasses) {
  Commit(0, 50);
  ASSERT_EQ(Code(pomai_db_flush(db_)), 0);
  Commit(40, 20);
  Verified v = Verify(db_);
  ASSERT_EQ(v.code, 0) << v.message;
  EXPECT_TRUE(v.ok()) << v.json;
  EXPECT_NE(v.json.find("\"kind\": \"segment\""), std::string::npos) << v.json;
  EXPECT_NE(v.json.find("\"kind\": \"wal\""), std::string::npos) << v.json;
}

TEST_F(VerifyKeyspaceDb, ASegmentDamagedWhileOpenIsReportedWithFileAndOffset) {
  Commit(0, 50);
  ASSERT_EQ(Code(pomai_db_flush(db_)), 0);
  const std::string seg = FilesNamed(dir_.path(), "seg-", ".pseg").at(0);
  const uint64_t keys = SectionOffset(seg, 129);  // the keys section (format 2)
  ASSERT_GT(keys, 0u);
  Flip(seg, keys + 5);
  Verified v = Verify(db_);
  ASSERT_EQ(v.code, 0) << v.message;
  EXPECT_FALSE(v.ok()) << v.json;
  EXPECT_TRUE(NamesFileAndOffset(v.json, seg, keys)) << v.json;
}

TEST_F(VerifyKeyspaceDb, RaceWithCommitsFlushesAndMergesThatReplaceFiles) {
  VerifyWhileWriting(db_, 24, [&](int round) {
    Commit(round * 10, 15);
    EXPECT_EQ(Code(pomai_db_flush(db_)), 0);  // more than 4 segments merge into one
  });
}

TEST(VerifyInMemory, AnInMemoryDatabaseHasNothingToCheck) {
  pomai_db_options_ex_t opts;
  pomai_db_options_ex_init(&opts);
  opts.storage_mode = POMAI_STORAGE_IN_MEMORY;
  pomai_db_t* db = nullptr;
  ASSERT_EQ(Code(pomai_db_open_ex(&opts, &db)), 0);
  Verified v = Verify(db);
  ASSERT_EQ(v.code, 0) << v.message;
  EXPECT_TRUE(v.ok()) << v.json;
  EXPECT_NE(v.json.find("\"checked\": 0"), std::string::npos) << v.json;
  EXPECT_NE(v.json.find("no files"), std::string::npos) << v.json;
  ASSERT_EQ(Code(pomai_close(db)), 0);
}

}  // namespace
