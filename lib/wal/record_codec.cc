#include "wal/record_codec.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "simd/distance.h"
#include "util/coding.h"
#include "util/limits.h"

namespace pomai::wal {

const char* BadInternalKey(std::string_view key) {
  if (key.empty()) return "empty";
  const std::string_view rest = key.substr(1);
  switch (static_cast<uint8_t>(key[0])) {
    case kUserNs:
      return rest.empty() || rest.size() > kMaxKeyLen ? "user key length not in 1..65535" : nullptr;
    case kIndexConfigNs:
      return rest.size() > kMaxCollectionNameLen || rest.find('\0') != std::string_view::npos
                 ? "index name length not in 0..255 or a NUL in it"
                 : nullptr;
    case kIndexEntryNs:  // BE64(cid) + user key
      return rest.size() < 9 || rest.size() - 8 > kMaxKeyLen ? "collection row key not BE64(cid) + 1..65535 bytes"
                                                             : nullptr;
    default:
      return "unknown key namespace";
  }
}

size_t EncodedSize(const RecordOp& op) {
  switch (op.kind) {
    case OpKind::kPutBytes: return 1 + 4 + op.key.size() + 4 + op.bytes.size();
    case OpKind::kPutVector:
      return 1 + 4 + op.key.size() + 2 + 4 + op.bytes.size() + (op.has_attrs ? 4 + op.attrs.size() : 0) + 4 +
             size_t{op.dim} * 4;
    case OpKind::kDeleteKey: return 1 + 4 + op.key.size();
    case OpKind::kPutRow: return 1 + 8 + 8 + 4 + 4 + op.bytes.size() + size_t{op.dim} * 4;
    case OpKind::kDeleteRow: return 1 + 8 + 8;
  }
  return 0;
}

namespace {
uint8_t* Put32(uint8_t* p, uint32_t v) {
  EncodeFixed32(p, v);
  return p + 4;
}
uint8_t* Put64(uint8_t* p, uint64_t v) {
  EncodeFixed64(p, v);
  return p + 8;
}
uint8_t* PutRaw(uint8_t* p, const void* src, size_t n) {
  if (n > 0) std::memcpy(p, src, n);
  return p + n;
}
uint8_t* PutString(uint8_t* p, std::string_view s) { return PutRaw(Put32(p, static_cast<uint32_t>(s.size())), s.data(), s.size()); }
}  // namespace

uint8_t* EncodeOp(const RecordOp& op, uint8_t* p) {
  *p++ = static_cast<uint8_t>(op.kind);
  switch (op.kind) {
    case OpKind::kPutBytes:
      return PutString(PutString(p, op.key), op.bytes);
    case OpKind::kPutVector:
      p = PutString(p, op.key);
      *p++ = op.metric;
      *p++ = static_cast<uint8_t>((op.has_metadata ? 1 : 0) | (op.has_attrs ? 2 : 0));
      p = PutString(p, op.bytes);
      if (op.has_attrs) p = PutString(p, op.attrs);
      return PutRaw(Put32(p, op.dim), op.vector, size_t{op.dim} * 4);
    case OpKind::kDeleteKey:
      return PutString(p, op.key);
    case OpKind::kPutRow:
      p = Put32(Put64(Put64(p, op.cid), op.id), op.dim);
      return PutRaw(PutString(p, op.bytes), op.vector, size_t{op.dim} * 4);
    case OpKind::kDeleteRow:
      return Put64(Put64(p, op.cid), op.id);
  }
  return p;
}

uint64_t WriteBatchSize(const RecordOp* ops, size_t n) {
  uint64_t size = 4;
  for (size_t i = 0; i < n; ++i) size += EncodedSize(ops[i]);
  return size;
}

std::string EncodeWriteBatch(const RecordOp* ops, size_t n) {
  // Raw stores into a buffer sized once: no per-field appends on the write path.
  std::string out(WriteBatchSize(ops, n), '\0');
  uint8_t* p = Put32(reinterpret_cast<uint8_t*>(out.data()), static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) p = EncodeOp(ops[i], p);
  return out;
}

namespace {

class OpDecoder {
 public:
  OpDecoder(std::string_view payload, const std::string& origin)
      : start_(reinterpret_cast<const uint8_t*>(payload.data())), d_(start_, payload.size()), origin_(origin) {}

  Status Bad(const std::string& what) const {
    return Status::Corruption(origin_ + ": write batch byte " + std::to_string(d_.pos() - start_) + ": " + what);
  }
  Decoder& d() { return d_; }

  bool String(std::string_view* out) {
    uint32_t len = 0;
    const uint8_t* p = nullptr;
    if (!d_.GetFixed32(&len) || !d_.GetBytes(len, &p)) return false;
    *out = std::string_view(reinterpret_cast<const char*>(p), len);
    return true;
  }
  // A dim (1..65535) and that many finite floats.
  Status Vector(RecordOp* op) {
    if (!d_.GetFixed32(&op->dim)) return Bad("truncated dim");
    if (op->dim == 0 || op->dim > kMaxDim) return Bad("dim " + std::to_string(op->dim) + " is not in 1..65535");
    return Floats(op);
  }
  Status Floats(RecordOp* op) {
    const uint8_t* data = nullptr;
    if (!d_.GetBytes(size_t{op->dim} * 4, &data)) return Bad("truncated vector");
    if (simd::FirstNonFinite(reinterpret_cast<const float*>(data), op->dim) < op->dim)
      return Bad("non-finite vector component (no write makes one)");
    op->vector = data;
    return Status::OK();
  }
  Status Key(RecordOp* op) {
    if (!String(&op->key)) return Bad("truncated key");
    if (const char* why = BadInternalKey(op->key))
      return Bad("key of " + std::to_string(op->key.size()) + " bytes: " + why);
    return Status::OK();
  }

 private:
  const uint8_t* start_;
  Decoder d_;
  const std::string& origin_;
};

}  // namespace

Status DecodeWriteBatch(std::string_view payload, const std::string& origin, std::vector<RecordOp>* ops) {
  OpDecoder in(payload, origin);
  Decoder& d = in.d();
  uint32_t count = 0;
  if (!d.GetFixed32(&count)) return in.Bad("truncated op count");
  if (count == 0) return in.Bad("no ops");
  ops->clear();
  // Every op takes at least 5 bytes: a damaged count cannot reserve much.
  ops->reserve(std::min<size_t>(count, d.remaining() / 5));
  for (uint32_t i = 0; i < count; ++i) {
    RecordOp op;
    uint8_t kind = 0;
    if (!d.GetU8(&kind)) return in.Bad("truncated op " + std::to_string(i));
    op.kind = static_cast<OpKind>(kind);
    switch (op.kind) {
      case OpKind::kPutBytes:
        POMAI_RETURN_IF_ERROR(in.Key(&op));
        if (static_cast<uint8_t>(op.key[0]) == kIndexEntryNs) return in.Bad("bytes value under an index entry key");
        if (!in.String(&op.bytes)) return in.Bad("truncated value");
        break;
      case OpKind::kPutVector: {
        POMAI_RETURN_IF_ERROR(in.Key(&op));
        if (static_cast<uint8_t>(op.key[0]) == kIndexConfigNs) return in.Bad("vector under an index configuration key");
        uint8_t flags = 0;
        if (!d.GetU8(&op.metric) || !d.GetU8(&flags) || !in.String(&op.bytes)) return in.Bad("truncated vector record");
        if (op.metric > 2 || flags > 3) return in.Bad("bad metric or flags");
        op.has_metadata = (flags & 1) != 0;
        op.has_attrs = (flags & 2) != 0;
        if (op.has_attrs) {
          if (static_cast<uint8_t>(op.key[0]) != kIndexEntryNs) return in.Bad("attributes on a vector outside an index");
          if (!in.String(&op.attrs)) return in.Bad("truncated attribute record");
          std::vector<AttrColumn> columns;
          if (Status s = DecodeAttrRecord(op.attrs, "op " + std::to_string(i), &columns); !s.ok())
            return in.Bad(s.message());
        }
        POMAI_RETURN_IF_ERROR(in.Vector(&op));
        break;
      }
      case OpKind::kDeleteKey:
        POMAI_RETURN_IF_ERROR(in.Key(&op));
        break;
      case OpKind::kPutRow:
        if (!d.GetFixed64(&op.cid) || !d.GetFixed64(&op.id)) return in.Bad("truncated row id");
        if (!d.GetFixed32(&op.dim)) return in.Bad("truncated dim");
        if (op.dim == 0 || op.dim > kMaxDim) return in.Bad("dim " + std::to_string(op.dim) + " is not in 1..65535");
        if (!in.String(&op.bytes)) return in.Bad("truncated metadata");
        POMAI_RETURN_IF_ERROR(in.Floats(&op));
        break;
      case OpKind::kDeleteRow:
        if (!d.GetFixed64(&op.cid) || !d.GetFixed64(&op.id)) return in.Bad("truncated row id");
        break;
      default:
        return in.Bad("unknown op " + std::to_string(kind));
    }
    ops->push_back(op);
  }
  if (d.remaining() != 0) return in.Bad("trailing bytes");
  return Status::OK();
}

void EncodeRowArrayHead(uint64_t cid, uint32_t dim, uint32_t rows, uint8_t out[kRowArrayHeadSize]) {
  Put32(Put32(Put64(out, cid), dim), rows);
}

Status DecodeRowArray(std::string_view payload, const std::string& origin, RowArray* out) {
  const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
  const size_t size = payload.size();
  if (size < kRowArrayHeadSize)
    return Status::Corruption(origin + ": row array of " + std::to_string(size) + " bytes is shorter than its head");
  RowArray a;
  a.cid = DecodeFixed64(p);
  a.dim = DecodeFixed32(p + 8);
  a.rows = DecodeFixed32(p + 12);
  if (a.dim == 0 || a.dim > kMaxDim)
    return Status::Corruption(origin + ": row array dim " + std::to_string(a.dim) + " is not in 1..65535");
  if (size != kRowArrayHeadSize + uint64_t{a.rows} * (8 + uint64_t{a.dim} * 4))
    return Status::Corruption(origin + ": row array of " + std::to_string(size) + " bytes does not hold " +
                              std::to_string(a.rows) + " rows of dim " + std::to_string(a.dim));
  if (a.rows == 0) return Status::Corruption(origin + ": row array without rows");
  a.ids = p + kRowArrayHeadSize;
  a.vectors = a.ids + size_t{a.rows} * 8;
  const size_t floats = size_t{a.rows} * a.dim;
  if (const size_t k = simd::FirstNonFinite(reinterpret_cast<const float*>(a.vectors), floats); k < floats)
    return Status::Corruption(origin + ": row array row " + std::to_string(k / a.dim) +
                              " has a non-finite vector component");
  *out = a;
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Row batches (type 18)

namespace {

uint8_t* Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  return p + 2;
}

// n values of 8 bytes (u64, i64 or f64) as little-endian, from memory.
template <class T>
uint8_t* Put64Array(uint8_t* p, const T* v, size_t n) {
  static_assert(sizeof(T) == 8);
  if constexpr (std::endian::native == std::endian::little) return PutRaw(p, v, n * 8);
  for (size_t i = 0; i < n; ++i) p = Put64(p, std::bit_cast<uint64_t>(v[i]));
  return p;
}
// n little-endian 8-byte values at p (any alignment) into out.
template <class T>
void Get64Array(const uint8_t* p, size_t n, T* out) {
  static_assert(sizeof(T) == 8);
  if constexpr (std::endian::native == std::endian::little) {
    if (n > 0) std::memcpy(out, p, n * 8);
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = std::bit_cast<T>(DecodeFixed64(p + i * 8));
  }
}

// Bytes of the values of a column (after its has_valid byte and validity).
uint64_t ColumnValuesSize(const AttrColumn& c) {
  switch (c.type) {
    case AttrType::kInt64: return uint64_t{c.ints.size()} * 8;
    case AttrType::kFloat64: return uint64_t{c.floats.size()} * 8;
    case AttrType::kBool: return c.bools.size();
    case AttrType::kString: return uint64_t{c.offsets.size()} * 8 + c.bytes.size();
    case AttrType::kTags: return (uint64_t{c.offsets.size()} + c.tag_offsets.size()) * 8 + c.bytes.size();
  }
  return 0;
}

uint64_t TailSize(uint64_t rows, bool has_metadata, uint64_t meta_bytes, const std::vector<AttrColumn>& columns) {
  uint64_t size = has_metadata ? (rows + 1) * 8 + meta_bytes : 0;
  for (const AttrColumn& c : columns) size += 2 + c.name.size() + 2 + c.valid.size() + ColumnValuesSize(c);
  return size;
}

// Writes the tail (metadata, columns) at p and returns its end.
uint8_t* PutTail(uint8_t* p, uint32_t rows, const uint64_t* meta_offsets, std::string_view meta_blob,
                 const std::vector<AttrColumn>& columns) {
  if (meta_offsets != nullptr) {
    p = Put64Array(p, meta_offsets, size_t{rows} + 1);
    p = PutRaw(p, meta_blob.data(), meta_blob.size());
  }
  for (const AttrColumn& c : columns) {
    p = PutRaw(Put16(p, static_cast<uint16_t>(c.name.size())), c.name.data(), c.name.size());
    *p++ = static_cast<uint8_t>(c.type);
    *p++ = c.valid.empty() ? 0 : 1;
    p = PutRaw(p, c.valid.data(), c.valid.size());
    switch (c.type) {
      case AttrType::kInt64: p = Put64Array(p, c.ints.data(), c.ints.size()); break;
      case AttrType::kFloat64: p = Put64Array(p, c.floats.data(), c.floats.size()); break;
      case AttrType::kBool: p = PutRaw(p, c.bools.data(), c.bools.size()); break;
      case AttrType::kString:
        p = Put64Array(p, c.offsets.data(), c.offsets.size());
        p = PutRaw(p, c.bytes.data(), c.bytes.size());
        break;
      case AttrType::kTags:
        p = Put64Array(p, c.offsets.data(), c.offsets.size());
        p = Put64Array(p, c.tag_offsets.data(), c.tag_offsets.size());
        p = PutRaw(p, c.bytes.data(), c.bytes.size());
        break;
    }
  }
  return p;
}

}  // namespace

uint64_t RowBatchSize(uint32_t dim, uint64_t rows, bool has_metadata, uint64_t meta_bytes,
                      const std::vector<AttrColumn>& columns) {
  return kRowBatchHeadSize + rows * (8 + uint64_t{dim} * 4) + TailSize(rows, has_metadata, meta_bytes, columns);
}

void EncodeRowBatchHead(uint64_t cid, uint32_t dim, uint32_t rows, size_t columns, bool has_metadata,
                        uint8_t out[kRowBatchHeadSize]) {
  uint8_t* p = Put16(Put32(Put32(Put64(out, cid), dim), rows), static_cast<uint16_t>(columns));
  *p++ = has_metadata ? 1 : 0;
  std::memset(p, 0, 5);
}

std::string EncodeRowBatchTail(uint32_t rows, const uint64_t* meta_offsets, std::string_view meta_blob,
                               const std::vector<AttrColumn>& columns) {
  std::string out(TailSize(rows, meta_offsets != nullptr, meta_blob.size(), columns), '\0');
  PutTail(reinterpret_cast<uint8_t*>(out.data()), rows, meta_offsets, meta_blob, columns);
  return out;
}

std::string EncodeRowBatch(uint64_t cid, uint32_t dim, uint32_t rows, const void* ids, const void* vectors,
                           const uint64_t* meta_offsets, std::string_view meta_blob,
                           const std::vector<AttrColumn>& columns) {
  std::string out(RowBatchSize(dim, rows, meta_offsets != nullptr, meta_blob.size(), columns), '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  EncodeRowBatchHead(cid, dim, rows, columns.size(), meta_offsets != nullptr, p);
  // ids and vectors are little-endian already (the caller's or a record's).
  p = PutRaw(p + kRowBatchHeadSize, ids, size_t{rows} * 8);
  p = PutRaw(p, vectors, size_t{rows} * dim * 4);
  PutTail(p, rows, meta_offsets, meta_blob, columns);
  return out;
}

namespace {

class RowBatchDecoder {
 public:
  // `kind` names what the payload is in errors ("row batch", "attribute record").
  RowBatchDecoder(std::string_view payload, const std::string& origin, const char* kind = "row batch")
      : start_(reinterpret_cast<const uint8_t*>(payload.data())), d_(start_, payload.size()), origin_(origin),
        kind_(kind) {}

  // Corruption naming byte `at` of the payload.
  Status BadAt(const uint8_t* at, const std::string& what) const {
    return Status::Corruption(origin_ + ": " + kind_ + " byte " + std::to_string(at - start_) + ": " + what);
  }
  Status Bad(const std::string& what) const { return BadAt(d_.pos(), what); }

  Status Decode(RowBatch* b) {
    const uint8_t* head = nullptr;
    if (!d_.GetBytes(kRowBatchHeadSize, &head))
      return Bad("payload of " + std::to_string(d_.remaining()) + " bytes is shorter than the 24-byte head");
    b->cid = DecodeFixed64(head);
    b->dim = DecodeFixed32(head + 8);
    b->rows = DecodeFixed32(head + 12);
    const uint16_t columns = static_cast<uint16_t>(head[16] | head[17] << 8);
    const uint8_t flags = head[18];
    if (b->dim == 0 || b->dim > kMaxDim) return BadAt(head + 8, "dim " + std::to_string(b->dim) + " is not in 1..65535");
    if (b->rows == 0) return BadAt(head + 12, "no rows");
    if (columns > kMaxAttrColumns)
      return BadAt(head + 16, std::to_string(columns) + " columns (at most " + std::to_string(kMaxAttrColumns) + ")");
    if ((flags & ~1u) != 0) return BadAt(head + 18, "unknown flags " + std::to_string(flags));
    for (int i = 19; i < 24; ++i)
      if (head[i] != 0) return BadAt(head + i, "reserved byte is " + std::to_string(head[i]) + ", not 0");
    b->has_metadata = (flags & 1) != 0;

    const size_t n = b->rows;
    if (!d_.GetBytes(n * 8, &b->ids)) return Bad("truncated ids");
    const size_t floats = n * b->dim;
    if (!d_.GetBytes(floats * 4, &b->vectors)) return Bad("truncated vectors");
    if (const size_t k = simd::FirstNonFinite(reinterpret_cast<const float*>(b->vectors), floats); k < floats)
      return BadAt(b->vectors + k * 4, "row " + std::to_string(k / b->dim) + " has a non-finite vector component");

    b->meta_offsets.clear();
    b->meta_blob = {};
    if (b->has_metadata) {
      const uint8_t* at = d_.pos();
      POMAI_RETURN_IF_ERROR(Offsets(n, "metadata", &b->meta_offsets));
      const uint8_t* blob = nullptr;
      if (!d_.GetBytes(b->meta_offsets[n], &blob))
        return BadAt(at + n * 8, "metadata offsets end at " + std::to_string(b->meta_offsets[n]) + ", past the payload");
      b->meta_blob = std::string_view(reinterpret_cast<const char*>(blob), b->meta_offsets[n]);
    }

    b->columns.clear();
    b->columns.reserve(columns);
    for (size_t i = 0; i < columns; ++i) {
      const uint8_t* at = d_.pos();
      std::vector<AttrColumn> one(1);
      POMAI_RETURN_IF_ERROR(Column(i, n, &one[0]));
      // The rules every batch keeps (UTF-8, null slots, NaN, bytes 0 or 1).
      if (Status s = CheckAttrColumns(one, n); !s.ok()) return BadAt(at, s.message());
      for (const AttrColumn& earlier : b->columns)  // at most 256 columns
        if (earlier.name == one[0].name)
          return BadAt(at, "attribute column '" + Printable(one[0].name) + "' appears twice");
      b->columns.push_back(std::move(one[0]));
    }
    if (d_.remaining() != 0) return Bad(std::to_string(d_.remaining()) + " trailing bytes");
    return Status::OK();
  }

  Status DecodeAttrs(std::vector<AttrColumn>* out) {
    const uint8_t* p = nullptr;
    if (!d_.GetBytes(2, &p)) return Bad("truncated column count");
    const size_t columns = p[0] | size_t{p[1]} << 8;
    if (columns == 0 || columns > kMaxAttrColumns)
      return BadAt(p, std::to_string(columns) + " columns (1.." + std::to_string(kMaxAttrColumns) + ")");
    out->clear();
    out->reserve(columns);
    for (size_t i = 0; i < columns; ++i) {
      const uint8_t* at = d_.pos();
      std::vector<AttrColumn> one(1);
      POMAI_RETURN_IF_ERROR(Column(i, 1, &one[0]));
      if (Status s = CheckAttrColumns(one, 1); !s.ok()) return BadAt(at, s.message());
      if (!one[0].valid.empty()) return BadAt(at, "attribute column '" + Printable(one[0].name) + "' has validity");
      if (!out->empty() && !(out->back().name < one[0].name))
        return BadAt(at, "attribute column '" + Printable(one[0].name) + "' is not after '" +
                             Printable(out->back().name) + "'");
      out->push_back(std::move(one[0]));
    }
    if (d_.remaining() != 0) return Bad(std::to_string(d_.remaining()) + " trailing bytes");
    return Status::OK();
  }

 private:
  // count + 1 u64 offsets that start at 0 and never decrease. `count` is at
  // most 2^32 (rows) or checked against the payload size by the caller.
  Status Offsets(uint64_t count, const std::string& what, std::vector<uint64_t>* out) {
    const uint8_t* p = nullptr;
    if (count >= d_.remaining() / 8 || !d_.GetBytes((count + 1) * 8, &p)) return Bad("truncated " + what + " offsets");
    out->resize(count + 1);
    Get64Array(p, count + 1, out->data());
    if ((*out)[0] != 0) return BadAt(p, what + " offsets start at " + std::to_string((*out)[0]) + ", not 0");
    for (size_t i = 1; i <= count; ++i) {
      if ((*out)[i] < (*out)[i - 1])
        return BadAt(p + i * 8, what + " offset " + std::to_string(i) + " decreases (" + std::to_string((*out)[i - 1]) +
                                    " then " + std::to_string((*out)[i]) + ")");
    }
    return Status::OK();
  }

  // Bytes [0, size) to `out`, or Corruption saying `what` is truncated.
  Status Blob(uint64_t size, const std::string& what, std::string* out) {
    const uint8_t* p = nullptr;
    if (!d_.GetBytes(size, &p)) return Bad("truncated " + what + " bytes");
    out->assign(reinterpret_cast<const char*>(p), size);
    return Status::OK();
  }

  // The values of 8-byte type T, `n` of them.
  template <class T>
  Status Values(size_t n, const std::string& what, std::vector<T>* out) {
    const uint8_t* p = nullptr;
    if (!d_.GetBytes(n * 8, &p)) return Bad("truncated " + what + " values");
    out->resize(n);
    Get64Array(p, n, out->data());
    return Status::OK();
  }

  Status Column(size_t index, size_t n, AttrColumn* c) {
    const uint8_t* p = nullptr;
    if (!d_.GetBytes(2, &p)) return Bad("truncated column " + std::to_string(index));
    const size_t name_len = p[0] | size_t{p[1]} << 8;
    if (name_len == 0 || name_len > kMaxAttrNameLen)
      return BadAt(p, "column " + std::to_string(index) + " name length " + std::to_string(name_len) +
                          " is not in 1..255");
    if (!d_.GetBytes(name_len, &p)) return Bad("truncated column " + std::to_string(index) + " name");
    c->name.assign(reinterpret_cast<const char*>(p), name_len);
    const std::string col = "attribute column '" + Printable(c->name) + "'";
    uint8_t type = 0, has_valid = 0;
    if (!d_.GetU8(&type)) return Bad("truncated " + col);
    if (!IsAttrType(type)) return BadAt(d_.pos() - 1, col + " has unknown type " + std::to_string(type));
    c->type = static_cast<AttrType>(type);
    if (!d_.GetU8(&has_valid)) return Bad("truncated " + col);
    if (has_valid > 1) return BadAt(d_.pos() - 1, col + " has_valid is " + std::to_string(has_valid) + " (0 or 1)");
    if (has_valid) {
      if (!d_.GetBytes(n, &p)) return Bad("truncated " + col + " validity");
      c->valid.assign(p, p + n);
    }
    switch (c->type) {
      case AttrType::kInt64: return Values(n, col, &c->ints);
      case AttrType::kFloat64: return Values(n, col, &c->floats);
      case AttrType::kBool:
        if (!d_.GetBytes(n, &p)) return Bad("truncated " + col + " values");
        c->bools.assign(p, p + n);
        return Status::OK();
      case AttrType::kString:
        POMAI_RETURN_IF_ERROR(Offsets(n, col + " string", &c->offsets));
        return Blob(c->offsets[n], col, &c->bytes);
      case AttrType::kTags: {
        POMAI_RETURN_IF_ERROR(Offsets(n, col + " list", &c->offsets));
        POMAI_RETURN_IF_ERROR(Offsets(c->offsets[n], col + " tag", &c->tag_offsets));
        return Blob(c->tag_offsets.back(), col, &c->bytes);
      }
    }
    return Status::OK();
  }

  const uint8_t* start_;
  Decoder d_;
  const std::string& origin_;
  const char* kind_;
};

}  // namespace

std::string EncodeAttrRecord(const std::vector<AttrColumn>& columns) {
  std::string out(2 + TailSize(1, false, 0, columns), '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  PutTail(Put16(p, static_cast<uint16_t>(columns.size())), 1, nullptr, {}, columns);
  return out;
}

Status DecodeAttrRecord(std::string_view record, const std::string& origin, std::vector<AttrColumn>* out) {
  return RowBatchDecoder(record, origin, "attribute record").DecodeAttrs(out);
}

std::string_view AttrValue::Tag(size_t j) const {
  const uint64_t a = DecodeFixed64(tag_offsets + j * 8), b = DecodeFixed64(tag_offsets + (j + 1) * 8);
  return std::string_view(tag_bytes + a, b - a);
}

AttrRecordReader::AttrRecordReader(std::string_view record)
    : p_(reinterpret_cast<const uint8_t*>(record.data())), end_(p_ + record.size()) {
  if (record.size() < 2) {
    Fail("truncated column count");
  } else {
    left_ = p_[0] | size_t{p_[1]} << 8;
    p_ += 2;
  }
}

bool AttrRecordReader::Fail(const char* what) {
  status_ = Status::Corruption(std::string("attribute record: ") + what);
  left_ = 0;
  return false;
}

bool AttrRecordReader::Next(AttrValue* out) {
  if (left_ == 0) return p_ != end_ && status_.ok() ? Fail("trailing bytes") : false;
  --left_;
  auto have = [&](uint64_t n) { return static_cast<uint64_t>(end_ - p_) >= n; };
  if (!have(2)) return Fail("truncated name");
  const size_t name_len = p_[0] | size_t{p_[1]} << 8;
  if (!have(2 + name_len + 2)) return Fail("truncated column");
  out->name = std::string_view(reinterpret_cast<const char*>(p_ + 2), name_len);
  p_ += 2 + name_len;
  const uint8_t type = p_[0];
  if (!IsAttrType(type) || p_[1] != 0) return Fail("bad type or validity");
  out->type = static_cast<AttrType>(type);
  p_ += 2;
  switch (out->type) {
    case AttrType::kInt64:
    case AttrType::kFloat64: {
      if (!have(8)) return Fail("truncated value");
      const uint64_t v = DecodeFixed64(p_);
      out->i = static_cast<int64_t>(v);
      out->f = std::bit_cast<double>(v);
      p_ += 8;
      return true;
    }
    case AttrType::kBool:
      if (!have(1) || p_[0] > 1) return Fail("bad bool");
      out->b = p_[0] != 0;
      p_ += 1;
      return true;
    case AttrType::kString: {
      if (!have(16) || DecodeFixed64(p_) != 0) return Fail("bad string offsets");
      const uint64_t len = DecodeFixed64(p_ + 8);
      if (!have(16 + len)) return Fail("truncated string");
      out->str = std::string_view(reinterpret_cast<const char*>(p_ + 16), len);
      p_ += 16 + len;
      return true;
    }
    case AttrType::kTags: {
      if (!have(16) || DecodeFixed64(p_) != 0) return Fail("bad tag list offsets");
      const uint64_t n = DecodeFixed64(p_ + 8);
      if (n >= static_cast<uint64_t>(end_ - p_) / 8 || !have(16 + (n + 1) * 8)) return Fail("truncated tag offsets");
      const uint8_t* offs = p_ + 16;
      if (DecodeFixed64(offs) != 0) return Fail("bad tag offsets");
      for (uint64_t j = 1; j <= n; ++j)
        if (DecodeFixed64(offs + j * 8) < DecodeFixed64(offs + (j - 1) * 8)) return Fail("bad tag offsets");
      const uint64_t bytes = DecodeFixed64(offs + n * 8);
      const uint8_t* blob = offs + (n + 1) * 8;
      if (static_cast<uint64_t>(end_ - blob) < bytes) return Fail("truncated tags");
      out->tags = n;
      out->tag_offsets = offs;
      out->tag_bytes = reinterpret_cast<const char*>(blob);
      p_ = blob + bytes;
      return true;
    }
  }
  return Fail("bad type");
}

Status DecodeRowBatch(std::string_view payload, const std::string& origin, RowBatch* out) {
  return RowBatchDecoder(payload, origin).Decode(out);
}

// ---------------------------------------------------------------------------

Status DecodeRecord(uint8_t type, std::string_view payload, const std::string& origin, DecodedRecord* out) {
  if (type != static_cast<uint8_t>(RecordType::kWriteBatch)) out->ops.clear();
  if (type != static_cast<uint8_t>(RecordType::kRowBatch)) {
    out->batch.columns.clear();
    out->batch.meta_offsets.clear();
  }
  switch (type) {
    case static_cast<uint8_t>(RecordType::kWriteBatch):
      out->type = RecordType::kWriteBatch;
      return DecodeWriteBatch(payload, origin, &out->ops);
    case static_cast<uint8_t>(RecordType::kRowArray):
      out->type = RecordType::kRowArray;
      return DecodeRowArray(payload, origin, &out->array);
    case static_cast<uint8_t>(RecordType::kRowBatch):
      out->type = RecordType::kRowBatch;
      return DecodeRowBatch(payload, origin, &out->batch);
    case 1:
    case 2:
    case 0x4B:
      return Status::Corruption(origin + ": WAL record type " + std::to_string(type) + " is of database format version 1");
    default:
      return Status::Corruption(origin + ": unknown WAL record type " + std::to_string(type));
  }
}

const char* OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kPutBytes: return "put bytes";
    case OpKind::kPutVector: return "put vector";
    case OpKind::kDeleteKey: return "delete key";
    case OpKind::kPutRow: return "put row";
    case OpKind::kDeleteRow: return "delete row";
  }
  return "unknown";
}

const char* RecordTypeName(RecordType type) {
  switch (type) {
    case RecordType::kWriteBatch: return "write batch";
    case RecordType::kRowArray: return "row array";
    case RecordType::kRowBatch: return "row batch";
    case RecordType::kVersionEdit: return "version edit";
  }
  return "unknown";
}

}  // namespace pomai::wal
