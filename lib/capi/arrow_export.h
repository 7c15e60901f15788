// Internal to lib/capi: the default collection's scan batches as Arrow C Data
// Interface arrays and a C Stream Interface stream (pomai/arrow_c.h), for
// pomai_scan. No Arrow library: the structs are filled by hand, each node
// owning its buffers through a shared holder of the batch, released by the
// consumer as the specification says.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/db.h"
#include "pomai/arrow_c.h"
#include "util/status.h"

namespace pomai::capi {

// The columns of a scan's batches: "id" (uint64), "vector"
// (fixed_size_list<float32>[dim]) when `vectors`, "metadata" (large_binary)
// when `metadata`, then each attribute column (int64, float64, bool,
// large_utf8, large_list<large_utf8>; nullable).
struct ScanShape {
  uint32_t dim = 0;
  bool vectors = true;
  bool metadata = true;
  engine::AttrSchema columns;
};

// Fills *out with the struct schema of `shape`. Throws std::bad_alloc.
void ExportSchema(const ScanShape& shape, ArrowSchema* out);
// Moves `batch` (rows of `shape`) into *out, a struct array. Throws std::bad_alloc.
void ExportBatch(const ScanShape& shape, engine::ScanBatch&& batch, ArrowArray* out);

// Fills *out with a stream whose get_next calls `next` (a batch and whether
// the scan is done; an error status is the stream's error, and
// get_last_error says "pomai status <code>: <message>"). `next` runs on the consumer's thread and is destroyed
// when the stream is released.
using NextBatch = std::function<Status(engine::ScanBatch* batch, bool* done)>;
void ExportStream(ScanShape shape, NextBatch next, ArrowArrayStream* out);

}  // namespace pomai::capi
