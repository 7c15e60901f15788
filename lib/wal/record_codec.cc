#include "wal/record_codec.h"

#include <algorithm>
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
    case OpKind::kPutVector: return 1 + 4 + op.key.size() + 2 + 4 + op.bytes.size() + 4 + size_t{op.dim} * 4;
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
      *p++ = op.has_metadata ? 1 : 0;
      p = PutString(p, op.bytes);
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
        uint8_t has_meta = 0;
        if (!d.GetU8(&op.metric) || !d.GetU8(&has_meta) || !in.String(&op.bytes)) return in.Bad("truncated vector record");
        if (op.metric > 2 || has_meta > 1) return in.Bad("bad metric or metadata flag");
        op.has_metadata = has_meta != 0;
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

Status DecodeRecord(uint8_t type, std::string_view payload, const std::string& origin, DecodedRecord* out) {
  switch (type) {
    case static_cast<uint8_t>(RecordType::kWriteBatch):
      out->type = RecordType::kWriteBatch;
      return DecodeWriteBatch(payload, origin, &out->ops);
    case static_cast<uint8_t>(RecordType::kRowArray):
      out->type = RecordType::kRowArray;
      out->ops.clear();
      return DecodeRowArray(payload, origin, &out->array);
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

}  // namespace pomai::wal
