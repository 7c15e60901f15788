// Builders and file-crafting helpers shared by the segment tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <new>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "segment/segment.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace pomai::segment::testing {

// Owns the arrays a SegmentContents points at.
struct TestSegment {
  SegmentInfo info;
  std::vector<uint64_t> ids;
  std::vector<float> vectors;
  std::vector<uint64_t> meta_offsets;  // empty: no metadata
  std::string meta_blob;
  std::vector<uint64_t> tombstones;
  std::vector<std::pair<uint32_t, std::string>> extra;

  size_t rows() const { return ids.size(); }
  std::string Meta(size_t row) const {
    if (meta_offsets.empty()) return std::string();
    return meta_blob.substr(meta_offsets[row], meta_offsets[row + 1] - meta_offsets[row]);
  }

  SegmentContents Contents() const {
    SegmentContents c;
    c.info = info;
    c.row_count = ids.size();
    c.ids = ids.empty() ? nullptr : ids.data();
    c.vectors = vectors.empty() ? nullptr : vectors.data();
    c.meta_offsets = meta_offsets.empty() ? nullptr : meta_offsets.data();
    c.meta_blob = reinterpret_cast<const uint8_t*>(meta_blob.data());
    c.tombstone_count = tombstones.size();
    c.tombstones = tombstones.empty() ? nullptr : tombstones.data();
    for (const auto& [kind, bytes] : extra) c.extra.push_back({kind, bytes});
    return c;
  }
};

// `rows` rows of `dim` random floats, sparse ascending ids, metadata of
// varied lengths (every 5th row empty), `tombstones` ascending tombstones.
inline TestSegment MakeSegment(size_t rows, uint32_t dim, size_t tombstones, uint32_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> value(-10.0f, 10.0f);
  TestSegment s;
  s.info.dim = dim;
  s.info.metric = simd::Metric::kCosine;
  s.info.shard = 7;
  s.info.min_seq = 100;
  s.info.max_seq = 100 + rows;
  uint64_t id = 5;
  s.meta_offsets.push_back(0);
  for (size_t i = 0; i < rows; ++i) {
    id += 1 + rng() % 4;
    s.ids.push_back(id);
    for (uint32_t d = 0; d < dim; ++d) s.vectors.push_back(value(rng));
    size_t len = (i % 5 == 0) ? 0 : 1 + rng() % 40;
    for (size_t b = 0; b < len; ++b) s.meta_blob.push_back(static_cast<char>('a' + (i + b) % 26));
    s.meta_offsets.push_back(s.meta_blob.size());
  }
  uint64_t t = 1;
  for (size_t i = 0; i < tombstones; ++i) {
    t += 1 + rng() % 7;
    s.tombstones.push_back(t);
  }
  return s;
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Editing a segment image in memory, re-sealing the checksums afterwards, to
// build files that only a malicious writer would produce.
class Image {
 public:
  explicit Image(std::string bytes) : b_(std::move(bytes)) {}
  std::string& bytes() { return b_; }
  uint8_t* at(uint64_t off) { return reinterpret_cast<uint8_t*>(b_.data()) + off; }

  uint64_t footer() const { return b_.size() - kFooterSize; }
  uint64_t table() const { return DecodeFixed64(cat(footer())); }
  uint32_t count() const { return DecodeFixed32(cat(footer() + 8)); }
  uint64_t entry(uint32_t i) const { return table() + uint64_t{i} * kSectionEntrySize; }
  // Table entry index of section `kind`.
  uint32_t find(uint32_t kind) const {
    for (uint32_t i = 0; i < count(); ++i) {
      if (DecodeFixed32(cat(entry(i))) == kind) return i;
    }
    ADD_FAILURE() << "no section of kind " << kind;
    return 0;
  }
  uint64_t section_offset(uint32_t kind) const { return DecodeFixed64(cat(entry(find(kind)) + 8)); }
  uint64_t section_length(uint32_t kind) const { return DecodeFixed64(cat(entry(find(kind)) + 16)); }

  void SealHeader() { EncodeFixed32(at(124), crc32c::Value(at(0), 124)); }
  // Recomputes the CRC of section `kind` in the table, then the table's CRC.
  void SealSection(uint32_t kind) {
    uint64_t e = entry(find(kind));
    EncodeFixed32(at(e + 24), crc32c::Value(at(section_offset(kind)), section_length(kind)));
    SealTable();
  }
  void SealTable() { EncodeFixed32(at(footer() + 12), crc32c::Value(at(table()), count() * kSectionEntrySize)); }

 private:
  const uint8_t* cat(uint64_t off) const { return reinterpret_cast<const uint8_t*>(b_.data()) + off; }
  std::string b_;
};

// A MappedFile over an exact-size, page-aligned heap copy of some bytes: an
// out-of-bounds read is an ASan error instead of a silent read of the
// mapping's last page.
class HeapMappedFile : public MappedFile {
 public:
  HeapMappedFile(std::string path, const std::string& bytes) : path_(std::move(path)), size_(bytes.size()) {
    if (size_ > 0) {
      data_ = static_cast<uint8_t*>(::operator new(size_, std::align_val_t{4096}));
      std::memcpy(data_, bytes.data(), size_);
    }
  }
  ~HeapMappedFile() override {
    if (data_ != nullptr) ::operator delete(data_, std::align_val_t{4096});
  }
  const uint8_t* data() const override { return data_; }
  size_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  uint8_t* data_ = nullptr;
  size_t size_;
};

// An Env whose MapFile serves in-memory files (see HeapMappedFile), so the
// exhaustive damage tests neither touch the disk nor hide over-reads.
class MemoryMapEnv : public EnvWrapper {
 public:
  MemoryMapEnv() : EnvWrapper(Env::Default()) {}
  void Put(const std::string& path, std::string bytes) { files_[path] = std::move(bytes); }
  Result<std::unique_ptr<MappedFile>> MapFile(const std::string& path) override {
    auto it = files_.find(path);
    if (it == files_.end()) return target()->MapFile(path);
    return std::unique_ptr<MappedFile>(new HeapMappedFile(path, it->second));
  }

 private:
  std::map<std::string, std::string> files_;
};

}  // namespace pomai::segment::testing
