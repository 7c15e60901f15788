// The names of the files of a database directory (docs/ENGINE.md 3.1).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "util/env.h"

namespace pomai::engine::files {

// The manifests of format version 1, which this version refuses by name
// (CheckNotOldFormat in engine/version_set.h): the u64-id engine's and the
// keyspace engine's.
constexpr char kVersion1ManifestName[] = "MANIFEST";
constexpr char kVersion1KeyspaceManifestName[] = "KVMANIFEST";

enum class FileType {
  kLock,      // "LOCK": flock(LOCK_EX) while open
  kCurrent,   // "CURRENT": "MANIFEST-NNNNNN\n", the live manifest log
  kManifest,  // "MANIFEST-NNNNNN": the version edit log
  kLog,       // "wal-NNNNNN.log": a WAL file
  kSegment,   // "seg-NNNNNN.pseg": a segment file
  kTemp,      // "<one of the above>.tmp": being written, removed at open
};

// The name (not the path) of a file: numbers are written with at least 6
// digits ("MANIFEST-000007", "wal-000007.log", "seg-000007.pseg"), more when
// they need them. `number` is ignored for kLock and kCurrent. kTemp names the
// temporary of segment `number` ("seg-000007.pseg.tmp"), the only numbered
// file written through a temporary (WriteFileDurably); the temporary of any
// other file is TempFileName(its name).
std::string FileName(FileType type, uint64_t number);

// name + ".tmp": what WriteFileAtomically and WriteFileDurably write first.
std::string TempFileName(std::string_view name);

// Parses a name written by FileName or TempFileName: true with *type and
// *number set (0 for kLock and kCurrent; for kTemp the number of the file it
// is the temporary of). Strict: only the exact form FileName writes is
// accepted, so a number has 6 digits, or more without a leading zero, and
// fits in a u64; any other name (the version-1 "MANIFEST", "KVMANIFEST",
// "wal-7.log", "seg-000007.pseg.tmp.tmp", ...) returns false and leaves the
// outputs unchanged.
bool ParseFileName(std::string_view name, FileType* type, uint64_t* number);

// Recovery's removal of the files of `names` (the listing of `dir`) that no
// version needs: every *.tmp (an interrupted write), segments not in
// `live_segments`, WALs numbered below `log_number`, and manifest logs other
// than `manifest_number` (0: none is removed). Best effort: a failed removal
// is retried by the next open.
void RemoveObsoleteFiles(Env* env, const std::string& dir, const std::vector<std::string>& names,
                         const std::set<uint64_t>& live_segments, uint64_t log_number, uint64_t manifest_number);

}  // namespace pomai::engine::files
