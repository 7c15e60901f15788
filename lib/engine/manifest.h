// The manifest: the one small file that says what a database is made of.
//
// It names the live segment files of every shard and the oldest WAL file
// still needed (every WAL with a number >= log_number is replayed on open).
// It is replaced atomically (MANIFEST.tmp, fdatasync, rename, fsync dir), so
// a crash leaves either the old or the new one. Format: docs/FORMAT.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "simd/distance.h"
#include "util/env.h"
#include "util/status.h"

namespace pomai::engine {

constexpr char kManifestName[] = "MANIFEST";
constexpr uint32_t kManifestVersion = 1;

struct SegmentEntry {
  uint64_t file_number = 0;
  uint64_t rows = 0;
};

struct Manifest {
  uint32_t dim = 0;
  simd::Metric metric = simd::Metric::kL2;
  uint32_t shards = 0;
  uint64_t next_file_number = 1;
  uint64_t log_number = 0;  // WAL files numbered >= this are live
  uint64_t last_seq = 0;    // every sequence number <= this is in a segment
  // segments[s]: shard s's segments, oldest first.
  std::vector<std::vector<SegmentEntry>> segments;

  std::string Encode() const;
  // Decodes `data` read from `path` (named in errors); Corruption on any damage.
  static Result<Manifest> Decode(const std::string& data, const std::string& path);
};

Status WriteManifest(Env* env, const std::string& dir, const Manifest& m);
Result<Manifest> ReadManifest(Env* env, const std::string& dir);

}  // namespace pomai::engine
