// HNSW graph sections inside a segment file (docs/FORMAT.md, "HNSW graph sections").
//
// A graph over a segment of `rows` vectors is five extra sections (plus the
// SQ8 ones below) of the kinds segment::SectionKind::kHnsw*. Each starts
// 64-byte aligned in the file, every integer is little-endian, and every u32
// array is therefore naturally aligned in the mapping.
//
//   kHnswHeader      128 bytes, below
//   kHnswLevels      rows u8: the top layer of each row (0 = layer 0 only)
//   kHnswLayer0      rows * (1 + m0) u32: row r's block is [count, id_1 .. id_m0],
//                    count <= m0, unused slots zero
//   kHnswUpperIndex  rows u32: the first upper block of row r; row r owns the
//                    levels[r] blocks [index[r], index[r] + levels[r]), one per
//                    layer 1 .. levels[r] in order, so index is the prefix sum
//                    of levels
//   kHnswUpperLinks  upper_blocks * (1 + m) u32: blocks [count, id_1 .. id_m],
//                    count <= m, unused slots zero
//
// With flag kFlagSq8, two more (index/sq8.h):
//   kHnswSq8Params   2 * dim f32: per-dimension min, then per-dimension scale
//   kHnswSq8Codes    rows * sq8::Stride(dim) u8: row r decodes to min + scale * code,
//                    zero padded
//
// With flag kFlagSq8Norms (only together with kFlagSq8), one more:
//   kHnswSq8Norms    rows f32: a per-row term of the integer scoring kernel
//                    (sq8::RowNorm): L2 sum_j (scale_j code_j)^2, cosine
//                    |decoded row|^2, IP 0. Graphs without it (written before
//                    it existed) are scored with the float kernel.
//
// Header (128 bytes):
//   0   8  magic "POMAIHNS"
//   8   4  format_version (kHnswFormatVersion)
//   12  4  header_size (128)
//   16  4  m: the degree bound of layers >= 1
//   20  4  m0: the degree bound of layer 0
//   24  4  max_level: the top layer of the graph
//   28  4  entry_point: a row with levels[row] == max_level (kNoRow when rows == 0)
//   32  8  rows
//   40  4  dim
//   44  1  metric (0 L2, 1 IP, 2 COSINE)
//   45  1  flags (kFlagSq8, kFlagSq8Norms)
//   46  2  reserved, zero
//   48  8  seed the levels were drawn with
//   56  4  ef_construction the graph was built with
//   60  4  reserved, zero
//   64  8  upper_blocks
//   72  8  reused_rows: rows whose links were carried over from an earlier
//          graph when a compaction built this one (0: built from nothing)
//   80  44 reserved, zero
//   124 4  CRC32C of bytes [0, 124)
#pragma once

#include <cstddef>
#include <cstdint>

#include "segment/section_kind.h"

namespace pomai::index {

constexpr char kHnswMagic[8] = {'P', 'O', 'M', 'A', 'I', 'H', 'N', 'S'};
constexpr uint32_t kHnswFormatVersion = 1;
constexpr size_t kHnswHeaderSize = segment::ElementSize(segment::SectionKind::kHnswHeader);
constexpr uint8_t kFlagSq8 = 1;       // the SQ8 params and codes sections are present
constexpr uint8_t kFlagSq8Norms = 2;  // so is the SQ8 norms section (needs kFlagSq8)

// Reader bounds: larger values in a header are corruption.
constexpr uint32_t kMaxLevel = 32;     // levels are drawn capped at this
constexpr uint32_t kMaxDegree = 4096;  // m and m0
constexpr uint32_t kNoRow = 0xFFFFFFFFu;
constexpr uint64_t kMaxRows = 0xFFFFFFFEull;  // row ids are u32 and kNoRow is reserved

// Header field offsets.
namespace hnsw_header {
constexpr size_t kMagic = 0;
constexpr size_t kVersion = 8;
constexpr size_t kHeaderSize = 12;
constexpr size_t kM = 16;
constexpr size_t kM0 = 20;
constexpr size_t kMaxLevelField = 24;
constexpr size_t kEntryPoint = 28;
constexpr size_t kRows = 32;
constexpr size_t kDim = 40;
constexpr size_t kMetric = 44;
constexpr size_t kFlags = 45;
constexpr size_t kSeed = 48;
constexpr size_t kEfConstruction = 56;
constexpr size_t kUpperBlocks = 64;
constexpr size_t kReusedRows = 72;
constexpr size_t kCrc = 124;
}  // namespace hnsw_header

}  // namespace pomai::index
