// Env: every file-system operation the engine performs goes through this
// seam, so tests can count fsyncs and inject faults (see FaultInjectionEnv in
// tests/support). Env::Default() is the POSIX implementation; it is
// thread-safe. File objects are not: one thread at a time per object.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace pomai {

// An append-only file. Data reaches the OS on Append; Sync makes it durable.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(const void* data, size_t n) = 0;
  // Appends pieces[0..n) back to back, as one write where the platform can
  // (writev): nothing is copied first. The default appends them one by one.
  virtual Status AppendV(const std::string_view* pieces, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      Status s = Append(pieces[i].data(), pieces[i].size());
      if (!s.ok()) return s;
    }
    return Status::OK();
  }
  // fdatasync: everything appended so far is durable when this returns OK.
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
  virtual uint64_t Size() const = 0;
  virtual const std::string& path() const = 0;
};

// A file read with pread.
class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to n bytes at `offset` into `buf`; *read is the count (short at EOF).
  virtual Status Read(uint64_t offset, size_t n, void* buf, size_t* read) const = 0;
  virtual uint64_t Size() const = 0;
  virtual const std::string& path() const = 0;
};

// A read-only mapping of a whole file. Unmapped on destruction.
class MappedFile {
 public:
  virtual ~MappedFile() = default;
  virtual const uint8_t* data() const = 0;
  virtual size_t size() const = 0;
  virtual const std::string& path() const = 0;
};

// An exclusive, advisory, process-level lock on a file; released on destruction.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;
  // The process-wide POSIX Env; never destroyed.
  static Env* Default();

  // Creates (or truncates) `path` for appending.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Opens an existing file for appending at its end (created if missing).
  virtual Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) = 0;
  virtual Result<std::unique_ptr<ReadableFile>> NewReadableFile(const std::string& path) = 0;
  // Maps `path` read-only. An empty file maps to data() == nullptr, size() == 0.
  virtual Result<std::unique_ptr<MappedFile>> MapFile(const std::string& path) = 0;

  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  virtual Status TruncateFile(const std::string& path, uint64_t size) = 0;
  // Creates `path` and any missing parents (mkdir -p).
  virtual Status CreateDirIfMissing(const std::string& path) = 0;
  // fsyncs the directory, making creations, renames and removals in it durable.
  virtual Status SyncDir(const std::string& path) = 0;
  // Names (not paths) of the entries of `dir`, without "." and "..".
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  virtual Result<uint64_t> FileSize(const std::string& path) = 0;
  virtual bool FileExists(const std::string& path) = 0;
  // Takes an exclusive lock on `path` (created if missing) without waiting:
  // IOError "... is locked by another process" when someone else holds it.
  virtual Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) = 0;
};

// Forwards everything to a target Env; subclass to override a few calls.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* target) : target_(target) {}
  Env* target() const { return target_; }
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& p) override { return target_->NewWritableFile(p); }
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& p) override { return target_->NewAppendableFile(p); }
  Result<std::unique_ptr<ReadableFile>> NewReadableFile(const std::string& p) override { return target_->NewReadableFile(p); }
  Result<std::unique_ptr<MappedFile>> MapFile(const std::string& p) override { return target_->MapFile(p); }
  Status RenameFile(const std::string& f, const std::string& t) override { return target_->RenameFile(f, t); }
  Status RemoveFile(const std::string& p) override { return target_->RemoveFile(p); }
  Status TruncateFile(const std::string& p, uint64_t s) override { return target_->TruncateFile(p, s); }
  Status CreateDirIfMissing(const std::string& p) override { return target_->CreateDirIfMissing(p); }
  Status SyncDir(const std::string& p) override { return target_->SyncDir(p); }
  Result<std::vector<std::string>> ListDir(const std::string& d) override { return target_->ListDir(d); }
  Result<uint64_t> FileSize(const std::string& p) override { return target_->FileSize(p); }
  bool FileExists(const std::string& p) override { return target_->FileExists(p); }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& p) override { return target_->LockFile(p); }

 private:
  Env* target_;
};

// Reads a whole (small) file into *out.
Status ReadFileToString(Env* env, const std::string& path, std::string* out);

// Writes `data` to `path` durably and atomically: to path + ".tmp", Sync,
// rename over `path`, then SyncDir of `dir`.
Status WriteFileAtomically(Env* env, const std::string& dir, const std::string& path, const std::string& data);

// Writes a new file `path` durably (segment files): body(file) into
// path + ".tmp", Sync, Close, rename to `path`, SyncDir of `dir`. On any error
// no file is left under either name: a failed SyncDir takes the renamed file
// back, since its rename may not be durable.
Status WriteFileDurably(Env* env, const std::string& dir, const std::string& path,
                        const std::function<Status(WritableFile*)>& body);

// Creates `dir` and any missing parents like Env::CreateDirIfMissing, then
// fsyncs the parent of every directory it created, so that the new
// directories' entries survive a power cut (an fsync of `dir` alone does not
// make `dir` itself durable). Nothing is synced when `dir` already exists.
Status CreateDirDurably(Env* env, const std::string& dir);

// dir + "/" + name.
std::string JoinPath(const std::string& dir, const std::string& name);

}  // namespace pomai
