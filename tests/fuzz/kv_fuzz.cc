// libFuzzer target: the keyspace database's WAL files (its segments are
// segment_fuzz's, its manifest logs manifest_fuzz's).
//
// Input: the bytes of one WAL file.
//
// Checks: every error is Corruption naming the file and offset; the
// reader's records lie in the file, and a decoded commit record encodes back
// to its payload and reads back from a memtable.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/collection.h"
#include "fuzz_util.h"
#include "memtable/key_table.h"
#include "wal/log_format.h"
#include "wal/log_reader.h"
#include "wal/record_codec.h"

namespace {

using namespace pomai;
using engine::ValueKind;

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

void FuzzWal(const uint8_t* data, size_t size) {
  fuzz::AlignedBytes file(data, size);
  wal::Reader reader(file.data(), file.size(), "fuzz.log");
  wal::Record rec;
  std::vector<engine::Write> writes;
  std::vector<wal::RecordOp> ops;
  uint64_t expected_offset = 0;
  while (reader.Next(&rec)) {
    FUZZ_CHECK(rec.offset == expected_offset, "records are contiguous");
    FUZZ_CHECK(rec.offset + wal::kHeaderSize + rec.payload.size() <= file.size(), "record inside the file");
    expected_offset = rec.offset + wal::kHeaderSize + rec.payload.size();
    if (rec.type != static_cast<uint8_t>(wal::RecordType::kWriteBatch)) continue;  // recovery reports these as Corruption
    const std::string origin = "fuzz.log at offset " + std::to_string(rec.offset);
    Status s = wal::DecodeWriteBatch(rec.payload, origin, &ops);
    if (s.ok()) s = engine::WritesOf(ops, origin, &writes);
    if (!s.ok()) {
      FUZZ_CHECK(s.IsCorruption(), s.ToString());
      FUZZ_CHECK(StartsWith(s.message(), origin + ": "), s.message());
      continue;
    }
    FUZZ_CHECK(engine::EncodeCommit(writes) == rec.payload, "decode then encode gives the payload");
    // Replay into a memtable, as recovery does: the last write of a key wins.
    memtable::KeyTable mem;
    mem.Apply(rec.seq, writes, rec.seq);
    for (size_t i = 0; i < writes.size(); ++i) {
      const engine::Write& w = writes[i];
      FUZZ_CHECK(w.key.size() >= 2 && w.value != nullptr, "decoded key and value");
      bool last = true;
      for (size_t j = i + 1; j < writes.size() && last; ++j) last = writes[j].key != w.key;
      if (!last) continue;
      engine::VersionView v;
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

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzWal(data, size);
  return 0;
}
