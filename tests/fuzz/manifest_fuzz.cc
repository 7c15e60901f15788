// libFuzzer target: the version set's manifest (lib/engine/version_edit,
// version_set).
//
// Input: byte 0 picks the mode, the rest is the file:
//  - bit 1 set: a version edit payload (VersionEdit::Decode). Checks: an
//    error is Corruption naming the origin; an edit that decodes encodes
//    back to exactly the same bytes.
//  - else (bit 2 set, or any other byte): a MANIFEST-000001 log (CURRENT naming it) opened by
//    VersionSet::Recover in a MemoryEnv. Checks: an error is Corruption
//    naming the manifest; a recovered version keeps the invariants (newest
//    first, disjoint intervals at or below last seq, numbers below next file
//    number) and recovers the same again.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/version_edit.h"
#include "engine/version_set.h"
#include "fuzz_util.h"
#include "util/env_memory.h"

namespace {

using namespace pomai;

void FuzzVersionEdit(const std::string& bytes) {
  engine::VersionEdit edit;
  Status s = engine::VersionEdit::Decode(bytes, "fuzz/MANIFEST-000001", &edit, 24);
  if (!s.ok()) {
    FUZZ_CHECK(s.IsCorruption(), s.ToString());
    FUZZ_CHECK(s.message().rfind("fuzz/MANIFEST-000001 at offset ", 0) == 0, s.message());
    return;
  }
  FUZZ_CHECK(edit.Encode() == bytes, "decode then encode gives the same bytes");
}

void FuzzManifestLog(const std::string& bytes) {
  MemoryEnv env;
  auto put = [&](const std::string& path, const std::string& b) {
    auto f = env.NewWritableFile(path);
    FUZZ_CHECK(f.ok() && (*f)->Append(b.data(), b.size()).ok(), "MemoryEnv write");
  };
  put("/db/CURRENT", "MANIFEST-000001\n");
  put("/db/MANIFEST-000001", bytes);
  auto r = engine::VersionSet::Recover(&env, "/db");
  if (!r.ok()) {
    FUZZ_CHECK(r.status().IsCorruption(), r.status().ToString());
    FUZZ_CHECK(r.status().message().rfind("/db/MANIFEST-000001 at offset ", 0) == 0, r.status().message());
    return;
  }
  auto v = (*r)->current();
  FUZZ_CHECK(v->next_file_number > 1, "the manifest's number is below next file number");
  for (size_t i = 0; i < v->segments.size(); ++i) {
    const auto& s = v->segments[i];
    FUZZ_CHECK(s.number < v->next_file_number, "segment numbers below next");
    FUZZ_CHECK(s.first_seq <= s.last_seq && s.last_seq <= v->last_seq, "intervals at or below last seq");
    if (i > 0) FUZZ_CHECK(s.last_seq < v->segments[i - 1].first_seq, "newest first, disjoint");
  }
  auto again = engine::VersionSet::Recover(&env, "/db");
  FUZZ_CHECK(again.ok() && *(*again)->current() == *v, "recovering twice gives the same version");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 2) FuzzVersionEdit(bytes);
  else FuzzManifestLog(bytes);
  return 0;
}
