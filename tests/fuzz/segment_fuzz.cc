// libFuzzer target: the segment reader (segment::SegmentFile: Open, lookups,
// attribute columns, Verify) and the graphs of its groups (open, verify and
// search, lib/index).
//
// Input: byte 0 holds fix-up flags (so the fuzzer gets past the checksums):
// bit 0 recompute the header CRC, bit 1 recompute every section CRC in the
// table, bit 2 recompute the table CRC; for a file of format version 2 at
// offset 8 also bit 3 recompute the group descriptors' CRCs, bit 4 the
// entries' CRCs and bit 5 the block CRCs (before the section CRCs). Byte 1 is a salt for the
// searches; the rest is a segment file, served from memory as an exactly
// sized, 64-byte aligned mapping.
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "filter/column_source.h"
#include "fuzz_util.h"
#include "graph_exercise.h"
#include "index/hnsw.h"
#include "segment/file.h"
#include "segment/format.h"
#include "util/attributes.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace {

using namespace pomai;

constexpr uint64_t kMaxReads = 4096;

// Recomputes the checksums `flags` names (the input format above), the
// header's last, so that the fuzzer reaches the checks behind them. Sections
// are found through the table; anything out of bounds is left alone, and so
// are files too short for a header and a footer.
void FixChecksums(std::vector<uint8_t>& f, uint8_t flags) {
  const size_t size = f.size();
  if (size < segment::kHeaderSize + segment::kFooterSize) return;
  uint8_t* footer = f.data() + size - segment::kFooterSize;
  const uint64_t table = DecodeFixed64(footer);
  uint64_t count = DecodeFixed32(footer + 8);
  if (table > size - segment::kFooterSize ||
      count > (size - segment::kFooterSize - table) / segment::kSectionEntrySize) {
    count = 0;  // no table: the header alone
    flags &= 1;
  }
  if (DecodeFixed32(f.data() + segment::header2::kVersion) != segment::kFormatVersion2) flags &= 7;
  // File-level sections 128..131: offset and length, when inside the file.
  uint64_t off[4] = {}, len[4] = {};
  bool have[4] = {};
  for (uint64_t i = 0; i < count; ++i) {
    const uint8_t* e = f.data() + table + i * segment::kSectionEntrySize;
    const uint32_t kind = DecodeFixed32(e) & 0xFFFF;
    const uint32_t k = kind - segment::KindNumber(segment::SectionKind::kEntries);
    if (k >= 4 || DecodeFixed32(e + 4) != segment::kFileLevel) continue;
    const uint64_t o = DecodeFixed64(e + 8), l = DecodeFixed64(e + 16);
    if (o > size || l > size - o) continue;
    off[k] = o, len[k] = l, have[k] = true;
  }
  if ((flags & 8) && have[3]) {
    for (uint64_t d = 0; d + segment::kGroupDescriptorSize <= len[3]; d += segment::kGroupDescriptorSize) {
      uint8_t* p = f.data() + off[3] + d;
      EncodeFixed32(p + segment::group2::kCrc, crc32c::Value(p, segment::group2::kCrc));
    }
  }
  if ((flags & 32) && have[3]) {
    // Block CRCs, as the writer computes them (segment/file.h).
    for (uint64_t g = 0; g < len[3] / segment::kGroupDescriptorSize; ++g) {
      const uint8_t* d = f.data() + off[3] + g * segment::kGroupDescriptorSize;
      const uint8_t kind = d[segment::group2::kKind];
      const uint64_t dim = DecodeFixed32(d + segment::group2::kDim), rows = DecodeFixed64(d + segment::group2::kRows);
      const uint64_t per_block = DecodeFixed32(d + segment::group2::kRowsPerBlock);
      if (kind < 1 || kind > 3 || dim == 0 || dim > 65535 || per_block == 0 || rows > size) continue;
      const uint8_t* sec[9] = {};  // kinds 144..152
      uint64_t sec_len[9] = {};
      for (uint64_t i = 0; i < count; ++i) {
        const uint8_t* e = f.data() + table + i * segment::kSectionEntrySize;
        const uint32_t k = (DecodeFixed32(e) & 0xFFFF) - segment::KindNumber(segment::SectionKind::kRowIds);
        const uint64_t o = DecodeFixed64(e + 8), l = DecodeFixed64(e + 16);
        if (k >= 9 || DecodeFixed32(e + 4) != g || o > size || l > size - o) continue;
        sec[k] = f.data() + o;
        sec_len[k] = l;
      }
      const bool u64 = kind == 1;
      const uint64_t row_bytes = dim * 4;
      const bool fits = sec[8] != nullptr && sec[3] != nullptr && sec_len[3] / row_bytes >= rows &&
                        (u64 ? sec[0] && sec[1] && sec[4] && sec[5] && sec_len[0] / 8 >= rows && sec_len[1] / 8 >= rows &&
                                   sec_len[4] / 8 > rows
                             : sec[2] && sec_len[2] / 4 >= rows);
      if (!fits) continue;
      for (uint64_t b = 0; b * per_block < rows && (b + 1) * 4 <= sec_len[8]; ++b) {
        const uint64_t r0 = b * per_block, r1 = std::min(rows, r0 + per_block);
        uint32_t crc = 0;
        if (u64) {
          crc = crc32c::Extend(crc, sec[0] + r0 * 8, (r1 - r0) * 8);
          crc = crc32c::Extend(crc, sec[1] + r0 * 8, (r1 - r0) * 8);
          crc = crc32c::Extend(crc, sec[3] + r0 * row_bytes, (r1 - r0) * row_bytes);
          crc = crc32c::Extend(crc, sec[4] + r0 * 8, (r1 - r0 + 1) * 8);
          const uint64_t from = DecodeFixed64(sec[4] + r0 * 8), to = DecodeFixed64(sec[4] + r1 * 8);
          if (from > to || to > sec_len[5]) continue;
          crc = crc32c::Extend(crc, sec[5] + from, to - from);
        } else {
          crc = crc32c::Extend(crc, sec[2] + r0 * 4, (r1 - r0) * 4);
          crc = crc32c::Extend(crc, sec[3] + r0 * row_bytes, (r1 - r0) * row_bytes);
        }
        EncodeFixed32(const_cast<uint8_t*>(sec[8]) + b * 4, crc);
      }
    }
  }
  if ((flags & 16) && have[0] && have[1] && have[2]) {
    for (uint64_t d = 0; d + segment::kEntrySize2 <= len[0]; d += segment::kEntrySize2) {
      uint8_t* p = f.data() + off[0] + d;
      const uint64_t ko = DecodeFixed64(p + segment::entry2::kKeyOffset), kl = DecodeFixed32(p + segment::entry2::kKeyLength);
      const uint64_t vo = DecodeFixed64(p + segment::entry2::kValueOffset), vl = DecodeFixed32(p + segment::entry2::kValueLength);
      if (ko > len[1] || kl > len[1] - ko || vo > len[2] || vl > len[2] - vo) continue;
      uint32_t crc = crc32c::Value(p, segment::entry2::kCrc);
      crc = crc32c::Extend(crc, f.data() + off[1] + ko, kl);
      crc = crc32c::Extend(crc, f.data() + off[2] + vo, vl);
      EncodeFixed32(p + segment::entry2::kCrc, crc);
    }
  }
  // Then the section CRCs (over the fixed sections) and the table's.
  if (flags & 2) {
    for (uint64_t i = 0; i < count; ++i) {
      uint8_t* e = f.data() + table + i * segment::kSectionEntrySize;
      const uint64_t o = DecodeFixed64(e + 8), l = DecodeFixed64(e + 16);
      if (o <= size && l <= size - o) EncodeFixed32(e + 24, crc32c::Value(f.data() + o, l));
    }
  }
  if (flags & 4) EncodeFixed32(footer + 12, crc32c::Value(f.data() + table, count * segment::kSectionEntrySize));
  if (flags & 1) EncodeFixed32(f.data() + segment::header2::kCrc, crc32c::Value(f.data(), segment::header2::kCrc));
}

// A read's status: OK, or Corruption naming the file and an offset.
bool Checked(const Status& s) {
  if (s.ok()) return true;
  FUZZ_CHECK(s.IsCorruption(), s.ToString());
  FUZZ_CHECK(s.message().rfind("fuzz.pseg at offset ", 0) == 0, s.message());
  return false;
}

// Reads every attribute column of u64 group g through Column and copies each
// row out (filter::AppendRow reads every value, code and dictionary entry a
// row names: an unchecked pointer is an ASan error). Returns whether every
// read succeeded; with `verified`, also that the copies are columns a writer
// accepts and that the dictionaries are strictly ascending.
bool FuzzColumns(const segment::SegmentFile& f, uint32_t g, uint8_t salt, bool verified) {
  std::vector<std::pair<std::string, AttrType>> columns;
  if (!Checked(f.AttrColumns(g, &columns))) return false;
  FUZZ_CHECK(columns.size() <= kMaxAttrColumns, "column count");
  bool all_ok = true;
  const uint64_t rows = std::min<uint64_t>(f.group(g).rows, kMaxReads);
  std::vector<AttrColumn> copies;
  for (size_t i = 0; i < columns.size(); ++i) {
    const auto& [name, type] = columns[i];
    FUZZ_CHECK(i == 0 || columns[i - 1].first < name, "column names ascending");
    filter::ColumnRef ref;
    bool present = false;
    if (!Checked(f.Column(g, name, &ref, &present))) {
      all_ok = false;
      continue;
    }
    FUZZ_CHECK(present && ref.type == type, "a listed column is present with its type");
    AttrColumn copy = AttrColumn::Make(name, type);
    for (uint64_t r = 0; r < rows; ++r) filter::AppendRow(ref, present, r, &copy);
    if (ref.dict_offsets != nullptr) {
      FUZZ_CHECK(ref.dict_sorted, "a segment dictionary is sorted");
      for (uint64_t e = 0; e + 1 < ref.dict_size && e < kMaxReads; ++e) {
        const std::string_view a(ref.dict_bytes + ref.dict_offsets[e], ref.dict_offsets[e + 1] - ref.dict_offsets[e]);
        const std::string_view b(ref.dict_bytes + ref.dict_offsets[e + 1], ref.dict_offsets[e + 2] - ref.dict_offsets[e + 1]);
        FUZZ_CHECK(a < b, "dictionary strictly ascending");
      }
    }
    if (verified) copies.push_back(std::move(copy));
  }
  filter::ColumnRef ref;
  bool present = true;
  const std::string missing = columns.empty() ? "x" : columns.back().first + static_cast<char>(salt);
  all_ok &= Checked(f.Column(g, missing, &ref, &present));
  FUZZ_CHECK(!present, "a name above every column is absent");
  if (verified) {
    const Status s = CheckAttrColumns(copies, rows);
    FUZZ_CHECK(s.ok(), "the columns of a verified file are valid: " + s.ToString());
  }
  return all_ok;
}

void FuzzSegment(fuzz::MemoryMapEnv& env, uint8_t salt) {
  using namespace pomai::segment;
  auto opened = SegmentFile::Open(&env, "fuzz.pseg");
  if (!opened.ok()) {
    Checked(opened.status());
    return;
  }
  const SegmentFile& f = **opened;
  bool all_ok = true;
  // Entries: read, then look up by their keys.
  for (uint64_t i = 0; i < f.entry_count() && i < kMaxReads; ++i) {
    EntryView v;
    if (!Checked(f.ReadEntry(i, &v))) {
      all_ok = false;
      continue;
    }
    FUZZ_CHECK(v.index == i && !v.key.empty(), "entry view");
    EntryView w;
    bool found = false;
    all_ok &= Checked(f.Get(v.key, &w, &found));
    all_ok &= Checked(f.Get(std::string(v.key) + static_cast<char>(salt), &w, &found));
  }
  // Groups: rows, tombstones, metadata, entries of rows, blocks, graphs.
  for (uint32_t g = 0; g < f.group_count(); ++g) {
    const GroupInfo& info = f.group(g);
    FUZZ_CHECK(info.dim >= 1 && info.rows_per_block >= 1, "descriptor checked at open");
    uint32_t found_g = ~0u;
    FUZZ_CHECK(f.FindGroup(info.kind, info.cid, info.dim, info.metric, &found_g) && found_g == g, "FindGroup");
    for (uint64_t b = 0; b < info.blocks() && b < kMaxReads; ++b) all_ok &= Checked(f.CheckBlock(g, b));
    for (uint64_t r = 0; r < info.rows && r < kMaxReads; ++r) {
      fuzz::Touch(f.vector(g, r), size_t{info.dim} * 4);
      if (info.kind == GroupKind::kU64) {
        uint64_t row = 0;
        bool found = false;
        all_ok &= Checked(f.FindRow(g, f.ids(g)[r] + (salt & 1), &row, &found));
        auto meta = f.Metadata(g, r);
        all_ok &= Checked(meta.status());
        uint64_t seq = 0;
        all_ok &= Checked(f.FindTombstone(g, f.ids(g)[r], &seq, &found));
      } else {
        EntryView v;
        all_ok &= Checked(f.ReadRowEntry(g, r, &v));
      }
    }
    if (info.kind == GroupKind::kU64) all_ok &= FuzzColumns(f, g, salt, false);
    if (const index::HnswGraph* graph = f.graph(g)) {
      FUZZ_CHECK(info.has_graph && graph->rows() == info.rows && graph->dim() == info.dim, "graph matches its group");
      index::HnswGraph copy = *graph;
      fuzz::ExerciseGraph(copy, f.vectors(g), info.dim, salt);
    } else {
      FUZZ_CHECK(!info.has_graph, "a group with a graph flag has a graph view");
    }
  }
  const Status verified = f.Verify();
  Checked(verified);
  if (!verified.ok()) return;
  FUZZ_CHECK(all_ok, "a read failed on a file that verifies");
  // A verified file answers every lookup.
  for (uint64_t i = 0; i < f.entry_count() && i < kMaxReads; ++i) {
    EntryView v, w;
    bool found = false;
    FUZZ_CHECK(f.ReadEntry(i, &v).ok(), "entry of a verified file");
    FUZZ_CHECK(f.Get(v.key, &w, &found).ok() && found && w.index == i, "keys of a verified file are found");
  }
  for (uint32_t g = 0; g < f.group_count(); ++g) {
    const GroupInfo& info = f.group(g);
    if (info.kind != GroupKind::kU64) continue;
    for (uint64_t r = 0; r < info.rows && r < kMaxReads; ++r) {
      uint64_t row = ~0ull;
      bool found = false;
      FUZZ_CHECK(f.FindRow(g, f.ids(g)[r], &row, &found).ok() && found && row == r, "ids of a verified file");
    }
    if (f.graph(g) != nullptr) FUZZ_CHECK(f.graph(g)->Verify().ok(), "graphs of a verified file verify");
    FUZZ_CHECK(FuzzColumns(f, g, salt, true), "columns of a verified file read");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::vector<uint8_t> bytes(data + 2, data + size);
  FixChecksums(bytes, data[0]);
  const uint8_t salt = data[1];
  pomai::fuzz::MemoryMapEnv env;
  env.Add("fuzz.pseg", bytes.data(), bytes.size());
  FuzzSegment(env, salt);
  return 0;
}
