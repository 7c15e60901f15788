#include "engine/batch.h"

#include <algorithm>

#include "simd/distance.h"
#include "util/coding.h"

namespace pomai::engine {

Status DecodeBatch(const uint8_t* p, size_t n, uint32_t dim, std::vector<DecodedOp>* ops, const std::string& origin) {
  Decoder d(p, n);
  uint32_t count = 0;
  if (!d.GetFixed32(&count)) return Status::Corruption(origin + ": batch record too short");
  ops->clear();
  ops->reserve(std::min<size_t>(count, n / 9));
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t kind = 0;
    DecodedOp op{};
    if (!d.GetU8(&kind) || !d.GetFixed64(&op.id)) return Status::Corruption(origin + ": truncated batch record");
    if (kind == static_cast<uint8_t>(WriteOp::Kind::kPut)) {
      uint32_t meta_len = 0;
      const uint8_t* meta = nullptr;
      if (!d.GetFixed32(&meta_len) || !d.GetBytes(meta_len, &meta) || !d.GetBytes(size_t{dim} * 4, &op.vector))
        return Status::Corruption(origin + ": truncated put in batch record");
      // No write makes a non-finite vector: such a record was not written by the engine.
      if (simd::FirstNonFinite(reinterpret_cast<const float*>(op.vector), dim) < dim)
        return Status::Corruption(origin + ": put of id " + std::to_string(op.id) +
                                  " in batch record has a non-finite vector component");
      op.kind = WriteOp::Kind::kPut;
      op.metadata = std::string_view(reinterpret_cast<const char*>(meta), meta_len);
    } else if (kind == static_cast<uint8_t>(WriteOp::Kind::kDelete)) {
      op.kind = WriteOp::Kind::kDelete;
    } else {
      return Status::Corruption(origin + ": unknown operation " + std::to_string(kind) + " in batch record");
    }
    ops->push_back(op);
  }
  if (d.remaining() != 0) return Status::Corruption(origin + ": trailing bytes in batch record");
  return Status::OK();
}

Status DecodeArray(const uint8_t* p, size_t size, uint32_t dim, uint32_t* n, const uint8_t** ids,
                   const uint8_t** vectors, const std::string& origin) {
  const uint64_t row_bytes = uint64_t{dim} * 4;
  const uint64_t rows = size >= 4 ? DecodeFixed32(p) : 0;
  if (size < 4 || size != 4 + rows * (8 + row_bytes))
    return Status::Corruption(origin + ": array batch record of " + std::to_string(size) +
                              " bytes does not hold whole rows of dim " + std::to_string(dim));
  if (const size_t k = simd::FirstNonFinite(reinterpret_cast<const float*>(p + 4 + rows * 8), rows * dim);
      k < rows * dim)
    return Status::Corruption(origin + ": array batch record row " + std::to_string(k / dim) +
                              " has a non-finite vector component");
  *n = static_cast<uint32_t>(rows);
  *ids = p + 4;
  *vectors = p + 4 + rows * 8;
  return Status::OK();
}

Status DecodeRecord(uint8_t type, const uint8_t* p, size_t n, uint32_t dim, std::vector<DecodedOp>* ops,
                    const std::string& origin) {
  if (type == kBatchRecord) return DecodeBatch(p, n, dim, ops, origin);
  if (type != kArrayRecord) return Status::Corruption(origin + ": unknown WAL record type " + std::to_string(type));
  uint32_t rows = 0;
  const uint8_t* ids = nullptr;
  const uint8_t* vectors = nullptr;
  POMAI_RETURN_IF_ERROR(DecodeArray(p, n, dim, &rows, &ids, &vectors, origin));
  ops->clear();
  ops->reserve(rows);
  for (uint32_t i = 0; i < rows; ++i)
    ops->push_back(DecodedOp{WriteOp::Kind::kPut, DecodeFixed64(ids + size_t{i} * 8), vectors + size_t{i} * dim * 4, {}});
  return Status::OK();
}

}  // namespace pomai::engine
