// libFuzzer target: segment open and verify (lib/segment) and, when the
// segment carries a graph, the graph's open, verify and search (lib/index).
//
// Input: byte 0 holds fix-up flags (so the fuzzer gets past the checksums):
// bit 0 recompute the header CRC, bit 1 recompute every section CRC in the
// table, bit 2 recompute the table CRC; byte 1 is a salt for the searches;
// the rest is a segment file, served from memory as an exactly sized,
// 64-byte aligned mapping.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_util.h"
#include "graph_exercise.h"
#include "index/hnsw.h"
#include "segment/segment.h"
#include "segment_fixups.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pomai;
  if (size < 2) return 0;
  std::vector<uint8_t> bytes(data + 2, data + size);
  fuzz::FixSegmentChecksums(bytes, data[0]);
  const uint8_t salt = data[1];
  fuzz::MemoryMapEnv env;
  env.Add("fuzz.pseg", bytes.data(), bytes.size());
  auto opened = segment::Segment::Open(&env, "fuzz.pseg");
  if (!opened.ok()) {
    FUZZ_CHECK(opened.status().IsCorruption(), opened.status().ToString());
    FUZZ_CHECK(opened.status().message().rfind("fuzz.pseg at offset ", 0) == 0, opened.status().message());
    return 0;
  }
  const segment::Segment& seg = **opened;
  // A section check is Corruption or OK, and the same on every call.
  bool all_checked = true;
  for (auto kind : {segment::SectionKind::kIds, segment::SectionKind::kVectors, segment::SectionKind::kMetaOffsets,
                    segment::SectionKind::kMetaBlob, segment::SectionKind::kTombstones}) {
    const Status c = seg.CheckSection(kind);
    FUZZ_CHECK(c.ok() || c.IsCorruption(), c.ToString());
    FUZZ_CHECK(seg.CheckSection(kind).code() == c.code(), "a section check's result is kept");
    all_checked = all_checked && c.ok();
  }
  const Status checked = seg.CheckAllSections();
  FUZZ_CHECK(checked.ok() || checked.IsCorruption(), checked.ToString());
  FUZZ_CHECK(!checked.ok() || all_checked, "every section checked means every core section checked");
  // Between Open and Verify every accessor is safe.
  const uint64_t rows = seg.row_count();
  for (uint64_t r = 0; r < rows && r < 4096; ++r) {
    auto meta = seg.Metadata(r);
    if (meta.ok() && !meta->empty()) {
      volatile char sink = meta->back();
      (void)sink;
    } else if (!meta.ok()) {
      FUZZ_CHECK(meta.status().IsCorruption(), meta.status().ToString());
    }
    volatile float v = seg.vector(r)[seg.dim() - 1];
    (void)v;
    uint64_t found;
    (void)seg.FindRow(seg.ids()[r], &found);
    (void)seg.HasTombstone(seg.ids()[r]);
  }
  FUZZ_CHECK(seg.Metadata(rows).status().IsInvalidArgument(), "row out of range");
  for (const auto& s : seg.sections()) {
    FUZZ_CHECK(s.offset + s.length <= seg.file_size(), "section inside the file");
    FUZZ_CHECK(seg.Section(s.kind).size() == s.length || s.kind <= 5, "section view has the table's length");
  }
  const Status verified = seg.Verify();
  FUZZ_CHECK(!verified.ok() || checked.ok(), "a verified segment passes every section check");
  if (verified.ok()) {
    for (uint64_t r = 0; r < rows && r < 4096; ++r) {
      FUZZ_CHECK(seg.Metadata(r).ok(), "metadata of a verified segment");
      uint64_t found = ~0ull;
      FUZZ_CHECK(seg.FindRow(seg.ids()[r], &found) && found == r, "ids of a verified segment are searchable");
    }
  } else {
    FUZZ_CHECK(verified.IsCorruption(), verified.ToString());
  }
  if (seg.Section(segment::SectionKind::kHnswHeader).empty()) return 0;
  auto g = index::HnswGraph::Open([&](uint32_t kind) { return seg.Section(kind); }, seg.vectors(), rows, seg.dim(),
                                  seg.info().metric, seg.path(), seg.base());
  if (!g.ok()) {
    FUZZ_CHECK(g.status().IsCorruption(), g.status().ToString());
    return 0;
  }
  fuzz::ExerciseGraph(*g, seg.vectors(), seg.dim(), salt);
  return 0;
}
