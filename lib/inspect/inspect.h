// The checks and reports of pomai-inspect: read-only views of a database
// directory and of its files (docs/FORMAT.md, "pomai-inspect"). Every command
// builds one JSON report through the engine's own readers (SegmentFile,
// HnswGraph, wal::Reader, VersionSet, wal::DecodeRecord); nothing is opened
// for writing and the LOCK file is never touched, so a database may be open
// in another process. Linked by the tool (tools/) and by libpomai_c.so,
// whose pomai_verify runs Verify on the directory of an open database.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "inspect/json.h"

namespace pomai::inspect {

struct InspectOptions {
  uint64_t limit = 10;       // dump: rows (segment) or operations (WAL) to show; 0 = all
  uint32_t prefix = 4;       // dump: vector components to show
  std::string kind;          // "", "segment", "wal" or "manifest" (a manifest log): overrides detection
  std::optional<uint32_t> group;  // graph: the vector group of a segment (default: the first with a graph)
};

// A command's result: the report and the process exit status (0 fine, 1 a
// problem was found or a file could not be read).
struct Report {
  Json json = Json::Object();
  int exit_code = 0;
};

// The commands (docs/FORMAT.md, "pomai-inspect", lists what each one checks
// and every JSON key). A path that cannot be read, a damaged file or a failed
// check is in the report (ok false, exit 1), never a crash. Thread-safe: each
// call reads the files anew and shares nothing.
//
// The summary of a database directory (CURRENT, its manifest log, segments,
// WAL files, orphans, live counts); a directory of format version 1 is
// refused naming its manifest. A failed pass is retried as Verify's is.
Report InspectDir(const std::string& dir, const InspectOptions& opt);
// A segment file's header, section table, footer, entries and vector groups.
Report InspectSegment(const std::string& file, const InspectOptions& opt);
// Every check of a database directory or of one file. A database open
// elsewhere may replace its manifest and delete files meanwhile: a failed
// pass over a directory whose manifest changed is run again (5 passes at most).
Report Verify(const std::string& path, const InspectOptions& opt);
// verify's report for a database that has no files to check (an in-memory
// database): ok, nothing checked, `why` as its one note.
Report VerifyWithoutFiles(const std::string& path, const std::string& why);
// Rows, records or fields of one file.
Report Dump(const std::string& file, const InspectOptions& opt);
// The HNSW graph of one vector group of a segment (opt.group): levels,
// degrees, reachability, Verify.
Report Graph(const std::string& file, const InspectOptions& opt);

}  // namespace pomai::inspect
