// The limits of what a database holds, and one check per kind of value, so
// that every face, file reader and test names the same numbers (docs/ENGINE.md,
// section 2.6). A check's error is INVALID_ARGUMENT naming `what` and the
// value; readers of files turn a breach into Corruption themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace pomai {

constexpr uint32_t kMaxDim = 65535;                 // every vector, every collection
constexpr size_t kMaxKeyLen = 65535;                // user keys, bytes
constexpr size_t kMaxValueLen = size_t{1} << 30;    // values and metadata, bytes
constexpr size_t kMaxCollectionNameLen = 255;       // named collections (alopex indexes), bytes
constexpr uint32_t kMaxShards = 1024;

// "<what> dimension <dim> is not in 1..65535" unless 1 <= dim <= kMaxDim.
Status CheckDim(uint64_t dim, std::string_view what);
// "<what> is empty (keys are 1 to 65535 bytes)" or "<what> is N bytes (...)".
Status CheckKey(std::string_view key, std::string_view what);
// "<what> is N bytes, above the limit of 1073741824".
Status CheckValueSize(uint64_t bytes, std::string_view what);
// 1..255 bytes, no NUL; the message quotes the name (made printable).
Status CheckCollectionName(std::string_view name);
// "<what> is 0" or "<what> N is above 1024".
Status CheckShards(uint64_t shards, std::string_view what);

// A key or name for a message: printable ASCII as is, other bytes as \xNN,
// at most 200 bytes then "...".
std::string Printable(std::string_view bytes);

}  // namespace pomai
