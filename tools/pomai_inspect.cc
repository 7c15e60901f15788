// pomai-inspect: look inside a pomai database without opening it for
// writing. Usage below; commands, JSON keys and exit status are documented
// in docs/FORMAT.md ("pomai-inspect").
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "inspect/inspect.h"
#include "render_text.h"
#include "util/env.h"

namespace {

constexpr char kUsage[] =
    "usage: pomai-inspect [--json] DIR                  manifest, segments, WAL files, orphans\n"
    "       pomai-inspect [--json] segment FILE         a segment's header, section table, footer\n"
    "       pomai-inspect [--json] verify DIR|FILE      every checksum and invariant (exit 0 only if all pass)\n"
    "       pomai-inspect [--json] dump FILE [--limit N] [--prefix K] [--dim D]\n"
    "                                                   rows of a segment, records of a WAL, a manifest\n"
    "       pomai-inspect [--json] graph FILE           a segment's HNSW graph: levels, degrees, reachability\n"
    "options:\n"
    "  --json           one JSON object on stdout instead of text\n"
    "  --limit N        dump: at most N rows or WAL operations (default 10, 0 = all)\n"
    "  --prefix K       dump: vector components shown (default 4)\n"
    "  --dim D          dump/verify of a lone WAL file: the database's dim (default: the MANIFEST beside it)\n"
    "  --kind KIND      treat FILE as a segment, wal or manifest (default: by name, then by magic;\n"
    "                   keyspace files by the segment marker, the KVMANIFEST beside a WAL or its first record)\n"
    "A keyspace database (KVMANIFEST, pomai_db_open_ex/alopex) and its files (KV segments, commit-record WALs,\n"
    "KVMANIFEST, idx-*.pgraph index graph files) are recognised too: DIR, segment, verify and dump work on them.\n"
    "Files are opened read-only; the LOCK is never taken, so the database may be open elsewhere.\n"
    "Exit status: 0 all good, 1 a problem was found (printed with file and byte offset), 2 bad usage.\n";

int Usage(const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "pomai-inspect: %s\n", why.c_str());
  std::fputs(kUsage, stderr);
  return 2;
}

bool ParseUint(const char* s, uint64_t max, uint64_t* out) {
  if (*s == '\0') return false;
  uint64_t v = 0;
  for (const char* p = s; *p; ++p) {
    if (*p < '0' || *p > '9') return false;
    const uint64_t d = static_cast<uint64_t>(*p - '0');
    if (v > (max - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pomai::inspect;
  InspectOptions opt;
  bool json = false;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)name;
      return argv[++i];
    };
    if (a == "--json") {
      json = true;
    } else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--limit" || a == "--prefix" || a == "--dim") {
      const char* v = value(a.c_str());
      uint64_t n = 0;
      const uint64_t max = a == "--limit" ? UINT64_MAX : 65536;
      if (v == nullptr || !ParseUint(v, max, &n)) return Usage(a + " needs a number" + (a == "--limit" ? "" : " <= 65536"));
      if (a == "--limit") opt.limit = n;
      if (a == "--prefix") opt.prefix = static_cast<uint32_t>(n);
      if (a == "--dim") opt.dim = static_cast<uint32_t>(n);
    } else if (a == "--kind") {
      const char* v = value("--kind");
      if (v == nullptr || (std::strcmp(v, "segment") != 0 && std::strcmp(v, "wal") != 0 && std::strcmp(v, "manifest") != 0))
        return Usage("--kind needs segment, wal or manifest");
      opt.kind = v;
    } else if (a.size() > 1 && a[0] == '-') {
      return Usage("unknown option " + a);
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) return Usage("");

  Report report;
  const std::string& cmd = args[0];
  const bool is_command = cmd == "segment" || cmd == "verify" || cmd == "dump" || cmd == "graph";
  if (args.size() == 1 && is_command && !pomai::Env::Default()->FileExists(cmd)) {
    return Usage(cmd + " needs a path");
  } else if (args.size() == 1) {
    // A lone argument is a directory (even one named like a command, if it exists).
    report = InspectDir(args[0], opt);
  } else if (!is_command) {
    return Usage("unknown command " + cmd);
  } else if (args.size() != 2) {
    return Usage(cmd + " takes one path");
  } else if (cmd == "segment") {
    report = InspectSegment(args[1], opt);
  } else if (cmd == "verify") {
    report = Verify(args[1], opt);
  } else if (cmd == "dump") {
    report = Dump(args[1], opt);
  } else {
    report = Graph(args[1], opt);
  }
  const std::string out = json ? report.json.Dump() + "\n" : RenderText(report.json);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return report.exit_code;
}
