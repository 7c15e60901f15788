// Contents for segment files (segment/writer.h) shared by file_test.cc and
// file_corruption_test.cc: the data a file is written from, kept so tests can
// compare what a SegmentFile returns with it; whole-file reads and writes; an
// Env serving exact-size in-memory mappings.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "index/hnsw.h"
#include "segment/file.h"
#include "segment/writer.h"
#include "wal/record_codec.h"
#include "util/env.h"

namespace pomai::segment::testing {

inline std::string BE64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (56 - 8 * i));
  return s;
}
inline std::string UserKey(const std::string& k) { return std::string(1, '\0') + k; }
inline std::string ConfigKey(const std::string& name) { return std::string(1, '\x01') + name; }
inline std::string RowKey(uint64_t cid, const std::string& k) { return std::string(1, '\x02') + BE64(cid) + k; }

inline std::vector<float> RandomVectors(size_t rows, uint32_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::vector<float> v(rows * dim);
  for (float& x : v) x = value(rng);
  return v;
}

// A u64 collection's rows as the writer takes them.
struct U64Data {
  uint64_t cid = 0;
  uint32_t dim = 0;
  simd::Metric metric = simd::Metric::kL2;
  std::vector<uint64_t> ids, seqs, meta_offsets, tomb_ids, tomb_seqs;
  std::vector<float> vectors;
  std::string blob;
  bool graph = false;

  std::string Meta(size_t r) const { return blob.substr(meta_offsets[r], meta_offsets[r + 1] - meta_offsets[r]); }
  U64Rows Rows() const {
    return {.cid = cid, .dim = dim, .metric = metric, .rows = ids.size(), .ids = ids.data(), .seqs = seqs.data(),
            .vectors = vectors.data(), .metadata_offsets = meta_offsets.data(),
            .metadata_blob = reinterpret_cast<const uint8_t*>(blob.data()), .tombstones = tomb_ids.size(),
            .tombstone_ids = tomb_ids.data(), .tombstone_seqs = tomb_seqs.data()};
  }
};

// `rows` rows with ids 10, 13, 16, ... (every third id), seqs 1000 + r,
// metadata of varied lengths (every 4th row none), tombstones 11, 14, ... .
inline U64Data MakeU64(uint64_t cid, size_t rows, uint32_t dim, size_t tombstones, uint64_t seed = 1) {
  U64Data d;
  d.cid = cid;
  d.dim = dim;
  d.metric = simd::Metric::kCosine;
  d.vectors = RandomVectors(rows, dim, seed);
  d.meta_offsets.push_back(0);
  for (size_t r = 0; r < rows; ++r) {
    d.ids.push_back(10 + 3 * r);
    d.seqs.push_back(1000 + r);
    if (r % 4 != 0) d.blob += "meta-" + std::to_string(r);
    d.meta_offsets.push_back(d.blob.size());
  }
  for (size_t t = 0; t < tombstones; ++t) {
    d.tomb_ids.push_back(11 + 3 * t);
    d.tomb_seqs.push_back(2000 + t);
  }
  return d;
}

// One entry to write, and what a reader must return for it.
struct EntryData {
  EntryData(std::string k, uint64_t s, EntryKind kd, std::string v = "", bool meta = false, int g = -1)
      : key(std::move(k)), seq(s), kind(kd), value(std::move(v)), has_metadata(meta), group(g) {}
  std::string key;
  uint64_t seq = 0;
  EntryKind kind = EntryKind::kBytes;
  std::string value;  // bytes value or metadata
  bool has_metadata = false;
  int group = -1;  // index into FileData::entry_groups for vectors
  std::vector<float> vector;
  std::string attrs;  // a collection row's attribute record, or empty
};

struct EntryGroupData {
  GroupKind kind = GroupKind::kRecords;
  uint64_t cid = 0;
  uint32_t dim = 0;
  simd::Metric metric = simd::Metric::kL2;
  bool graph = false;
};

// Everything a file is written from.
struct FileData {
  std::vector<EntryData> entries;  // any order: Write sorts them
  std::vector<EntryGroupData> entry_groups;
  std::vector<U64Data> u64;
  index::HnswParams graph_params{8, 40, 7, true};

  // A file of one u64 group.
  static FileData OneGroup(U64Data u) {
    FileData f;
    f.u64.push_back(std::move(u));
    return f;
  }

  // Writes the file; graphs are built with index::BuildHnsw (sequential).
  Status Write(Env* env, const std::string& path, uint64_t number, size_t block_bytes = kBlockBytes) {
    std::sort(entries.begin(), entries.end(), [](const EntryData& a, const EntryData& b) { return a.key < b.key; });
    SegmentWriter w(block_bytes);
    std::vector<GroupHandle> handles;
    for (const EntryGroupData& g : entry_groups) {
      handles.push_back(g.kind == GroupKind::kRecords ? w.AddRecordGroup(g.dim, g.metric)
                                                      : w.AddCollectionGroup(g.cid, g.dim, g.metric));
    }
    std::vector<std::vector<float>> rows(entry_groups.size());
    for (const EntryData& e : entries) {
      switch (e.kind) {
        case EntryKind::kBytes: w.AddBytes(e.key, e.seq, e.value); break;
        case EntryKind::kTombstone: w.AddTombstone(e.key, e.seq); break;
        case EntryKind::kVector: {
          const std::string_view meta(e.value);
          w.AddVector(e.key, e.seq, handles[e.group], e.vector.data(), e.has_metadata ? &meta : nullptr, e.attrs);
          rows[e.group].insert(rows[e.group].end(), e.vector.begin(), e.vector.end());
          break;
        }
      }
    }
    for (size_t g = 0; g < entry_groups.size(); ++g) {
      if (!entry_groups[g].graph) continue;
      const EntryGroupData& eg = entry_groups[g];
      auto sections = index::BuildHnsw(rows[g].data(), rows[g].size() / eg.dim, eg.dim, eg.metric, graph_params,
                                       nullptr, nullptr);
      if (!sections.ok()) return sections.status();
      w.SetGraph(handles[g], std::move(sections).value());
    }
    for (const U64Data& u : u64) {
      const GroupHandle h = w.AddU64Group(u.Rows());
      if (!u.graph) continue;
      auto sections = index::BuildHnsw(u.vectors.data(), u.ids.size(), u.dim, u.metric, graph_params, nullptr, nullptr);
      if (!sections.ok()) return sections.status();
      w.SetGraph(h, std::move(sections).value());
    }
    return w.Finish(env, path, number);
  }

  // The vectors of entry group g's rows, in key order.
  std::vector<const EntryData*> GroupRows(int g) const {
    std::vector<const EntryData*> out;
    std::vector<const EntryData*> sorted;
    for (const EntryData& e : entries) sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(), [](const EntryData* a, const EntryData* b) { return a->key < b->key; });
    for (const EntryData* e : sorted) {
      if (e->kind == EntryKind::kVector && e->group == g) out.push_back(e);
    }
    return out;
  }
};

// A file with every kind of entry and group: plain values, a configuration,
// vector records of two (dim, metric) groups, rows of a byte-keyed
// collection (cid 77), tombstones, and a u64 collection (cid 5). Small
// enough for every-bit damage tests when `rows` is small.
inline FileData MixedFile(size_t u64_rows, size_t entry_rows, bool graphs) {
  FileData f;
  f.entry_groups = {{GroupKind::kRecords, 0, 3, simd::Metric::kL2, false},
                    {GroupKind::kRecords, 0, 5, simd::Metric::kIP, false},
                    {GroupKind::kBytes, 77, 4, simd::Metric::kCosine, graphs}};
  uint64_t seq = 1;
  f.entries.push_back({ConfigKey(""), seq++, EntryKind::kBytes, std::string(32, '\x01')});
  f.entries.push_back({ConfigKey("idx"), seq++, EntryKind::kBytes, std::string(32, '\x02')});
  f.entries.push_back({ConfigKey("gone"), seq++, EntryKind::kTombstone, ""});
  for (size_t i = 0; i < entry_rows; ++i) {
    const std::string n = std::to_string(100 + i);
    f.entries.push_back({UserKey("b" + n), seq++, EntryKind::kBytes, "value " + n});
    EntryData rec{UserKey("v" + n), seq++, EntryKind::kVector, i % 3 ? "m" + n : "", i % 3 != 0, static_cast<int>(i % 2)};
    rec.vector = RandomVectors(1, f.entry_groups[i % 2].dim, 50 + i);
    f.entries.push_back(rec);
    EntryData row{RowKey(77, "r" + n), seq++, EntryKind::kVector, i % 2 ? "rowmeta" : "", i % 2 != 0, 2};
    row.vector = RandomVectors(1, 4, 500 + i);
    if (i % 3 != 2) {  // rows with attributes, with and without metadata
      std::vector<AttrColumn> attrs(1, AttrColumn::Make("n", AttrType::kInt64));
      attrs[0].AppendInt(static_cast<int64_t>(i));
      if (i % 3 == 1) {
        attrs.push_back(AttrColumn::Make("s", AttrType::kString));
        attrs.back().AppendString("s" + n);
      }
      row.attrs = wal::EncodeAttrRecord(attrs);
    }
    f.entries.push_back(row);
    if (i % 4 == 1) f.entries.push_back({UserKey("t" + n), seq++, EntryKind::kTombstone, ""});
    if (i % 4 == 2) f.entries.push_back({RowKey(77, "s" + n), seq++, EntryKind::kTombstone, ""});
  }
  f.u64.push_back(MakeU64(5, u64_rows, 6, 3));
  f.u64.back().graph = graphs;
  return f;
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

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
