// pomai-inspect: look inside a pomai database without opening it for
// writing. The command line only: the commands are lib/inspect (also linked
// into libpomai_c.so for pomai_verify). Commands, JSON keys and exit status
// are documented in docs/FORMAT.md ("pomai-inspect").
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "inspect/inspect.h"
#include "render_text.h"
#include "util/env.h"
#include "util/version.h"

namespace {

// The options, as bits of a command's set of accepted options.
enum Option : unsigned {
  kJson = 1u << 0,
  kLimit = 1u << 1,
  kPrefix = 1u << 2,
  kKind = 1u << 3,
  kGroup = 1u << 4,
};

struct OptionDoc {
  Option bit;
  const char* name;
  const char* help;
};

constexpr OptionDoc kOptions[] = {
    {kJson, "--json", "one JSON object on stdout instead of text"},
    {kLimit, "--limit N", "at most N rows, entries or WAL operations (default 10, 0 = all)"},
    {kPrefix, "--prefix K", "vector components shown (default 4)"},
    {kKind, "--kind KIND", "treat FILE as a segment, wal or manifest (log) (default: by name, then by magic)"},
    {kGroup, "--group G", "graph: the vector group G of a segment (default: the first with a graph)"},
};

// One command: how it is called, what it shows, which options it takes,
// whether its path is a directory, a file, or either, and what runs it.
struct Command {
  const char* name;  // "summary" is the DIR form, which has no command word
  const char* synopsis;
  const char* what;
  unsigned options;
  bool takes_dir;
  bool takes_file;
  pomai::inspect::Report (*run)(const std::string& path, const pomai::inspect::InspectOptions& opt);
};

constexpr Command kCommands[] = {
    {"summary", "pomai-inspect [--json] DIR",
     "The database in directory DIR: its CURRENT and manifest log, every segment and WAL file with\n"
     "its counts, orphans (files the manifest does not need), missing files, and the live keys,\n"
     "index entries and rows a reader of the database sees, from the segments the manifest names,\n"
     "with the WAL records that recovery replays applied on top. A directory of format version 1\n"
     "(a MANIFEST or KVMANIFEST file) is refused, naming that file and its version.",
     kJson, true, false, pomai::inspect::InspectDir},
    {"segment", "pomai-inspect [--json] segment FILE",
     "A segment file's header, section table (with each section's checksum checked), footer, its\n"
     "entries by namespace and kind, and its vector groups with their graphs.",
     kJson, false, true, pomai::inspect::InspectSegment},
    {"verify", "pomai-inspect [--json] verify [--kind KIND] DIR|FILE",
     "Every checksum and invariant of a database directory, or of one file; exit 0 only when all\n"
     "pass. A torn WAL tail in a directory is a note, not a failure.",
     kJson | kKind, true, true, pomai::inspect::Verify},
    {"dump", "pomai-inspect [--json] dump [--limit N] [--prefix K] [--kind KIND] FILE",
     "The entries, u64 rows and row tombstones of a segment, the records of a WAL file (row ops or\n"
     "key writes), the edits of a manifest log, or the manifest log CURRENT names.",
     kJson | kLimit | kPrefix | kKind, false, true, pomai::inspect::Dump},
    {"graph", "pomai-inspect [--json] graph FILE [--group G]",
     "A segment's HNSW graph: header, levels, degrees, rows reachable on layer 0 from the entry\n"
     "point, and whether the graph's own Verify passes. A segment holds one graph per vector group\n"
     "that has one: --group G picks it (the segment command lists the groups).",
     kJson | kGroup, false, true, pomai::inspect::Graph},
};

constexpr char kExitStatus[] =
    "Exit status: 0 all good, 1 a problem was found (printed with file and byte offset), 2 bad usage.\n";

const Command* FindCommand(const std::string& name) {
  for (const Command& c : kCommands) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

std::string OptionLine(const OptionDoc& o) {
  return "  " + std::string(o.name) + std::string(17 - std::strlen(o.name), ' ') + o.help + "\n";
}

// The general usage: every synopsis, then every option.
std::string GeneralUsage() {
  std::string s;
  for (const Command& c : kCommands) s += std::string(s.empty() ? "usage: " : "       ") + c.synopsis + "\n";
  s += "       pomai-inspect help [summary|segment|verify|dump|graph]\n";
  s += "       pomai-inspect --version\n";
  s += "options (each command takes some of them; see pomai-inspect help COMMAND):\n";
  for (const OptionDoc& o : kOptions) s += OptionLine(o);
  s += "Files are opened read-only; the LOCK is never taken, so the database may be open elsewhere.\n";
  return s + kExitStatus;
}

// One command's usage: synopsis, what it shows, its options.
std::string CommandUsage(const Command& c) {
  std::string s = std::string("usage: ") + c.synopsis + "\n" + c.what + "\noptions:\n";
  for (const OptionDoc& o : kOptions) s += c.options & o.bit ? OptionLine(o) : "";
  return s + kExitStatus;
}

// A usage error: the reason and the usage (of `c`, else the general one) on
// stderr, nothing on stdout; exit status 2.
int Usage(const std::string& why, const Command* c = nullptr) {
  if (!why.empty()) std::fprintf(stderr, "pomai-inspect: %s\n", why.c_str());
  std::fputs((c ? CommandUsage(*c) : GeneralUsage()).c_str(), stderr);
  return 2;
}

int Print(const std::string& text) {
  std::fputs(text.c_str(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
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
  bool json = false, help = false, version = false;
  unsigned given = 0;  // the options on the command line, as Option bits
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      json = true;
      given |= kJson;
    } else if (a == "-h" || a == "--help") {
      help = true;
    } else if (a == "--version") {
      version = true;
    } else if (a == "--limit" || a == "--prefix") {
      const bool is_limit = a == "--limit";
      uint64_t n = 0;
      if (i + 1 >= argc || !ParseUint(argv[i + 1], is_limit ? UINT64_MAX : 65536, &n))
        return Usage(a + " needs a number" + (is_limit ? "" : " <= 65536") +
                     (i + 1 >= argc ? "" : ", got '" + std::string(argv[i + 1]) + "'"));
      ++i;
      if (is_limit) opt.limit = n, given |= kLimit;
      if (a == "--prefix") opt.prefix = static_cast<uint32_t>(n), given |= kPrefix;
    } else if (a == "--group") {
      uint64_t n = 0;
      if (i + 1 >= argc || !ParseUint(argv[i + 1], UINT32_MAX, &n))
        return Usage("--group needs a group number" + (i + 1 >= argc ? "" : ", got '" + std::string(argv[i + 1]) + "'"));
      ++i;
      opt.group = static_cast<uint32_t>(n);
      given |= kGroup;
    } else if (a == "--kind") {
      const char* v = i + 1 < argc ? argv[++i] : nullptr;
      if (v == nullptr || (std::strcmp(v, "segment") != 0 && std::strcmp(v, "wal") != 0 && std::strcmp(v, "manifest") != 0))
        return Usage("--kind needs segment, wal or manifest" + (v ? ", got '" + std::string(v) + "'" : std::string()));
      opt.kind = v;
      given |= kKind;
    } else if (a.size() > 1 && a[0] == '-') {
      return Usage("unknown option " + a);
    } else {
      args.push_back(a);
    }
  }

  // help COMMAND, COMMAND --help, --help, --version: usage or version on stdout.
  // A lone argument that exists is a directory, even one named like a command.
  const bool lone_path = args.size() == 1 && pomai::Env::Default()->FileExists(args[0]);
  if (!args.empty() && args[0] == "help" && !lone_path) {
    if (args.size() == 1) return Print(GeneralUsage());
    const Command* c = FindCommand(args[1]);
    if (c == nullptr) return Usage("help: unknown command '" + args[1] + "' (commands: summary, segment, verify, dump, graph)");
    if (args.size() > 2) return Usage("help takes one command", c);
    return Print(CommandUsage(*c));
  }
  const Command* named = args.empty() || lone_path ? nullptr : FindCommand(args[0]);
  if (named != nullptr && std::strcmp(named->name, "summary") == 0) named = nullptr;  // a DIR called "summary"
  const Command& cmd = named ? *named : kCommands[0];
  if (help) return Print(args.empty() ? GeneralUsage() : CommandUsage(cmd));
  if (version) return Print("pomai-inspect " POMAI_VERSION "\n");

  if (args.empty()) return Usage("");
  const size_t paths = args.size() - (named ? 1 : 0);
  if (named && paths == 0) return Usage(std::string(cmd.name) + " needs a path", &cmd);
  if (!named && args.size() > 1 && !pomai::Env::Default()->FileExists(args[0]))
    return Usage("unknown command '" + args[0] + "' (commands: segment, verify, dump, graph; a lone DIR is the summary)");
  if (paths > 1) {
    return Usage(std::string(named ? cmd.name : "the summary") + " takes one path, got " + std::to_string(paths) +
                     ": '" + args[args.size() - 1] + "' is one too many",
                 &cmd);
  }
  for (const OptionDoc& o : kOptions) {
    if ((given & o.bit) && !(cmd.options & o.bit)) {
      const std::string name(o.name, std::strcspn(o.name, " "));
      return Usage(std::string(named ? cmd.name : "the summary (pomai-inspect DIR)") + " does not take " + name, &cmd);
    }
  }
  const std::string& path = args.back();
  const bool is_dir = pomai::Env::Default()->ListDir(path).ok();
  if (is_dir && !cmd.takes_dir) {
    return Usage(std::string(cmd.name) + " takes a file, and " + path + " is a directory; a directory is taken by " +
                     "`pomai-inspect DIR` (the summary) and `pomai-inspect verify DIR`",
                 &cmd);
  }
  if (is_dir && (given & kKind)) return Usage("--kind applies to a file, and " + path + " is a directory", &cmd);
  if (!is_dir && !cmd.takes_file && pomai::Env::Default()->FileExists(path)) {
    return Usage(path + " is a file, not a database directory; a file is taken by segment, verify, dump and graph",
                 &cmd);
  }

  const Report report = cmd.run(path, opt);
  const std::string out = json ? report.json.Dump() + "\n" : RenderText(report.json);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return report.exit_code;
}
