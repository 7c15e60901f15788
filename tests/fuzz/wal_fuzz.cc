// libFuzzer target: the WAL reader (lib/wal/log_reader) and the record codec
// (lib/wal/record_codec) over arbitrary bytes.
//
// Input: byte 0 bit 0 set: before reading, the CRCs of every record whose
// length fits the file are made right (so mutated payloads reach the
// decoders); the other bits are ignored. The rest is a WAL file. Checks the reader's contract: records lie inside the
// file, in order, with the offsets and lengths it claims; a clean end (no torn
// tail, OK) consumes the whole file; an error is Corruption naming the file.
// Every record is decoded: a write batch that decodes encodes back to the same
// bytes, and every field a decoded op or row array points at lies inside the
// payload; a record that does not decode is Corruption naming the record. A
// write batch of key ops (an alopex commit) is also turned into the engine's
// writes (engine::WritesOf; a batch with row ops is Corruption naming the
// record), which encode back to the payload (engine::EncodeCommit) and, replayed
// into a memtable::KeyTable as recovery does, read back: the last write of
// each key, at the record's seq, with its kind, bytes and vector. A row batch
// that decodes holds columns that pass CheckAttrColumns and encodes back to
// the payload; its rows are put into a memtable::RowTable (one per file, of
// the first batch's dim, as recovery would) and read back: the last row of
// each id with its vector, metadata and every column (filter::AppendRow over
// RowTable::Column), null in the table's other columns; a column whose type
// conflicts with the table's is INVALID_ARGUMENT and stores nothing.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/collection.h"
#include "filter/column_source.h"
#include "fuzz_util.h"
#include "memtable/key_table.h"
#include "memtable/row_table.h"
#include "util/attributes.h"
#include "util/coding.h"
#include "util/crc32c.h"
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
// Whether row ra of a and row rb of b hold the same value (or both null).
bool SameRow(const AttrColumn& a, size_t ra, const AttrColumn& b, size_t rb) {
  if (a.type != b.type || a.has_value(ra) != b.has_value(rb)) return false;
  if (!a.has_value(ra)) return true;
  switch (a.type) {
    case AttrType::kInt64: return a.ints[ra] == b.ints[rb];
    case AttrType::kFloat64: return std::memcmp(&a.floats[ra], &b.floats[rb], 8) == 0;
    case AttrType::kBool: return a.bools[ra] == b.bools[rb];
    case AttrType::kString: return a.str(ra) == b.str(rb);
    case AttrType::kTags:
      if (a.tag_count(ra) != b.tag_count(rb)) return false;
      for (size_t i = 0; i < a.tag_count(ra); ++i)
        if (a.tag(ra, i) != b.tag(rb, i)) return false;
      return true;
  }
  return false;
}

// A decoded row batch: inside the payload, checked, encodes back; then put
// into `*table` (made at the first batch) and read back.
void CheckRowBatch(const wal::Record& rec, const wal::RowBatch& b, std::unique_ptr<memtable::RowTable>* table) {
  const auto* payload = reinterpret_cast<const uint8_t*>(rec.payload.data());
  const uint8_t* end = payload + rec.payload.size();
  FUZZ_CHECK(b.rows > 0 && b.dim > 0, "a row batch has rows");
  FUZZ_CHECK(b.ids >= payload + wal::kRowBatchHeadSize && b.vectors == b.ids + size_t{b.rows} * 8 &&
                 b.vectors + size_t{b.rows} * b.dim * 4 <= end,
             "ids and vectors inside the payload");
  Touch(b.vectors, size_t{b.rows} * b.dim * 4);
  if (b.has_metadata) {
    FUZZ_CHECK(b.meta_offsets.size() == size_t{b.rows} + 1 && b.meta_offsets.back() == b.meta_blob.size(),
               "metadata offsets cover the blob");
    const auto* blob = reinterpret_cast<const uint8_t*>(b.meta_blob.data());
    FUZZ_CHECK(blob >= payload && blob + b.meta_blob.size() <= end, "metadata inside the payload");
    Touch(blob, b.meta_blob.size());
  } else {
    FUZZ_CHECK(b.meta_offsets.empty() && b.meta_blob.empty(), "no metadata");
  }
  FUZZ_CHECK(CheckAttrColumns(b.columns, b.rows).ok(), "decoded columns check");
  FUZZ_CHECK(wal::EncodeRowBatch(b.cid, b.dim, b.rows, b.ids, b.vectors,
                                 b.has_metadata ? b.meta_offsets.data() : nullptr, b.meta_blob, b.columns) == rec.payload,
             "decode then encode gives the payload");
  FUZZ_CHECK(wal::RowBatchSize(b.dim, b.rows, b.has_metadata, b.meta_blob.size(), b.columns) == rec.payload.size(),
             "RowBatchSize is the payload size");

  if (*table == nullptr) *table = std::make_unique<memtable::RowTable>(b.dim);
  memtable::RowTable& t = **table;
  // Recovery refuses another dim and seqs that do not increase; the bound keeps the table small.
  if (t.dim() != b.dim || rec.seq < t.max_seq() || t.rows() + b.rows > 100000) return;
  const size_t first = t.rows();
  const auto before = t.columns();
  Status s = t.PutBatch(rec.seq, b.ids, reinterpret_cast<const float*>(b.vectors), b.rows,
                        b.has_metadata ? b.meta_offsets.data() : nullptr, b.meta_blob, b.columns);
  if (!s.ok()) {
    FUZZ_CHECK(s.IsInvalidArgument() && s.message().find("the batch gives it as") != std::string::npos, s.ToString());
    FUZZ_CHECK(t.rows() == first && t.columns() == before, "a refused batch stores nothing");
    return;
  }
  FUZZ_CHECK(t.rows() == first + b.rows, "one table row per batch row");
  const auto columns = t.columns();
  for (uint32_t j = 0; j < b.rows; ++j) {
    const uint64_t id = DecodeFixed64(b.ids + size_t{j} * 8);
    bool last = true;
    for (uint32_t k = j + 1; k < b.rows && last; ++k) last = DecodeFixed64(b.ids + size_t{k} * 8) != id;
    size_t row = 0;
    FUZZ_CHECK(t.FindAt(id, rec.seq, &row) == memtable::RowTable::State::kLive, "a put row is live");
    FUZZ_CHECK((row == first + j) == last, "the last row of an id wins");
    FUZZ_CHECK(std::memcmp(t.vector(first + j), b.vectors + size_t{j} * b.dim * 4, size_t{b.dim} * 4) == 0,
               "vector stored");
    if (b.has_metadata)
      FUZZ_CHECK(t.metadata(first + j) ==
                     b.meta_blob.substr(b.meta_offsets[j], b.meta_offsets[j + 1] - b.meta_offsets[j]),
                 "metadata stored");
  }
  for (const auto& [name, type] : columns) {
    filter::ColumnRef ref;
    bool present = false;
    FUZZ_CHECK(t.Column(name, &ref, &present).ok() && present && ref.type == type, "a listed column is present");
    AttrColumn got = AttrColumn::Make(name, type);
    for (uint32_t j = 0; j < b.rows; ++j) filter::AppendRow(ref, true, first + j, &got);
    FUZZ_CHECK(CheckAttrColumns({got}, b.rows).ok(), "the table's rows check");
    const AttrColumn* want = nullptr;
    for (const AttrColumn& c : b.columns)
      if (c.name == name) want = &c;
    for (uint32_t j = 0; j < b.rows; ++j)
      FUZZ_CHECK(want != nullptr ? SameRow(got, j, *want, j) : !got.has_value(j), "column '" + name + "' read back");
  }
  const memtable::RowTable::Sorted sorted = t.SortedContents();
  FUZZ_CHECK(sorted.columns.size() == columns.size() && CheckAttrColumns(sorted.columns, sorted.ids.size()).ok(),
             "SortedContents' columns check");
}

// Sets the payload and header CRCs of each record from offset 0 on, while
// a whole header and its payload fit.
void FixCrcs(uint8_t* p, size_t size) {
  size_t at = 0;
  while (size - at >= wal::kHeaderSize) {
    uint8_t* h = p + at;
    const uint32_t len = DecodeFixed32(h);
    if (len > size - at - wal::kHeaderSize) return;
    EncodeFixed32(h + 16, crc32c::Value(h + wal::kHeaderSize, len));
    EncodeFixed32(h + 20, crc32c::Value(h, 20));
    at += wal::kHeaderSize + len;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  fuzz::AlignedBytes file(data + 1, size - 1);
  if (data[0] & 1) FixCrcs(file.data(), file.size());
  wal::Reader reader(file.data(), file.size(), "fuzz.log");
  wal::Record rec;
  wal::DecodedRecord decoded;
  std::unique_ptr<memtable::RowTable> rows;
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
    if (decoded.type == wal::RecordType::kRowBatch) {
      CheckRowBatch(rec, decoded.batch, &rows);
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
