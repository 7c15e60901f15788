// libFuzzer target: the files of a keyspace database that are not segments
// (those are segment_fuzz's, its manifest log manifest_fuzz's): the WAL's
// commit records and the named-index graph files.
//
// Input: byte 0 picks the file kind (b % 2): 0 a WAL file, 1 a named-index
// graph file. Byte 1 holds fix-up flags for a graph file (so the fuzzer gets
// past the checksums): bit 0 the header CRC, bit 1 every section CRC, bit 2
// the table CRC; unused for a WAL. The rest is the file (a graph file is
// served as an exactly sized, 64-byte aligned mapping).
//
// Checks: every error is Corruption naming the file and offset; the
// reader's records lie in the file, and a decoded commit record encodes back
// to its payload and reads back from a memtable. A graph file is loaded with the configuration
// its own header and name section give (as pomai-inspect does): any failure
// is an error, never a crash; a loaded one answers searches and statistics
// and, caught up with no entries, answers nothing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/kv_index.h"
#include "engine/kv_store.h"
#include "fuzz_util.h"
#include "memtable/key_table.h"
#include "segment_fixups.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "wal/log_format.h"
#include "wal/log_reader.h"
#include "wal/record_codec.h"

namespace {

using namespace pomai;
using engine::kv::ValueKind;

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

void FuzzWal(const uint8_t* data, size_t size) {
  fuzz::AlignedBytes file(data, size);
  wal::Reader reader(file.data(), file.size(), "fuzz.log");
  wal::Record rec;
  std::vector<engine::kv::Write> writes;
  std::vector<wal::RecordOp> ops;
  uint64_t expected_offset = 0;
  while (reader.Next(&rec)) {
    FUZZ_CHECK(rec.offset == expected_offset, "records are contiguous");
    FUZZ_CHECK(rec.offset + wal::kHeaderSize + rec.payload.size() <= file.size(), "record inside the file");
    expected_offset = rec.offset + wal::kHeaderSize + rec.payload.size();
    if (rec.type != static_cast<uint8_t>(wal::RecordType::kWriteBatch)) continue;  // recovery reports these as Corruption
    const std::string origin = "fuzz.log at offset " + std::to_string(rec.offset);
    Status s = wal::DecodeWriteBatch(rec.payload, origin, &ops);
    if (s.ok()) s = engine::kv::WritesOf(ops, origin, &writes);
    if (!s.ok()) {
      FUZZ_CHECK(s.IsCorruption(), s.ToString());
      FUZZ_CHECK(StartsWith(s.message(), origin + ": "), s.message());
      continue;
    }
    FUZZ_CHECK(engine::kv::EncodeCommit(writes) == rec.payload, "decode then encode gives the payload");
    // Replay into a memtable, as recovery does: the last write of a key wins.
    memtable::KeyTable mem;
    mem.Apply(rec.seq, writes, rec.seq);
    for (size_t i = 0; i < writes.size(); ++i) {
      const engine::kv::Write& w = writes[i];
      FUZZ_CHECK(w.key.size() >= 2 && w.value != nullptr, "decoded key and value");
      bool last = true;
      for (size_t j = i + 1; j < writes.size() && last; ++j) last = writes[j].key != w.key;
      if (!last) continue;
      engine::kv::VersionView v;
      FUZZ_CHECK(mem.Get(w.key, rec.seq, &v) && v.seq == rec.seq && v.kind == w.value->kind, "replayed write found");
      if (v.kind == ValueKind::kVector) {
        FUZZ_CHECK(v.dim == w.value->vec.size() && v.bytes == w.value->bytes, "replayed vector record");
      } else if (v.kind == ValueKind::kBytes) {
        FUZZ_CHECK(v.bytes == w.value->bytes, "replayed bytes");
      }
    }
  }
  FUZZ_CHECK(reader.good_end() == expected_offset, "good_end is the end of the last record");
  if (!reader.status().ok()) {
    FUZZ_CHECK(reader.status().IsCorruption(), reader.status().ToString());
    FUZZ_CHECK(StartsWith(reader.status().message(), "fuzz.log at offset "), reader.status().message());
  }
}

}  // namespace

void FuzzIndexGraph(std::vector<uint8_t> bytes, uint8_t flags) {
  fuzz::FixSegmentChecksums(bytes, flags);
  fuzz::MemoryMapEnv env;
  env.Add("fuzz.pgraph", bytes.data(), bytes.size());
  auto container = segment::Segment::Open(&env, "fuzz.pgraph");
  if (!container.ok()) return;  // segment_fuzz covers the container's errors
  const segment::SegmentInfo& info = container.value()->info();
  // The engine only ever asks for a valid configuration (1..65535 dims, a known metric).
  if (info.dim == 0 || info.dim > 65535 || static_cast<uint32_t>(info.metric) > 2) return;
  const std::string name(container.value()->Section(segment::SectionKind::kGraphFileName));
  engine::IndexConfig config;
  config.dim = info.dim;
  config.metric = info.metric;
  config.m = 16;
  auto loaded = engine::kv::IndexRuntime::OpenGraphFile(&env, "fuzz.pgraph", name, config, info.min_seq);
  if (!loaded.ok()) {
    FUZZ_CHECK(loaded.status().IsCorruption(), loaded.status().ToString());
    FUZZ_CHECK(loaded.status().message().find("fuzz.pgraph") != std::string::npos, loaded.status().message());
    return;
  }
  engine::kv::IndexRuntime& rt = *loaded.value();
  const uint64_t rows = container.value()->row_count();
  FUZZ_CHECK(rt.base_max_seq() == info.max_seq, "max seq");
  engine::IndexStats st = rt.Stats();
  FUZZ_CHECK(st.node_count == rows && st.deleted_count == 0 && st.delta_count == 0, "a loaded graph's counts");
  std::vector<float> query(info.dim, 0.5f);
  std::vector<engine::KvHit> hits;
  Status s = rt.Search(query.data(), 5, 32, &hits);
  FUZZ_CHECK(s.ok() || s.IsCorruption(), s.ToString());
  if (s.ok()) FUZZ_CHECK(hits.size() <= std::min<uint64_t>(5, rows), "at most k hits");
  rt.CatchUp({});  // every entry gone: every row is dead
  FUZZ_CHECK(rt.Stats().node_count == 0 && rt.Stats().deleted_count == rows, "all rows dead");
  s = rt.Search(query.data(), 5, 32, &hits);
  FUZZ_CHECK(s.ok() || s.IsCorruption(), s.ToString());
  if (s.ok()) FUZZ_CHECK(hits.empty(), "no hits once every row is dead");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  if (data[0] % 2 == 0) {
    FuzzWal(data + 2, size - 2);
  } else {
    FuzzIndexGraph(std::vector<uint8_t>(data + 2, data + size), data[1]);
  }
  return 0;
}
