// The payload of a WAL batch record (docs/FORMAT.md, "WAL batch records"):
// one record per put_batch/delete call, so a batch is recovered whole or not
// at all. Shared by recovery (db.cc) and tools/pomai-inspect.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/db.h"
#include "util/status.h"

namespace pomai::engine {

// The WAL record type of a batch.
constexpr uint8_t kBatchRecord = 1;

// One decoded operation of a batch record; pointers into the payload.
struct DecodedOp {
  WriteOp::Kind kind;
  uint64_t id;
  const uint8_t* vector;  // dim * 4 bytes (little-endian f32), maybe unaligned; null for a delete
  std::string_view metadata;
};

// Decodes the batch record payload p[0, n) of a database of `dim`
// dimensions into *ops (pointing into p). Corruption prefixed with `origin`
// (the file and offset of the record) when it is truncated, has an unknown
// operation or trailing bytes.
Status DecodeBatch(const uint8_t* p, size_t n, uint32_t dim, std::vector<DecodedOp>* ops, const std::string& origin);

// The WAL record type of a put_array batch: a row count, the ids (u64 LE),
// then the row-major float32 matrix, no metadata (docs/FORMAT.md).
constexpr uint8_t kArrayRecord = 2;

// Checks that the array record payload p[0, size) holds whole rows of `dim`
// and points *ids and *vectors into it (*n rows). Corruption prefixed with
// `origin` otherwise.
Status DecodeArray(const uint8_t* p, size_t size, uint32_t dim, uint32_t* n, const uint8_t** ids,
                   const uint8_t** vectors, const std::string& origin);

// Decodes a WAL record of either type into *ops (a put per array row, with
// empty metadata). Corruption for another type or a bad payload.
Status DecodeRecord(uint8_t type, const uint8_t* p, size_t n, uint32_t dim, std::vector<DecodedOp>* ops,
                    const std::string& origin);

}  // namespace pomai::engine
