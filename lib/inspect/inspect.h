// The checks and reports of pomai-inspect: read-only views of a database
// directory and of its files (docs/FORMAT.md, "pomai-inspect"). Every command
// builds one JSON report through the engine's own readers (Segment,
// HnswGraph, wal::Reader, Manifest::Decode, DecodeBatch); nothing is opened
// for writing and the LOCK file is never touched, so a database may be open
// in another process. Linked by the tool (tools/) and by libpomai_c.so,
// whose pomai_verify runs Verify on the directory of an open database.
#pragma once

#include <cstdint>
#include <string>

#include "inspect/json.h"

namespace pomai::inspect {

struct InspectOptions {
  uint64_t limit = 10;       // dump: rows (segment) or operations (WAL) to show; 0 = all
  uint32_t prefix = 4;       // dump: vector components to show
  uint32_t dim = 0;          // WAL decoding: 0 = from the MANIFEST beside the file
  std::string kind;          // "", "segment", "wal" or "manifest": overrides detection
};

// A command's result: the report and the process exit status (0 fine, 1 a
// problem was found or a file could not be read).
struct Report {
  Json json = Json::Object();
  int exit_code = 0;
};

Report InspectDir(const std::string& dir, const InspectOptions& opt);
Report InspectSegment(const std::string& file, const InspectOptions& opt);
Report Verify(const std::string& path, const InspectOptions& opt);
Report Dump(const std::string& file, const InspectOptions& opt);
Report Graph(const std::string& file, const InspectOptions& opt);

}  // namespace pomai::inspect
