#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <set>

#include "util/env.h"
#include "util/mutex.h"

namespace pomai {
namespace {

Status WriteAll(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write", path, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::OK();
}

class PosixWritableFile final : public WritableFile {
  static constexpr size_t kMaxIov = 512;  // below IOV_MAX (1024 on Linux)

 public:
  PosixWritableFile(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Append(const void* data, size_t n) override {
    if (fd_ < 0) return Status::IOError("append to closed file " + path_);
    Status s = WriteAll(fd_, data, n, path_);
    if (s.ok()) size_ += n;
    return s;
  }
  Status AppendV(const std::string_view* pieces, size_t n) override {
    if (fd_ < 0) return Status::IOError("append to closed file " + path_);
    iovec iov[kMaxIov];
    size_t i = 0;
    while (i < n) {
      size_t count = 0;
      size_t bytes = 0;
      for (; i < n && count < kMaxIov; ++i) {
        if (pieces[i].empty()) continue;
        iov[count].iov_base = const_cast<char*>(pieces[i].data());
        iov[count].iov_len = pieces[i].size();
        bytes += pieces[i].size();
        ++count;
      }
      if (count == 0) break;
      ssize_t w;
      do {
        w = ::writev(fd_, iov, static_cast<int>(count));
      } while (w < 0 && errno == EINTR);
      if (w < 0) return Status::FromErrno("write", path_, errno);
      size_ += static_cast<uint64_t>(w);
      // A short write: finish what is left of these iovecs with plain writes.
      size_t skip = static_cast<size_t>(w);
      for (size_t k = 0; k < count && skip < bytes; ++k) {
        if (skip >= iov[k].iov_len) {
          skip -= iov[k].iov_len;
          bytes -= iov[k].iov_len;
          continue;
        }
        const size_t left = iov[k].iov_len - skip;
        Status s = WriteAll(fd_, static_cast<const char*>(iov[k].iov_base) + skip, left, path_);
        if (!s.ok()) return s;
        size_ += left;
        bytes -= iov[k].iov_len;
        skip = 0;
      }
    }
    return Status::OK();
  }
  Status Sync() override {
    if (fd_ < 0) return Status::IOError("sync of closed file " + path_);
    if (::fdatasync(fd_) != 0) return Status::FromErrno("fdatasync", path_, errno);
    return Status::OK();
  }
  Status Close() override {
    if (fd_ < 0) return Status::OK();
    int r = ::close(fd_);
    fd_ = -1;
    if (r != 0) return Status::FromErrno("close", path_, errno);
    return Status::OK();
  }
  uint64_t Size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixReadableFile() override { ::close(fd_); }
  Status Read(uint64_t offset, size_t n, void* buf, size_t* read) const override {
    char* p = static_cast<char*>(buf);
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, p + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno("read", path_, errno);
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    *read = done;
    return Status::OK();
  }
  uint64_t Size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixMappedFile final : public MappedFile {
 public:
  PosixMappedFile(std::string path, void* base, size_t size) : path_(std::move(path)), base_(base), size_(size) {}
  ~PosixMappedFile() override {
    if (base_ != nullptr) ::munmap(base_, size_);
  }
  const uint8_t* data() const override { return static_cast<const uint8_t*>(base_); }
  size_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  void* base_;
  size_t size_;
};

// flock() locks are per open file description, so a second open in the same
// process would succeed; the set makes a second lock in this process fail too.
// A child of fork() starts with an empty set: the locks it inherits are its
// parent's, never released by the child (the C API leaves the parent's
// databases alone in a child, see lib/capi/handles.h), so flock itself
// refuses a path the parent holds, and the path is free to the child once the
// parent lets it go.
Mutex g_locks_mu;
std::set<std::string> g_locked_paths GUARDED_BY(g_locks_mu);

// The fork() handlers: g_locks_mu is held across the fork, so no thread the
// child does not have holds it there.
// (The analysis does not follow a lock from one handler to the next.)
void LockPathsBeforeFork() NO_THREAD_SAFETY_ANALYSIS { g_locks_mu.Lock(); }
void UnlockPathsAfterForkInParent() NO_THREAD_SAFETY_ANALYSIS { g_locks_mu.Unlock(); }
void ForgetPathsAfterForkInChild() NO_THREAD_SAFETY_ANALYSIS {
  g_locked_paths.clear();
  g_locks_mu.Unlock();
}

// The key of a lock file in g_locked_paths: its directory resolved
// (realpath), so that one directory reached through a symlink, a relative
// path or "a/../a" is one key; the path itself when that fails.
std::string LockKey(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  char* real = ::realpath(dir.c_str(), nullptr);
  if (real == nullptr) return path;
  std::string key = std::string(real) + "/" + path.substr(slash == std::string::npos ? 0 : slash + 1);
  ::free(real);
  return key;
}

class PosixFileLock final : public FileLock {
 public:
  PosixFileLock(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixFileLock() override {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
    MutexLock l(&g_locks_mu);
    g_locked_paths.erase(path_);
  }

 private:
  std::string path_;
  int fd_;
};

class PosixEnv final : public Env {
 public:
  PosixEnv() { ::pthread_atfork(LockPathsBeforeFork, UnlockPathsAfterForkInParent, ForgetPathsAfterForkInChild); }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Status::FromErrno("create", path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd, 0));
  }
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return Status::FromErrno("open for append", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      return Status::FromErrno("stat", path, e);
    }
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd, static_cast<uint64_t>(st.st_size)));
  }
  Result<std::unique_ptr<ReadableFile>> NewReadableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("open", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      return Status::FromErrno("stat", path, e);
    }
    return std::unique_ptr<ReadableFile>(new PosixReadableFile(path, fd, static_cast<uint64_t>(st.st_size)));
  }
  Result<std::unique_ptr<MappedFile>> MapFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("open", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      return Status::FromErrno("stat", path, e);
    }
    size_t size = static_cast<size_t>(st.st_size);
    void* base = nullptr;
    if (size > 0) {
      base = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
      if (base == MAP_FAILED) {
        int e = errno;
        ::close(fd);
        return Status::FromErrno("mmap", path, e);
      }
    }
    ::close(fd);
    return std::unique_ptr<MappedFile>(new PosixMappedFile(path, base, size));
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return Status::FromErrno("rename to " + to + ":", from, errno);
    return Status::OK();
  }
  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return Status::FromErrno("remove", path, errno);
    return Status::OK();
  }
  Status TruncateFile(const std::string& path, uint64_t size) override {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) return Status::FromErrno("truncate", path, errno);
    return Status::OK();
  }
  // Creates missing parents too, like mkdir -p.
  Status CreateDirIfMissing(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      if (errno != ENOENT) return Status::FromErrno("mkdir", path, errno);
      const size_t slash = path.find_last_of('/', path.size() > 1 ? path.size() - 2 : 0);
      if (slash == std::string::npos || slash == 0) return Status::FromErrno("mkdir", path, ENOENT);
      POMAI_RETURN_IF_ERROR(CreateDirIfMissing(path.substr(0, slash)));
      if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno("mkdir", path, errno);
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return Status::FromErrno("stat", path, errno);
    if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument("path '" + path + "' exists and is not a directory");
    return Status::OK();
  }
  Status SyncDir(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("open directory", path, errno);
    int r = ::fsync(fd);
    int e = errno;
    ::close(fd);
    if (r != 0) return Status::FromErrno("fsync directory", path, e);
    return Status::OK();
  }
  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return Status::FromErrno("list directory", dir, errno);
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    ::closedir(d);
    return names;
  }
  Result<uint64_t> FileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return Status::FromErrno("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }
  bool FileExists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    const std::string key = LockKey(path);
    {
      MutexLock l(&g_locks_mu);
      if (g_locked_paths.count(key)) return Status::IOError("database is locked: " + path + " is held by this process");
      g_locked_paths.insert(key);
    }
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      if (fd >= 0) ::close(fd);
      MutexLock l(&g_locks_mu);
      g_locked_paths.erase(key);
      if (e == EWOULDBLOCK) return Status::IOError("database is locked: " + path + " is held by another process");
      return Status::FromErrno("lock", path, e);
    }
    return std::unique_ptr<FileLock>(new PosixFileLock(key, fd));
  }
};

}  // namespace

Env* Env::Default() {
  static PosixEnv* env = new PosixEnv();
  return env;
}

namespace {
// The parent of `path` ("." for a relative name), ignoring trailing slashes.
std::string ParentDir(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}
}  // namespace

Status CreateDirDurably(Env* env, const std::string& dir) {
  std::vector<std::string> created;  // dir and its missing parents, innermost first
  for (std::string p = dir; !p.empty() && p != "." && p != "/" && !env->FileExists(p); p = ParentDir(p)) {
    created.push_back(p);
  }
  POMAI_RETURN_IF_ERROR(env->CreateDirIfMissing(dir));
  for (auto it = created.rbegin(); it != created.rend(); ++it) POMAI_RETURN_IF_ERROR(env->SyncDir(ParentDir(*it)));
  return Status::OK();
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

Status ReadFileToString(Env* env, const std::string& path, std::string* out) {
  POMAI_ASSIGN_OR_RETURN(auto file, env->NewReadableFile(path));
  out->resize(file->Size());
  size_t read = 0;
  POMAI_RETURN_IF_ERROR(file->Read(0, out->size(), out->data(), &read));
  out->resize(read);
  return Status::OK();
}

namespace {
// body into path + ".tmp", Sync, Close, rename to `path`; on failure no file
// under either name.
Status WriteThroughTemp(Env* env, const std::string& path, const std::function<Status(WritableFile*)>& body) {
  const std::string tmp = path + ".tmp";
  {
    POMAI_ASSIGN_OR_RETURN(auto file, env->NewWritableFile(tmp));
    Status s = body(file.get());
    if (s.ok()) s = file->Sync();
    if (s.ok()) s = file->Close();
    if (!s.ok()) {
      file.reset();
      (void)env->RemoveFile(tmp);
      return s;
    }
  }
  Status s = env->RenameFile(tmp, path);
  if (!s.ok()) (void)env->RemoveFile(tmp);
  return s;
}
}  // namespace

Status WriteFileAtomically(Env* env, const std::string& dir, const std::string& path, const std::string& data) {
  POMAI_RETURN_IF_ERROR(
      WriteThroughTemp(env, path, [&](WritableFile* f) { return f->Append(data.data(), data.size()); }));
  return env->SyncDir(dir);
}

Status WriteFileDurably(Env* env, const std::string& dir, const std::string& path,
                        const std::function<Status(WritableFile*)>& body) {
  POMAI_RETURN_IF_ERROR(WriteThroughTemp(env, path, body));
  Status s = env->SyncDir(dir);
  if (!s.ok()) (void)env->RemoveFile(path);
  return s;
}

}  // namespace pomai
