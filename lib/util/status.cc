#include "util/status.h"

#include <cstring>

namespace pomai {

Status Status::FromErrno(const std::string& what, const std::string& path, int err) {
  std::string msg = what + " " + path + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return Status(Code::kResourceExhausted, msg);
  return Status(Code::kIOError, msg);
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  static const char* const kNames[] = {"OK",           "InvalidArgument",   "NotFound",         "AlreadyExists",
                                       "IOError",      "Corruption",        "ResourceExhausted", "DeadlineExceeded",
                                       "Internal",     "Unimplemented",     "PartialFailure",   "Conflict",
                                       "Closed",       "ReadOnly"};
  int c = static_cast<int>(code_);
  const char* name = (c >= 0 && c < static_cast<int>(sizeof(kNames) / sizeof(kNames[0]))) ? kNames[c] : "Unknown";
  return std::string(name) + ": " + msg_;
}

}  // namespace pomai
