// Segment format 2: what SegmentWriter writes, SegmentFile reads back, and
// reads check only what they touch.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>

#include "file_test_util.h"
#include "segment/file.h"
#include "segment/writer.h"
#include "support/fault_env.h"
#include "support/temp_dir.h"
#include "util/limits.h"

namespace pomai::segment {
namespace {

using pomai::testing::TempDir;
using namespace testing;

class SegmentFileTest : public ::testing::Test {
 protected:
  std::string Path(uint64_t n) const {
    char name[32];
    std::snprintf(name, sizeof(name), "seg-%06llu.pseg", static_cast<unsigned long long>(n));
    return dir_.file(name);
  }
  std::shared_ptr<SegmentFile> WriteAndOpen(FileData& data, uint64_t number = 1, size_t block_bytes = kBlockBytes) {
    Status s = data.Write(Env::Default(), Path(number), number, block_bytes);
    EXPECT_TRUE(s.ok()) << s.ToString();
    auto f = SegmentFile::Open(Env::Default(), Path(number));
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    return f.ok() ? f.value() : nullptr;
  }
  TempDir dir_;
};

TEST_F(SegmentFileTest, U64GroupRoundTrips) {
  FileData data = FileData::OneGroup(MakeU64(9, 300, 8, 20));
  auto f = WriteAndOpen(data, 1, 1024);  // 32 rows per block: 10 blocks
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(f->Verify().ok()) << f->Verify().ToString();
  EXPECT_EQ(f->file_number(), 1u);
  EXPECT_EQ(f->entry_count(), 0u);
  ASSERT_EQ(f->group_count(), 1u);
  const U64Data& u = data.u64[0];
  const GroupInfo& g = f->group(0);
  EXPECT_EQ(g.kind, GroupKind::kU64);
  EXPECT_EQ(g.cid, 9u);
  EXPECT_EQ(g.dim, 8u);
  EXPECT_EQ(g.metric, simd::Metric::kCosine);
  EXPECT_EQ(g.rows, 300u);
  EXPECT_EQ(g.tombstones, 20u);
  EXPECT_EQ(g.rows_per_block, 32u);
  EXPECT_EQ(g.blocks(), 10u);
  EXPECT_EQ(g.min_seq, 1000u);
  EXPECT_EQ(g.max_seq, 2019u);
  EXPECT_EQ(f->min_seq(), 1000u);
  EXPECT_EQ(f->max_seq(), 2019u);
  EXPECT_EQ(f->graph(0), nullptr);
  for (size_t r = 0; r < u.ids.size(); ++r) {
    uint64_t row = 0;
    bool found = false;
    ASSERT_TRUE(f->FindRow(0, u.ids[r], &row, &found).ok());
    ASSERT_TRUE(found) << u.ids[r];
    EXPECT_EQ(row, r);
    EXPECT_EQ(f->seqs(0)[row], u.seqs[r]);
    EXPECT_TRUE(std::equal(u.vectors.begin() + r * 8, u.vectors.begin() + (r + 1) * 8, f->vector(0, row)));
    auto meta = f->Metadata(0, row);
    ASSERT_TRUE(meta.ok());
    EXPECT_EQ(*meta, u.Meta(r));
    // Misses between ids and beyond them.
    ASSERT_TRUE(f->FindRow(0, u.ids[r] + 1, &row, &found).ok());
    EXPECT_FALSE(found);
  }
  uint64_t row = 0;
  bool found = true;
  ASSERT_TRUE(f->FindRow(0, 0, &row, &found).ok());
  EXPECT_FALSE(found);
  for (size_t t = 0; t < u.tomb_ids.size(); ++t) {
    uint64_t seq = 0;
    ASSERT_TRUE(f->FindTombstone(0, u.tomb_ids[t], &seq, &found).ok());
    EXPECT_TRUE(found);
    EXPECT_EQ(seq, u.tomb_seqs[t]);
    ASSERT_TRUE(f->FindTombstone(0, u.tomb_ids[t] + 1, &seq, &found).ok());
    EXPECT_FALSE(found);
  }
  uint32_t gi = 9;
  EXPECT_TRUE(f->FindGroup(GroupKind::kU64, 9, 8, simd::Metric::kCosine, &gi));
  EXPECT_EQ(gi, 0u);
  EXPECT_FALSE(f->FindGroup(GroupKind::kU64, 9, 8, simd::Metric::kL2, &gi));
}

TEST_F(SegmentFileTest, EntriesAndEntryGroupsRoundTrip) {
  FileData data = MixedFile(40, 30, false);
  auto f = WriteAndOpen(data);
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(f->Verify().ok()) << f->Verify().ToString();
  EXPECT_EQ(f->entry_count(), data.entries.size());
  ASSERT_EQ(f->group_count(), 4u);
  // Descriptors ascend by (kind, cid, dim, metric).
  EXPECT_EQ(f->group(0).kind, GroupKind::kU64);
  EXPECT_EQ(f->group(1).kind, GroupKind::kBytes);
  EXPECT_EQ(f->group(1).cid, 77u);
  EXPECT_EQ(f->group(2).kind, GroupKind::kRecords);
  EXPECT_EQ(f->group(2).dim, 3u);
  EXPECT_EQ(f->group(3).dim, 5u);
  EXPECT_EQ(f->group(1).rows, 30u);
  EXPECT_EQ(f->group(2).rows + f->group(3).rows, 30u);
  for (const EntryData& e : data.entries) {
    EntryView v;
    bool found = false;
    ASSERT_TRUE(f->Get(e.key, &v, &found).ok());
    ASSERT_TRUE(found) << pomai::Printable(e.key);
    EXPECT_EQ(v.key, e.key);
    EXPECT_EQ(v.seq, e.seq);
    EXPECT_EQ(v.kind, e.kind);
    EXPECT_EQ(v.value, e.value);
    EXPECT_EQ(v.has_metadata, e.has_metadata);
    EXPECT_EQ(v.attrs, e.attrs);
    if (e.kind == EntryKind::kVector) {
      const EntryGroupData& eg = data.entry_groups[e.group];
      uint32_t g = 0;
      ASSERT_TRUE(f->FindGroup(eg.kind, eg.cid, eg.dim, eg.metric, &g));
      EXPECT_EQ(v.group, g);
      EXPECT_EQ(v.metric, eg.metric);
      EXPECT_TRUE(std::equal(e.vector.begin(), e.vector.end(), v.vector));
      EntryView r;
      ASSERT_TRUE(f->ReadRowEntry(g, v.row, &r).ok());
      EXPECT_EQ(r.key, e.key);
      EXPECT_EQ(r.index, v.index);
    }
    // Misses just after and before every key.
    ASSERT_TRUE(f->Get(e.key + '\0', &v, &found).ok());
    EXPECT_FALSE(found);
    std::string before = e.key;
    before.back() = static_cast<char>(before.back() - 1);
    before += "\xff\xff";
    ASSERT_TRUE(f->Get(before, &v, &found).ok());
    EXPECT_FALSE(found);
  }
  // Rows of an entry group are in key order.
  for (int eg = 0; eg < 3; ++eg) {
    const EntryGroupData& d = data.entry_groups[eg];
    uint32_t g = 0;
    ASSERT_TRUE(f->FindGroup(d.kind, d.cid, d.dim, d.metric, &g));
    const auto rows = data.GroupRows(eg);
    ASSERT_EQ(rows.size(), f->group(g).rows);
    for (size_t r = 0; r < rows.size(); ++r) {
      EntryView v;
      ASSERT_TRUE(f->ReadRowEntry(g, r, &v).ok());
      EXPECT_EQ(v.key, rows[r]->key);
    }
  }
  EntryView v;
  bool found = true;
  ASSERT_TRUE(f->Get(std::string("\x03", 1), &v, &found).ok());
  EXPECT_FALSE(found);
  ASSERT_TRUE(f->Get(std::string("", 0), &v, &found).ok());
  EXPECT_FALSE(found);
}

TEST_F(SegmentFileTest, AnEmptyFileOpensAndVerifies) {
  FileData data;
  auto f = WriteAndOpen(data, 3);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->Verify().ok());
  EXPECT_EQ(f->entry_count(), 0u);
  EXPECT_EQ(f->group_count(), 0u);
  EXPECT_EQ(f->min_seq(), 0u);
  EXPECT_EQ(f->max_seq(), 0u);
  EntryView v;
  bool found = true;
  ASSERT_TRUE(f->Get(UserKey("x"), &v, &found).ok());
  EXPECT_FALSE(found);
}

TEST_F(SegmentFileTest, VerifyDecodesEveryAttributeRecord) {
  // The writer stores records as given (the engine encoded and checked
  // them); a file whose CRCs hold but whose record is malformed reads its
  // bytes back and fails Verify, naming the entry.
  FileData data = MixedFile(2, 6, false);
  for (EntryData& e : data.entries) {
    if (!e.attrs.empty()) e.attrs.back() ^= 0x01;  // the last value byte: still a record, or not
  }
  for (EntryData& e : data.entries) {
    if (!e.attrs.empty()) {
      e.attrs += "x";  // one trailing byte: never a record
      break;
    }
  }
  auto f = WriteAndOpen(data, 4);
  ASSERT_NE(f, nullptr);
  Status s = f->Verify();
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("attribute record"), std::string::npos) << s.ToString();
  FileData attrs_on_a_record;
  attrs_on_a_record.entry_groups = {{GroupKind::kRecords, 0, 4, simd::Metric::kL2, false}};
  EntryData rec{UserKey("x"), 1, EntryKind::kVector, "", false, 0};
  rec.vector = RandomVectors(1, 4, 1);
  rec.attrs = data.entries.back().attrs.empty() ? "ab" : data.entries.back().attrs;
  attrs_on_a_record.entries.push_back(rec);
  s = attrs_on_a_record.Write(Env::Default(), Path(9), 9);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
}

TEST_F(SegmentFileTest, AGroupWithTombstonesOnlyRoundTrips) {
  FileData data = FileData::OneGroup(MakeU64(1, 0, 16, 5));
  auto f = WriteAndOpen(data);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->Verify().ok());
  EXPECT_EQ(f->group(0).blocks(), 0u);
  uint64_t row = 0, seq = 0;
  bool found = true;
  ASSERT_TRUE(f->FindRow(0, 10, &row, &found).ok());
  EXPECT_FALSE(found);
  ASSERT_TRUE(f->FindTombstone(0, 11, &seq, &found).ok());
  EXPECT_TRUE(found);
  EXPECT_EQ(seq, 2000u);
}

TEST_F(SegmentFileTest, OpenReadsNoRowsAndLookupsCheckOnlyTheirBlocks) {
  FileData data = FileData::OneGroup(MakeU64(1, 1000, 4, 0));
  auto f = WriteAndOpen(data, 1, 256);  // 16 rows per block: 63 blocks
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->group(0).rows_per_block, 16u);
  EXPECT_EQ(f->TEST_CheckedBlocks(0), 0u);
  uint64_t row = 0;
  bool found = false;
  ASSERT_TRUE(f->FindRow(0, data.u64[0].ids[500], &row, &found).ok());
  ASSERT_TRUE(found);
  EXPECT_EQ(f->TEST_CheckedBlocks(0), 1u);
  // A miss between rows 15 and 16 checks the two neighbours' blocks.
  ASSERT_TRUE(f->FindRow(0, data.u64[0].ids[15] + 1, &row, &found).ok());
  EXPECT_FALSE(found);
  EXPECT_EQ(f->TEST_CheckedBlocks(0), 3u);
  ASSERT_TRUE(f->Metadata(0, 501).ok());
  EXPECT_EQ(f->TEST_CheckedBlocks(0), 3u);
  ASSERT_TRUE(f->Verify().ok());
  EXPECT_EQ(f->TEST_CheckedBlocks(0), 63u);
}

TEST_F(SegmentFileTest, ADamagedBlockFailsOnlyTheReadsOfItsRows) {
  FileData data = FileData::OneGroup(MakeU64(1, 1000, 4, 0));
  auto f = WriteAndOpen(data, 1, 256);
  ASSERT_NE(f, nullptr);
  // Damage row 170's vector (block 10) in a copy of the file.
  std::string bytes = ReadAll(Path(1));
  const uint64_t at = static_cast<uint64_t>(reinterpret_cast<const char*>(f->vector(0, 170)) - f->base());
  bytes[at + 2] ^= 0x10;
  const std::string copy = dir_.file("copy.pseg");
  WriteAll(copy, bytes);
  auto d = SegmentFile::Open(Env::Default(), copy);
  ASSERT_TRUE(d.ok()) << d.status().ToString();  // Open reads no row
  uint64_t row = 0;
  bool found = false;
  ASSERT_TRUE((*d)->FindRow(0, data.u64[0].ids[3], &row, &found).ok());
  EXPECT_TRUE(found);
  Status s = (*d)->FindRow(0, data.u64[0].ids[170], &row, &found);
  ASSERT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find(copy + " at offset "), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("block 10 "), std::string::npos) << s.message();
  EXPECT_TRUE((*d)->CheckBlock(0, 9).ok());
  EXPECT_TRUE((*d)->CheckBlock(0, 10).IsCorruption());
  EXPECT_TRUE((*d)->CheckBlock(0, 11).ok());
  EXPECT_TRUE((*d)->Verify().IsCorruption());
}

TEST_F(SegmentFileTest, AGraphPerGroupIsSearchedFromTheMapping) {
  FileData data = MixedFile(400, 120, true);
  data.u64.push_back(MakeU64(6, 200, 6, 0, 9));
  data.u64.back().graph = true;
  auto f = WriteAndOpen(data);
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(f->Verify().ok()) << f->Verify().ToString();
  size_t graphs = 0;
  for (uint32_t g = 0; g < f->group_count(); ++g) {
    const GroupInfo& info = f->group(g);
    const index::HnswGraph* graph = f->graph(g);
    EXPECT_EQ(graph != nullptr, info.has_graph);
    EXPECT_EQ(info.has_graph, info.kind != GroupKind::kRecords);
    if (graph == nullptr) continue;
    ++graphs;
    EXPECT_EQ(graph->rows(), info.rows);
    EXPECT_EQ(graph->dim(), info.dim);
    // Every row finds itself first.
    size_t self = 0;
    for (uint64_t r = 0; r < info.rows; ++r) {
      std::vector<index::Neighbor> out;
      ASSERT_TRUE(graph->Search(f->vector(g, r), 5, 40, nullptr, &out).ok());
      ASSERT_FALSE(out.empty());
      if (out[0].row == r) ++self;
      for (const index::Neighbor& n : out) ASSERT_TRUE(f->CheckRow(g, n.row).ok());
    }
    EXPECT_GE(self, info.rows * 95 / 100) << "group " << g;
    // The view's sections are the writer's, renumbered.
    auto sections = f->GraphSections(g);
    EXPECT_EQ(sections(KindNumber(SectionKind::kHnswHeader)).size(), 128u);
    EXPECT_EQ(sections(KindNumber(SectionKind::kHnswHeader)).data(),
              f->Section(SectionKind::kGraphHeader, g).data());
  }
  EXPECT_EQ(graphs, 3u);
}

TEST_F(SegmentFileTest, RowsPerBlockIsTheLargestPowerOfTwoIn64KiB) {
  for (uint32_t dim : {1u, 2u, 3u, 7u, 128u, 384u, 1000u, 4096u, 16384u, 16385u, 65535u}) {
    const uint32_t b = RowsPerBlock(dim);
    EXPECT_TRUE(std::has_single_bit(b)) << dim;
    if (b > 1) {
      EXPECT_LE(uint64_t{b} * dim * 4, 65536u) << dim;
      EXPECT_GT(uint64_t{b} * 2 * dim * 4, 65536u) << dim;
    }
  }
  EXPECT_EQ(RowsPerBlock(1), 16384u);
  EXPECT_EQ(RowsPerBlock(384), 32u);
  EXPECT_EQ(RowsPerBlock(65535), 1u);
  for (uint32_t dim : {1u, 100u, 20000u}) {
    FileData data = FileData::OneGroup(MakeU64(1, 3, dim, 0));
    auto f = WriteAndOpen(data, dim);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->group(0).rows_per_block, RowsPerBlock(dim));
    EXPECT_TRUE(f->Verify().ok());
  }
}

TEST_F(SegmentFileTest, TheWriterRefusesBadInputAndLeavesNoFile) {
  auto expect_refused = [&](FileData& data, const std::string& what) {
    Status s = data.Write(Env::Default(), Path(8), 8);
    EXPECT_TRUE(s.IsInvalidArgument()) << what << ": " << s.ToString();
    EXPECT_FALSE(Env::Default()->FileExists(Path(8))) << what;
    EXPECT_FALSE(Env::Default()->FileExists(Path(8) + ".tmp")) << what;
  };
  FileData unsorted = FileData::OneGroup(MakeU64(1, 10, 4, 0));
  std::swap(unsorted.u64[0].ids[3], unsorted.u64[0].ids[4]);
  expect_refused(unsorted, "unsorted ids");
  FileData twice = FileData::OneGroup(MakeU64(1, 10, 4, 0));
  twice.u64.push_back(MakeU64(1, 10, 4, 0));
  expect_refused(twice, "two groups with the same descriptor key");
  FileData dim0 = FileData::OneGroup(MakeU64(1, 10, 0, 0));
  expect_refused(dim0, "dim 0");
  FileData bad_namespace;
  bad_namespace.entries.push_back({std::string("\x05k", 2), 1, EntryKind::kBytes, "v"});
  expect_refused(bad_namespace, "unknown namespace");
  FileData duplicate = MixedFile(4, 4, false);
  duplicate.entries.push_back(duplicate.entries[3]);  // a key twice
  expect_refused(duplicate, "duplicate key");
  FileData other_collection;
  other_collection.entry_groups = {{GroupKind::kBytes, 77, 4, simd::Metric::kL2, false}};
  EntryData row{RowKey(78, "x"), 1, EntryKind::kVector, "", false, 0};
  row.vector = RandomVectors(1, 4, 1);
  other_collection.entries.push_back(row);
  expect_refused(other_collection, "a row of another collection");
  // A graph whose rows are not the group's.
  SegmentWriter w;
  U64Data u = MakeU64(1, 10, 4, 0);
  const GroupHandle h = w.AddU64Group(u.Rows());
  auto sections = index::BuildHnsw(u.vectors.data(), 9, 4, u.metric, index::HnswParams{}, nullptr, nullptr);
  ASSERT_TRUE(sections.ok());
  w.SetGraph(h, std::move(sections).value());
  Status s = w.Finish(Env::Default(), Path(8), 8);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_FALSE(Env::Default()->FileExists(Path(8)));
}

TEST_F(SegmentFileTest, AFileNumberOtherThanTheNameIsCorruption) {
  FileData data;
  ASSERT_TRUE(data.Write(Env::Default(), Path(4), 5).ok());
  auto f = SegmentFile::Open(Env::Default(), Path(4));
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(f.status().IsCorruption());
  EXPECT_NE(f.status().message().find("at offset 48"), std::string::npos) << f.status().message();
  // Under another kind of name the number is not checked.
  ASSERT_TRUE(Env::Default()->RenameFile(Path(4), dir_.file("other.pseg")).ok());
  EXPECT_TRUE(SegmentFile::Open(Env::Default(), dir_.file("other.pseg")).ok());
}

TEST_F(SegmentFileTest, OpenOfAMissingFileIsNotCorruption) {
  auto f = SegmentFile::Open(Env::Default(), Path(9));
  ASSERT_FALSE(f.ok());
  EXPECT_FALSE(f.status().IsCorruption()) << f.status().ToString();
}

TEST_F(SegmentFileTest, AWriteIsDurableTmpSyncRenameSyncDir) {
  FileData data = FileData::OneGroup(MakeU64(1, 10, 4, 1));
  pomai::testing::FaultInjectionEnv env;
  ASSERT_TRUE(data.Write(&env, Path(1), 1).ok());
  EXPECT_EQ(env.count(pomai::testing::Op::kSync), 1u);
  EXPECT_EQ(env.count(pomai::testing::Op::kRename), 1u);
  EXPECT_EQ(env.count(pomai::testing::Op::kSyncDir), 1u);
}

// A failure anywhere in the write protocol leaves neither the segment nor
// its temporary file, and the same write succeeds once the fault is gone.
TEST_F(SegmentFileTest, AFailedWriteLeavesNoFile) {
  struct Fault {
    pomai::testing::Op op;
    uint64_t nth;
    int err;
    Code code;
  };
  FileData data = FileData::OneGroup(MakeU64(1, 2000, 16, 5));
  uint64_t appends = 0;
  {
    pomai::testing::FaultInjectionEnv env;
    ASSERT_TRUE(data.Write(&env, Path(1), 1, 4096).ok());
    appends = env.count(pomai::testing::Op::kAppend);
    ASSERT_TRUE(env.RemoveFile(Path(1)).ok());
  }
  const Fault faults[] = {
      {pomai::testing::Op::kAppend, 1, EIO, Code::kIOError},
      {pomai::testing::Op::kAppend, appends, ENOSPC, Code::kResourceExhausted},
      {pomai::testing::Op::kSync, 1, EIO, Code::kIOError},
      {pomai::testing::Op::kSync, 1, ENOSPC, Code::kResourceExhausted},
      {pomai::testing::Op::kRename, 1, EIO, Code::kIOError},
      {pomai::testing::Op::kSyncDir, 1, EIO, Code::kIOError},
  };
  for (const Fault& fault : faults) {
    pomai::testing::FaultInjectionEnv env;
    env.FailNth(fault.op, fault.nth, fault.err);
    Status s = data.Write(&env, Path(1), 1, 4096);
    EXPECT_EQ(s.code(), fault.code) << s.ToString();
    auto names = env.ListDir(dir_.path());
    ASSERT_TRUE(names.ok());
    EXPECT_TRUE(names->empty()) << names->front();
    env.ClearFaults();
    ASSERT_TRUE(data.Write(&env, Path(1), 1, 4096).ok());
    auto f = SegmentFile::Open(&env, Path(1));
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_TRUE((*f)->Verify().ok());
    ASSERT_TRUE(env.RemoveFile(Path(1)).ok());
  }
}

// The first checks of a block race from many threads (as searches do on a
// freshly opened segment): all get its result.
TEST_F(SegmentFileTest, ConcurrentFirstChecksOfABlockAgree) {
  FileData data = FileData::OneGroup(MakeU64(1, 2000, 32, 10));
  ASSERT_TRUE(data.Write(Env::Default(), Path(1), 1, 4096).ok());  // 32 rows per block
  auto good = SegmentFile::Open(Env::Default(), Path(1));
  ASSERT_TRUE(good.ok());
  uint64_t vectors = 0;
  for (const SegmentFile::SectionRef& r : (*good)->sections()) {
    if (r.kind == SectionKind::kRowVectors && r.group == 0) vectors = r.offset;
  }
  ASSERT_GT(vectors, 0u);
  good->reset();
  std::string bytes = ReadAll(Path(1));
  bytes[vectors + 5000] ^= 4;  // row 39: block 1
  MemoryMapEnv env;
  env.Put(Path(1), bytes);
  for (int round = 0; round < 20; ++round) {
    auto f = SegmentFile::Open(&env, Path(1));
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        if (!(*f)->CheckBlock(0, 0).ok()) ++wrong;
        if (!(*f)->CheckBlock(0, 1).IsCorruption()) ++wrong;
        if (!(*f)->Verify().IsCorruption()) ++wrong;
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(wrong.load(), 0);
  }
}

}  // namespace
}  // namespace pomai::segment
