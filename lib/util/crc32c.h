// CRC32C (Castagnoli), as used by iSCSI, ext4 and LevelDB. Uses the SSE4.2
// crc32 instruction when the CPU has it (checked once at run time), a
// slicing-by-8 table otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pomai::crc32c {

// CRC32C of data[0, n) continuing from `init_crc` (the CRC of what came before).
uint32_t Extend(uint32_t init_crc, const void* data, size_t n);

inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

// Whether the hardware path is in use.
bool HardwareAccelerated();

// Extend through the portable table-driven path whatever the CPU, for tests
// that pin the hardware path (three interleaved streams) against it.
uint32_t ExtendPortableForTesting(uint32_t init_crc, const void* data, size_t n);

}  // namespace pomai::crc32c
