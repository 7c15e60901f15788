// The payloads of WAL records (docs/FORMAT.md, "WAL records"): what a write
// batch or a row array holds, encoded by the engine's write paths and decoded
// by recovery, pomai-inspect and the fuzz targets through this one codec.
// Records are self-describing (every vector carries its dim), so nothing
// outside the record is needed to decode it.
//
//   type 16, write batch: u32 op count n (>= 1), then n ops, each a u8 kind:
//     1 put bytes:  u32 key length, internal key, u32 value length, value
//     2 put vector: u32 key length, internal key, u8 metric, u8 flags (bit 0:
//                   metadata, bit 1: attributes), u32 metadata length,
//                   metadata, [bit 1: u32 length, attribute record], u32 dim,
//                   dim x f32
//     3 delete key: u32 key length, internal key
//     4 put row:    u64 cid, u64 id, u32 dim, u32 metadata length, metadata, dim x f32
//     5 delete row: u64 cid, u64 id
//   type 17, row array: u64 cid, u32 dim, u32 row count n, n x u64 ids,
//     n x dim x f32 (row-major); exactly 16 + n * (8 + 4 * dim) bytes.
//   type 18, row batch: u64 cid, u32 dim, u32 row count n, u16 column count
//     c, u8 flags (bit 0: metadata), 5 zero bytes; n x u64 ids, n x dim x f32;
//     with metadata (n + 1) x u64 offsets and the blob; then c attribute
//     columns (name, type, validity, values: docs/FORMAT.md has the table).
//
// Decoding refuses anything no write makes (Corruption naming the record and
// the byte): an unknown op, a malformed internal key (BadInternalKey), dim
// outside 1..65535, metric > 2, unknown flag bits, an attribute record that
// DecodeAttrRecord refuses, a non-finite float, a short
// field, trailing bytes. Within a record a later op on the same key wins.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/attributes.h"
#include "util/status.h"

namespace pomai::wal {

// kVersionEdit is the type of every manifest record (engine/version_edit.h),
// never of a WAL file's.
enum class RecordType : uint8_t { kWriteBatch = 16, kRowArray = 17, kRowBatch = 18, kVersionEdit = 32 };

enum class OpKind : uint8_t { kPutBytes = 1, kPutVector = 2, kDeleteKey = 3, kPutRow = 4, kDeleteRow = 5 };

// The namespaces of internal keys (the first byte): user keys as 0x00 + key,
// collection configurations as 0x01 + name, rows of byte-keyed collections
// (named-index entries) as 0x02 + BE64(cid) + key (engine/collection.h). User
// input never reaches another namespace.
constexpr uint8_t kUserNs = 0x00;
constexpr uint8_t kIndexConfigNs = 0x01;
constexpr uint8_t kIndexEntryNs = 0x02;

// Why `key` is no internal key a write can make (user keys 1..65535 bytes,
// names 0..255 bytes without NUL, a row key 8 bytes of cid and 1..65535 bytes
// of key), or null.
const char* BadInternalKey(std::string_view key);

// One op of a write batch. Decoded ops point into the payload; ops to encode
// point into the caller's data. Fields a kind does not use are ignored.
struct RecordOp {
  OpKind kind = OpKind::kDeleteKey;
  std::string_view key;        // put bytes, put vector, delete key: the internal key
  std::string_view bytes;      // put bytes: the value; put vector, put row: the metadata
  uint8_t metric = 0;          // put vector
  bool has_metadata = false;   // put vector (a put row's metadata is never "absent")
  bool has_attrs = false;      // put vector: `attrs` is an attribute record
  std::string_view attrs;      // put vector: EncodeAttrRecord's bytes
  uint64_t cid = 0;            // put row, delete row
  uint64_t id = 0;             // put row, delete row
  uint32_t dim = 0;            // put vector, put row
  const void* vector = nullptr;  // dim little-endian f32 (maybe unaligned when decoded)
};

// Bytes of `op` in a write batch.
size_t EncodedSize(const RecordOp& op);
// Writes `op` at `out` (EncodedSize(op) bytes) and returns the end.
uint8_t* EncodeOp(const RecordOp& op, uint8_t* out);
// A write batch payload of ops[0, n): the count, then every op.
std::string EncodeWriteBatch(const RecordOp* ops, size_t n);
// The payload size of such a batch, to check against kMaxPayload first.
uint64_t WriteBatchSize(const RecordOp* ops, size_t n);

// Decodes a write batch payload into *ops. `origin` names the record
// ("<file> at offset N") in errors.
Status DecodeWriteBatch(std::string_view payload, const std::string& origin, std::vector<RecordOp>* ops);

// An attribute record (docs/FORMAT.md, "Attribute records"): the typed
// attributes of one named-index entry. u16 column count c (1..256), then c
// columns encoded as a row batch's columns are for one row, without
// validity (has_valid 0: an attribute the entry lacks is left out), names
// strictly ascending. `columns` are one row each, non-null, passed
// CheckAttrColumns, and are sorted by name by the caller.
std::string EncodeAttrRecord(const std::vector<AttrColumn>& columns);
// Decodes a record into one-row columns; anything EncodeAttrRecord does not
// make is Corruption "<origin>: attribute record byte B: what".
Status DecodeAttrRecord(std::string_view record, const std::string& origin, std::vector<AttrColumn>* out);

// A fast reader of an attribute record already checked once (at the write,
// the WAL's decode, a segment's CRC): bounds-checked field by field, so a
// damaged record is Corruption and never an out-of-bounds read, but names
// and strings are not checked again (DecodeAttrRecord does that). Views
// point into the record.
struct AttrValue {
  std::string_view name;
  AttrType type = AttrType::kInt64;
  int64_t i = 0;          // kInt64
  double f = 0;           // kFloat64
  bool b = false;         // kBool
  std::string_view str;   // kString
  size_t tags = 0;        // kTags: the count; Tag(j) reads one
  const uint8_t* tag_offsets = nullptr;
  const char* tag_bytes = nullptr;
  std::string_view Tag(size_t j) const;
};
class AttrRecordReader {
 public:
  explicit AttrRecordReader(std::string_view record);
  // The next attribute, in name order; false at the end or on damage
  // (status() then says which).
  bool Next(AttrValue* out);
  const Status& status() const { return status_; }

 private:
  bool Fail(const char* what);
  const uint8_t* p_;
  const uint8_t* end_;
  size_t left_ = 0;
  Status status_;
};

// A row array's head, then its two arrays (little-endian, maybe unaligned).
constexpr size_t kRowArrayHeadSize = 16;
void EncodeRowArrayHead(uint64_t cid, uint32_t dim, uint32_t rows, uint8_t out[kRowArrayHeadSize]);
struct RowArray {
  uint64_t cid = 0;
  uint32_t dim = 0;
  uint32_t rows = 0;
  const uint8_t* ids = nullptr;      // rows x u64
  const uint8_t* vectors = nullptr;  // rows x dim x f32
};
Status DecodeRowArray(std::string_view payload, const std::string& origin, RowArray* out);

// A row batch's head: 24 bytes, then ids, vectors, metadata and columns.
constexpr size_t kRowBatchHeadSize = 24;

// The payload size of a row batch of `rows` rows of `dim` with metadata of
// `meta_bytes` bytes (when has_metadata) and `columns`, to check against
// kMaxPayload before encoding.
uint64_t RowBatchSize(uint32_t dim, uint64_t rows, bool has_metadata, uint64_t meta_bytes,
                      const std::vector<AttrColumn>& columns);
// The payload of a row batch: ids (rows little-endian u64) and vectors (rows x
// dim little-endian f32, row-major), both any alignment; metadata when
// `meta_offsets` is not null (rows + 1 offsets into meta_blob, the first 0,
// non-decreasing, the last meta_blob.size()); `columns` of `rows` rows each.
// The caller checked what it passes: dim in 1..65535, 1..2^32-1 rows, finite
// vectors, CheckAttrColumns(columns, rows) OK; what it did not check decodes
// as Corruption.
std::string EncodeRowBatch(uint64_t cid, uint32_t dim, uint32_t rows, const void* ids, const void* vectors,
                           const uint64_t* meta_offsets, std::string_view meta_blob,
                           const std::vector<AttrColumn>& columns);
// The same payload in three pieces, for a writev that does not copy the
// caller's arrays: the head, then ids and vectors as they are, then the tail
// (metadata and columns). EncodeRowBatch is head + ids + vectors + tail.
void EncodeRowBatchHead(uint64_t cid, uint32_t dim, uint32_t rows, size_t columns, bool has_metadata,
                        uint8_t out[kRowBatchHeadSize]);
std::string EncodeRowBatchTail(uint32_t rows, const uint64_t* meta_offsets, std::string_view meta_blob,
                               const std::vector<AttrColumn>& columns);

// A decoded row batch: ids and vectors point into the payload (little-endian,
// maybe unaligned), so it lives no longer than the payload; metadata offsets
// and columns are copies.
struct RowBatch {
  uint64_t cid = 0;
  uint32_t dim = 0;
  uint32_t rows = 0;
  const uint8_t* ids = nullptr;      // rows x u64
  const uint8_t* vectors = nullptr;  // rows x dim x f32
  bool has_metadata = false;
  std::vector<uint64_t> meta_offsets;  // rows + 1 when has_metadata, else empty
  std::string_view meta_blob;          // into the payload
  std::vector<AttrColumn> columns;     // each passed CheckAttrColumns for `rows` rows
};
// Decodes a row batch. Anything no write makes is Corruption "<origin>: row
// batch byte B: what", B the offset of the bad field within the payload: a
// short payload, dim outside 1..65535, no rows, more than kMaxAttrColumns
// columns, unknown flag bits, nonzero reserved bytes, a non-finite vector
// component, metadata offsets not starting at 0 or decreasing, a column
// breaking a rule of CheckAttrColumns (at the column's first byte), a name
// twice, trailing bytes. On error *out holds no meaning.
Status DecodeRowBatch(std::string_view payload, const std::string& origin, RowBatch* out);

// A decoded record of any type: ops for a write batch, array for a row array,
// batch for a row batch (the others cleared).
struct DecodedRecord {
  RecordType type = RecordType::kWriteBatch;
  std::vector<RecordOp> ops;
  RowArray array;
  RowBatch batch;
};
// Decodes a record of `type`. A type of database format version 1 (1, 2 or
// 0x4B) or any other unknown type is Corruption saying so.
Status DecodeRecord(uint8_t type, std::string_view payload, const std::string& origin, DecodedRecord* out);

// "put bytes", "put vector", ... for reports.
const char* OpKindName(OpKind kind);
// "write batch", "row array", "row batch" for reports; "unknown" otherwise.
const char* RecordTypeName(RecordType type);

}  // namespace pomai::wal
