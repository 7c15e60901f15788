// libFuzzer target: manifest decoding (lib/engine/manifest).
//
// Input: byte 0 bit 0 set = recompute the trailing CRC32C of the rest before
// decoding (so the fuzzer gets past the checksum); the rest is a MANIFEST.
// Checks: an error is Corruption naming the file; a manifest that decodes
// encodes back to exactly the same bytes, and its invariants hold.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/manifest.h"
#include "fuzz_util.h"
#include "util/coding.h"
#include "util/crc32c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pomai;
  if (size == 0) return 0;
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] & 1) && bytes.size() >= 4) {
    EncodeFixed32(reinterpret_cast<uint8_t*>(bytes.data()) + bytes.size() - 4,
                  crc32c::Value(bytes.data(), bytes.size() - 4));
  }
  auto m = engine::Manifest::Decode(bytes, "fuzz/MANIFEST");
  if (!m.ok()) {
    FUZZ_CHECK(m.status().IsCorruption(), m.status().ToString());
    FUZZ_CHECK(m.status().message().rfind("fuzz/MANIFEST", 0) == 0, m.status().message());
    return 0;
  }
  FUZZ_CHECK(m->dim > 0 && m->shards > 0 && m->shards <= 1024, "decoded bounds");
  FUZZ_CHECK(m->segments.size() == m->shards, "one segment list per shard");
  for (const auto& shard : m->segments) {
    for (const auto& e : shard) FUZZ_CHECK(e.file_number < m->next_file_number, "segment numbers below next");
  }
  FUZZ_CHECK(m->Encode() == bytes, "decode then encode gives the same bytes");
  return 0;
}
