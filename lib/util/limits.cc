#include "util/limits.h"

#include <cstdio>

namespace pomai {

namespace {
std::string Str(std::string_view s) { return std::string(s); }
}  // namespace

Status CheckDim(uint64_t dim, std::string_view what) {
  if (dim == 0 || dim > kMaxDim)
    return Status::InvalidArgument(Str(what) + " dimension " + std::to_string(dim) + " is not in 1..65535");
  return Status::OK();
}

Status CheckKey(std::string_view key, std::string_view what) {
  if (key.empty()) return Status::InvalidArgument(Str(what) + " is empty (keys are 1 to 65535 bytes)");
  if (key.size() > kMaxKeyLen)
    return Status::InvalidArgument(Str(what) + " is " + std::to_string(key.size()) + " bytes (keys are 1 to 65535 bytes)");
  return Status::OK();
}

Status CheckValueSize(uint64_t bytes, std::string_view what) {
  if (bytes > kMaxValueLen)
    return Status::InvalidArgument(Str(what) + " is " + std::to_string(bytes) + " bytes (at most 1 GiB)");
  return Status::OK();
}

Status CheckCollectionName(std::string_view name) {
  if (name.empty() || name.size() > kMaxCollectionNameLen)
    return Status::InvalidArgument("index name '" + Printable(name) + "' is " + std::to_string(name.size()) +
                                   " bytes (index names are 1 to 255 bytes)");
  if (name.find('\0') != std::string_view::npos) return Status::InvalidArgument("index name contains a NUL byte");
  return Status::OK();
}

Status CheckShards(uint64_t shards, std::string_view what) {
  if (shards == 0) return Status::InvalidArgument(Str(what) + " is 0");
  if (shards > kMaxShards)
    return Status::InvalidArgument(Str(what) + " " + std::to_string(shards) + " is above 1024");
  return Status::OK();
}

std::string Printable(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes.substr(0, 200)) {
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  if (bytes.size() > 200) out += "...";
  return out;
}

}  // namespace pomai
