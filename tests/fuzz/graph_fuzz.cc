// libFuzzer target: HNSW graph open, verify, stats and search (lib/index)
// straight from section bytes, without the segment's checksums in the way.
//
// Input: byte 0 flags (bit 0: recompute the header CRC; bit 1: put a NaN in
// the vectors; bit 2: an eighth length follows the seven, for kind 23, the
// SQ8 norms); byte 1 a search salt; then 7 (or 8) u32 little-endian lengths,
// one per section kind 16..22 (23), then the sections' bytes in that order
// (lengths are clamped to what is left). Each section is served as an exactly sized,
// 64-byte aligned buffer. The vectors are synthesised for the rows and dim
// the header states (at most 4096 rows and 64 dims, else the input is skipped).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "graph_exercise.h"
#include "index/hnsw.h"
#include "index/hnsw_format.h"
#include "util/coding.h"
#include "util/crc32c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pomai;
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  const uint8_t salt = data[1];
  const int kinds = (flags & 4) ? 8 : 7;
  const size_t prefix = 2 + 4 * static_cast<size_t>(kinds);
  if (size < prefix) return 0;
  size_t pos = prefix;
  std::unique_ptr<fuzz::AlignedBytes> sections[8];
  for (int i = 0; i < 8; ++i) sections[i] = std::make_unique<fuzz::AlignedBytes>(data, 0);
  for (int i = 0; i < kinds; ++i) {
    uint64_t len = DecodeFixed32(data + 2 + 4 * i);
    if (len > size - pos) len = size - pos;
    sections[i] = std::make_unique<fuzz::AlignedBytes>(data + pos, len);
    pos += len;
  }
  fuzz::AlignedBytes& header = *sections[0];
  uint64_t rows = 1;
  uint32_t dim = 4;
  uint8_t metric = 0;
  if (header.size() == index::kHnswHeaderSize) {  // else Open must still reject it cleanly
    if (flags & 1) {
      EncodeFixed32(header.data() + index::hnsw_header::kCrc, crc32c::Value(header.data(), index::hnsw_header::kCrc));
    }
    rows = DecodeFixed64(header.data() + index::hnsw_header::kRows);
    dim = DecodeFixed32(header.data() + index::hnsw_header::kDim);
    metric = header.data()[index::hnsw_header::kMetric];
  }
  if (rows > 4096 || dim == 0 || dim > 64 || metric > 2) return 0;
  std::vector<float> vectors(rows * dim);
  for (size_t i = 0; i < vectors.size(); ++i) vectors[i] = static_cast<float>((i * 2654435761u) % 1000) / 250.0f - 2.0f;
  if ((flags & 2) && !vectors.empty()) vectors[salt % vectors.size()] = std::nanf("");

  auto section = [&](uint32_t kind) -> std::string_view {
    const uint32_t i = kind - KindNumber(segment::SectionKind::kHnswHeader);
    if (i >= 8 || sections[i]->size() == 0) return {};
    return std::string_view(reinterpret_cast<const char*>(sections[i]->data()), sections[i]->size());
  };
  auto g = index::HnswGraph::Open(section, vectors.data(), rows, dim, static_cast<simd::Metric>(metric), "fuzz.graph");
  if (!g.ok()) {
    FUZZ_CHECK(g.status().IsCorruption() || g.status().IsNotFound(), g.status().ToString());
    return 0;
  }
  fuzz::ExerciseGraph(*g, vectors.data(), dim, salt);
  return 0;
}
