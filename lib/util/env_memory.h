// An Env whose files live in process memory: what an in-memory keyspace
// database (engine/db.h) writes its segments and manifest to, so that it
// runs the same flush and merge code as a disk database without touching the
// file system.
//
// Contract: paths are plain strings (no directories: CreateDirIfMissing,
// SyncDir and LockFile always succeed, ListDir(dir) names the files whose
// path is dir + "/" + name). Sync is a no-op (nothing outlives the process).
// A mapping shares the file's bytes: a file removed, renamed over or
// rewritten while mapped keeps its old bytes for that mapping, so readers of
// a segment that a merge deletes are unaffected. Mappings are 64-byte
// aligned. Thread-safe: one mutex guards the file table; a WritableFile is
// used by one thread at a time, like every Env's.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "util/env.h"
#include "util/mutex.h"

namespace pomai {

class MemoryEnv : public Env {
 public:
  MemoryEnv();
  ~MemoryEnv() override;

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override;
  Result<std::unique_ptr<ReadableFile>> NewReadableFile(const std::string& path) override;
  Result<std::unique_ptr<MappedFile>> MapFile(const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status RemoveFile(const std::string& path) override;
  Status TruncateFile(const std::string& path, uint64_t size) override;
  Status CreateDirIfMissing(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& dir) override;
  Result<uint64_t> FileSize(const std::string& path) override;
  bool FileExists(const std::string& path) override;
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override;

  // Bytes held by the files (not by mappings of removed files).
  uint64_t BytesInFiles() const;

  struct Contents;  // a file's bytes (64-byte aligned), shared with its mappings

 private:
  class Writable;
  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<Contents>> files_ GUARDED_BY(mu_);
};

}  // namespace pomai
