#include "engine/filename.h"

#include <cstdio>

namespace pomai::engine::files {

namespace {

constexpr std::string_view kManifestPrefix = "MANIFEST-";
constexpr std::string_view kLogPrefix = "wal-";
constexpr std::string_view kLogSuffix = ".log";
constexpr std::string_view kSegmentPrefix = "seg-";
constexpr std::string_view kSegmentSuffix = ".pseg";
constexpr std::string_view kTempSuffix = ".tmp";

std::string Number(uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%06llu", static_cast<unsigned long long>(n));
  return buf;
}

// The digits of a number as FileName writes them: 6, or more without a leading zero.
bool ParseNumber(std::string_view s, uint64_t* out) {
  if (s.size() < 6 || s.size() > 20) return false;
  if (s.size() > 6 && s[0] == '0') return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool Between(std::string_view name, std::string_view prefix, std::string_view suffix, uint64_t* number) {
  if (name.size() < prefix.size() + suffix.size()) return false;
  if (name.substr(0, prefix.size()) != prefix) return false;
  if (name.substr(name.size() - suffix.size()) != suffix) return false;
  return ParseNumber(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()), number);
}

// A name other than a temporary.
bool ParsePlain(std::string_view name, FileType* type, uint64_t* number) {
  uint64_t n = 0;
  if (name == "LOCK") {
    *type = FileType::kLock;
  } else if (name == "CURRENT") {
    *type = FileType::kCurrent;
  } else if (Between(name, kManifestPrefix, "", &n)) {
    *type = FileType::kManifest;
  } else if (Between(name, kLogPrefix, kLogSuffix, &n)) {
    *type = FileType::kLog;
  } else if (Between(name, kSegmentPrefix, kSegmentSuffix, &n)) {
    *type = FileType::kSegment;
  } else {
    return false;
  }
  *number = n;
  return true;
}

}  // namespace

std::string FileName(FileType type, uint64_t number) {
  switch (type) {
    case FileType::kLock:
      return "LOCK";
    case FileType::kCurrent:
      return "CURRENT";
    case FileType::kManifest:
      return std::string(kManifestPrefix) + Number(number);
    case FileType::kLog:
      return std::string(kLogPrefix) + Number(number) + std::string(kLogSuffix);
    case FileType::kSegment:
      return std::string(kSegmentPrefix) + Number(number) + std::string(kSegmentSuffix);
    case FileType::kTemp:
      return TempFileName(FileName(FileType::kSegment, number));
  }
  return std::string();
}

std::string TempFileName(std::string_view name) { return std::string(name) + std::string(kTempSuffix); }

bool ParseFileName(std::string_view name, FileType* type, uint64_t* number) {
  FileType t;
  uint64_t n = 0;
  if (name.size() > kTempSuffix.size() && name.substr(name.size() - kTempSuffix.size()) == kTempSuffix) {
    if (!ParsePlain(name.substr(0, name.size() - kTempSuffix.size()), &t, &n)) return false;
    t = FileType::kTemp;
  } else if (!ParsePlain(name, &t, &n)) {
    return false;
  }
  *type = t;
  *number = n;
  return true;
}

void RemoveObsoleteFiles(Env* env, const std::string& dir, const std::vector<std::string>& names,
                         const std::set<uint64_t>& live_segments, uint64_t log_number, uint64_t manifest_number) {
  for (const auto& name : names) {
    FileType type;
    uint64_t number;
    bool obsolete = name.size() > kTempSuffix.size() &&
                    name.compare(name.size() - kTempSuffix.size(), kTempSuffix.size(), kTempSuffix) == 0;
    if (ParseFileName(name, &type, &number)) {
      obsolete = obsolete || (type == FileType::kSegment && !live_segments.count(number)) ||
                 (type == FileType::kLog && number < log_number) ||
                 (type == FileType::kManifest && manifest_number != 0 && number != manifest_number);
    }
    if (obsolete) (void)env->RemoveFile(JoinPath(dir, name));
  }
}

}  // namespace pomai::engine::files
