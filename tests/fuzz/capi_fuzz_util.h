// Helpers shared by the C ABI call-sequence targets (capi_fuzz, txn_capi_fuzz, faces_fuzz).
#pragma once

#include <unistd.h>

#include <string>

#include "fuzz_util.h"
#include "pomai/pomai.h"

namespace pomai::fuzz {

// This process's scratch database directory, on tmpfs when there is one:
// /dev/shm (or /tmp)/pomai-<name>-<pid>.
inline const std::string& ScratchDir(const char* name) {
  static const std::string dir = [name] {
    const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(base) + "/pomai-" + name + "-" + std::to_string(getpid());
  }();
  return dir;
}

// A string's bytes as the C ABI takes them.
inline const uint8_t* Bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Frees a status after checking it is well formed; returns its code.
inline int Take(pomai_status_t* s) {
  const int code = pomai_status_code(s);
  FUZZ_CHECK(code >= 0 && code <= 13, "status code " + std::to_string(code));
  FUZZ_CHECK(pomai_status_message(s) != nullptr, "status message");
  FUZZ_CHECK((s == nullptr) == (code == 0), "NULL status means OK");
  pomai_status_free(s);
  return code;
}

}  // namespace pomai::fuzz
