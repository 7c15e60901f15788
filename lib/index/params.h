// The limits of HNSW build parameters, one check for every face: a pomaidb
// database's hnsw_m / hnsw_ef_construction (checked at open), an alopex
// named index's m / ef_construction (checked at create and when its stored
// configuration is read) and the graph builder itself.
#pragma once

#include <cstdint>
#include <string>

#include "util/status.h"

namespace pomai::index {

constexpr uint32_t kMinHnswM = 2;
constexpr uint32_t kMaxHnswM = 100;
// Past a few thousand, a larger candidate list buys no recall and costs
// build time linearly; the cap keeps one bad value from making every build
// (and so every search of a named index) run out of memory.
constexpr uint32_t kMaxEfConstruction = 4096;

// InvalidArgument naming the parameter (`m_name`, `ef_name`: how the caller's
// face spells them) and its value, or OK.
inline Status CheckHnswParams(uint32_t m, uint32_t ef_construction, const char* m_name = "m",
                              const char* ef_name = "ef_construction") {
  if (m < kMinHnswM || m > kMaxHnswM)
    return Status::InvalidArgument("invalid parameter " + std::string(m_name) + ": must be between 2 and 100 (got " +
                                   std::to_string(m) + ")");
  if (ef_construction < m)
    return Status::InvalidArgument("invalid parameter " + std::string(ef_name) + ": must be greater than or equal to " +
                                   m_name + " (" + m_name + "=" + std::to_string(m) + ", " + ef_name + "=" +
                                   std::to_string(ef_construction) + ")");
  if (ef_construction > kMaxEfConstruction)
    return Status::InvalidArgument("invalid parameter " + std::string(ef_name) + ": must be at most 4096 (got " +
                                   std::to_string(ef_construction) + ")");
  return Status::OK();
}

}  // namespace pomai::index
