// libFuzzer target: the WAL reader (lib/wal/log_reader) and the record codec
// (lib/wal/record_codec) over arbitrary bytes.
//
// Input: byte 0 is skipped (kept so that older corpora stay aligned); the
// rest is a WAL file. Checks the reader's contract: records lie inside the
// file, in order, with the offsets and lengths it claims; a clean end (no torn
// tail, OK) consumes the whole file; an error is Corruption naming the file.
// Every record is decoded: a write batch that decodes encodes back to the same
// bytes, and every field a decoded op or row array points at lies inside the
// payload; a record that does not decode is Corruption naming the record. A
// write batch of key ops (an alopex commit) is also turned into the engine's
// writes (engine::WritesOf; a batch with row ops is Corruption naming the
// record), which encode back to the payload (engine::EncodeCommit) and, replayed
// into a memtable::KeyTable as recovery does, read back: the last write of
// each key, at the record's seq, with its kind, bytes and vector.
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
using fuzz::Touch;

// A decoded write batch as the engine's writes, and their replay.
void ReplayCommit(const wal::Record& rec, const std::vector<wal::RecordOp>& ops, const std::string& origin) {
  std::vector<engine::Write> writes;
  Status s = engine::WritesOf(ops, origin, &writes);
  if (!s.ok()) {
    FUZZ_CHECK(s.IsCorruption(), s.ToString());
    FUZZ_CHECK(s.message().rfind(origin + ": ", 0) == 0, s.message());
    return;
  }
  FUZZ_CHECK(engine::EncodeCommit(writes) == rec.payload, "writes encode back to the payload");
  memtable::KeyTable mem;
  mem.Apply(rec.seq, writes, rec.seq);
  for (size_t i = 0; i < writes.size(); ++i) {
    const engine::Write& w = writes[i];
    FUZZ_CHECK(w.key == ops[i].key && w.value != nullptr, "decoded key and value");
    bool last = true;
    for (size_t j = i + 1; j < writes.size() && last; ++j) last = writes[j].key != w.key;
    if (!last) continue;
    engine::VersionView v;
    FUZZ_CHECK(mem.Get(w.key, rec.seq, &v) && v.seq == rec.seq && v.kind == w.value->kind, "replayed write found");
    if (v.kind == engine::ValueKind::kVector) {
      FUZZ_CHECK(v.dim == w.value->vec.size() && v.bytes == w.value->bytes, "replayed vector record");
    } else if (v.kind == engine::ValueKind::kBytes) {
      FUZZ_CHECK(v.bytes == w.value->bytes, "replayed bytes");
    }
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  fuzz::AlignedBytes file(data + 1, size - 1);
  wal::Reader reader(file.data(), file.size(), "fuzz.log");
  wal::Record rec;
  wal::DecodedRecord decoded;
  uint64_t expected_offset = 0;
  while (reader.Next(&rec)) {
    FUZZ_CHECK(rec.offset == expected_offset, "records are contiguous");
    FUZZ_CHECK(rec.type != 0, "type 0 is never returned");
    const auto* payload = reinterpret_cast<const uint8_t*>(rec.payload.data());
    FUZZ_CHECK(payload == file.data() + rec.offset + wal::kHeaderSize, "payload follows the header");
    FUZZ_CHECK(rec.offset + wal::kHeaderSize + rec.payload.size() <= file.size(), "record inside the file");
    expected_offset = rec.offset + wal::kHeaderSize + rec.payload.size();
    const std::string origin = "fuzz.log at offset " + std::to_string(rec.offset);
    Status s = wal::DecodeRecord(rec.type, rec.payload, origin, &decoded);
    if (!s.ok()) {
      FUZZ_CHECK(s.IsCorruption(), s.ToString());
      FUZZ_CHECK(s.message().rfind(origin + ": ", 0) == 0, s.message());
      continue;
    }
    const uint8_t* end = payload + rec.payload.size();
    if (decoded.type == wal::RecordType::kRowArray) {
      const wal::RowArray& a = decoded.array;
      FUZZ_CHECK(a.rows > 0 && a.dim > 0, "a row array has rows");
      FUZZ_CHECK(a.vectors + size_t{a.rows} * a.dim * 4 == end, "the rows end the payload");
      Touch(a.ids, size_t{a.rows} * 8);
      Touch(a.vectors, size_t{a.rows} * a.dim * 4);
      continue;
    }
    for (const auto& op : decoded.ops) {
      Touch(op.key.data(), op.key.size());
      Touch(op.bytes.data(), op.bytes.size());
      if (op.kind == wal::OpKind::kPutVector || op.kind == wal::OpKind::kPutRow) {
        const auto* v = static_cast<const uint8_t*>(op.vector);
        FUZZ_CHECK(v >= payload && v + size_t{op.dim} * 4 <= end, "vector inside the payload");
        Touch(v, size_t{op.dim} * 4);
      }
      if (op.kind <= wal::OpKind::kDeleteKey) FUZZ_CHECK(wal::BadInternalKey(op.key) == nullptr, "keys are valid");
    }
    FUZZ_CHECK(wal::EncodeWriteBatch(decoded.ops.data(), decoded.ops.size()) == rec.payload,
               "decode then encode gives the payload");
    ReplayCommit(rec, decoded.ops, origin);
  }
  FUZZ_CHECK(reader.good_end() == expected_offset, "good_end is the end of the last record");
  if (reader.status().ok() && !reader.dropped_torn_tail()) {
    FUZZ_CHECK(reader.good_end() == file.size(), "a clean end consumes the file");
  }
  if (!reader.status().ok()) {
    FUZZ_CHECK(reader.status().IsCorruption(), reader.status().ToString());
    FUZZ_CHECK(reader.status().message().rfind("fuzz.log at offset ", 0) == 0, reader.status().message());
  }
  return 0;
}
