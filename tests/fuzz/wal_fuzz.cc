// libFuzzer target: the WAL reader (lib/wal/log_reader) and the batch record
// decoder (lib/engine/batch) over arbitrary bytes.
//
// Input: byte 0 picks the database dim (1 + b % 16) for decoding batch
// payloads; the rest is a WAL file. Checks the reader's contract: records lie
// inside the file, in order, with the offsets and lengths it claims; a clean
// end (no torn tail, OK) consumes the whole file; an error is Corruption
// naming the file.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/batch.h"
#include "fuzz_util.h"
#include "wal/log_format.h"
#include "wal/log_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pomai;
  if (size == 0) return 0;
  const uint32_t dim = 1 + data[0] % 16;
  fuzz::AlignedBytes file(data + 1, size - 1);
  wal::Reader reader(file.data(), file.size(), "fuzz.log");
  wal::Record rec;
  std::vector<engine::DecodedOp> ops;
  uint64_t expected_offset = 0;
  while (reader.Next(&rec)) {
    FUZZ_CHECK(rec.offset == expected_offset, "records are contiguous");
    FUZZ_CHECK(rec.type != 0, "type 0 is never returned");
    const auto* payload = reinterpret_cast<const uint8_t*>(rec.payload.data());
    FUZZ_CHECK(payload == file.data() + rec.offset + wal::kHeaderSize, "payload follows the header");
    FUZZ_CHECK(rec.offset + wal::kHeaderSize + rec.payload.size() <= file.size(), "record inside the file");
    expected_offset = rec.offset + wal::kHeaderSize + rec.payload.size();
    Status s = engine::DecodeBatch(payload, rec.payload.size(), dim, &ops, "fuzz.log at offset 0");
    if (s.ok()) {
      for (const auto& op : ops) {
        if (op.kind == engine::WriteOp::Kind::kPut) {
          FUZZ_CHECK(op.vector >= payload && op.vector + size_t{dim} * 4 <= payload + rec.payload.size(),
                     "vector inside the payload");
          volatile uint8_t sink = op.vector[size_t{dim} * 4 - 1];  // touch: ASan checks the bounds
          (void)sink;
        }
        if (!op.metadata.empty()) {
          volatile char sink = op.metadata.back();
          (void)sink;
        }
      }
    } else {
      FUZZ_CHECK(s.IsCorruption(), s.ToString());
    }
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
