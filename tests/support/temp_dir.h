// A fresh temporary directory for a test, removed (recursively) at destruction.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace pomai::testing {

class TempDir {
 public:
  TempDir() : TempDir(std::filesystem::temp_directory_path()) {}
  // In `base` (a directory), e.g. OnTmpfs().
  explicit TempDir(const std::filesystem::path& base) {
    std::string tmpl = (base / "pomai-test-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    path_ = p ? std::string(p) : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  // /dev/shm where it is a writable directory (tmpfs: an fsync costs nothing,
  // for tests that open a database thousands of times), else the usual temp
  // directory.
  static std::filesystem::path OnTmpfs() {
    std::error_code ec;
    return std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0
               ? std::filesystem::path("/dev/shm")
               : std::filesystem::temp_directory_path();
  }

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace pomai::testing
