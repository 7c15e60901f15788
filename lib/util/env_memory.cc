#include "util/env_memory.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace pomai {

// The bytes of one file version. Appends go to the current version until a
// mapping takes it (then the next append copies: mapped bytes never change).
struct MemoryEnv::Contents {
  uint8_t* data = nullptr;
  size_t size = 0;
  size_t capacity = 0;
  Contents() = default;
  Contents(const Contents&) = delete;
  Contents& operator=(const Contents&) = delete;
  ~Contents() { std::free(data); }
  // Room for `need` bytes, 64-byte aligned; false when out of memory.
  bool Reserve(size_t need) {
    if (need <= capacity) return true;
    size_t cap = std::max<size_t>({need, capacity * 2, 4096});
    cap = (cap + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, cap);
    if (p == nullptr) return false;
    if (size > 0) std::memcpy(p, data, size);
    std::free(data);
    data = static_cast<uint8_t*>(p);
    capacity = cap;
    return true;
  }
  // A new version holding the first min(size, this size) bytes, zero-filled
  // to `size`, with room for `reserve` bytes; null when out of memory.
  std::shared_ptr<Contents> Copy(size_t new_size, size_t reserve) const {
    auto copy = std::make_shared<Contents>();
    if (!copy->Reserve(std::max<size_t>({reserve, new_size, 1}))) return nullptr;
    const size_t keep = std::min(new_size, size);
    if (keep > 0) std::memcpy(copy->data, data, keep);
    if (new_size > keep) std::memset(copy->data + keep, 0, new_size - keep);
    copy->size = new_size;
    return copy;
  }
};

namespace {

Status NotFound(const std::string& path) { return Status::IOError(path + ": no such file (in-memory files)"); }
Status NoMemory(const std::string& path) { return Status::ResourceExhausted(path + ": out of memory"); }

class MemoryMapped : public MappedFile {
 public:
  MemoryMapped(std::shared_ptr<const MemoryEnv::Contents> c, std::string path) : c_(std::move(c)), path_(std::move(path)) {}
  const uint8_t* data() const override { return c_->size == 0 ? nullptr : c_->data; }
  size_t size() const override { return c_->size; }
  const std::string& path() const override { return path_; }

 private:
  std::shared_ptr<const MemoryEnv::Contents> c_;
  std::string path_;
};

class MemoryReadable : public ReadableFile {
 public:
  MemoryReadable(std::shared_ptr<const MemoryEnv::Contents> c, std::string path) : c_(std::move(c)), path_(std::move(path)) {}
  Status Read(uint64_t offset, size_t n, void* buf, size_t* read) const override {
    *read = 0;
    if (offset >= c_->size) return Status::OK();
    *read = std::min<size_t>(n, c_->size - offset);
    std::memcpy(buf, c_->data + offset, *read);
    return Status::OK();
  }
  uint64_t Size() const override { return c_->size; }
  const std::string& path() const override { return path_; }

 private:
  std::shared_ptr<const MemoryEnv::Contents> c_;
  std::string path_;
};

class MemoryLock : public FileLock {};

}  // namespace

// Appends to the file's current contents. A file is written by one writer
// at a time; a mapping taken meanwhile (shared_ptr use count above the
// table's and this writer's) is never changed: the writer copies first.
class MemoryEnv::Writable : public WritableFile {
 public:
  Writable(MemoryEnv* env, std::shared_ptr<Contents> c, std::string path)
      : env_(env), c_(std::move(c)), path_(std::move(path)) {}
  Status Append(const void* data, size_t n) override {
    if (n == 0) return Status::OK();
    MutexLock l(&env_->mu_);
    auto it = env_->files_.find(path_);
    if (it == env_->files_.end() || it->second != c_) return Status::IOError(path_ + ": removed while being written");
    if (c_.use_count() > 2) {  // mapped or read: continue in a copy
      auto copy = c_->Copy(c_->size, c_->size + n);
      if (!copy) return NoMemory(path_);
      c_ = copy;
      it->second = copy;
    }
    if (!c_->Reserve(c_->size + n)) return NoMemory(path_);
    std::memcpy(c_->data + c_->size, data, n);
    c_->size += n;
    return Status::OK();
  }
  Status Sync() override { return Status::OK(); }
  Status Close() override { return Status::OK(); }
  uint64_t Size() const override {
    MutexLock l(&env_->mu_);
    return c_->size;
  }
  const std::string& path() const override { return path_; }

 private:
  MemoryEnv* env_;
  std::shared_ptr<Contents> c_;
  std::string path_;
};

MemoryEnv::MemoryEnv() = default;
MemoryEnv::~MemoryEnv() = default;

Result<std::unique_ptr<WritableFile>> MemoryEnv::NewWritableFile(const std::string& path) {
  auto c = std::make_shared<Contents>();
  MutexLock l(&mu_);
  files_[path] = c;
  return std::unique_ptr<WritableFile>(new Writable(this, c, path));
}

Result<std::unique_ptr<WritableFile>> MemoryEnv::NewAppendableFile(const std::string& path) {
  MutexLock l(&mu_);
  auto& c = files_[path];
  if (!c) c = std::make_shared<Contents>();
  return std::unique_ptr<WritableFile>(new Writable(this, c, path));
}

Result<std::unique_ptr<ReadableFile>> MemoryEnv::NewReadableFile(const std::string& path) {
  MutexLock l(&mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return NotFound(path);
  return std::unique_ptr<ReadableFile>(new MemoryReadable(it->second, path));
}

Result<std::unique_ptr<MappedFile>> MemoryEnv::MapFile(const std::string& path) {
  MutexLock l(&mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return NotFound(path);
  return std::unique_ptr<MappedFile>(new MemoryMapped(it->second, path));
}

Status MemoryEnv::RenameFile(const std::string& from, const std::string& to) {
  MutexLock l(&mu_);
  auto it = files_.find(from);
  if (it == files_.end()) return NotFound(from);
  auto c = std::move(it->second);
  files_.erase(it);
  files_[to] = std::move(c);
  return Status::OK();
}

Status MemoryEnv::RemoveFile(const std::string& path) {
  MutexLock l(&mu_);
  if (files_.erase(path) == 0) return NotFound(path);
  return Status::OK();
}

Status MemoryEnv::TruncateFile(const std::string& path, uint64_t size) {
  MutexLock l(&mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return NotFound(path);
  auto copy = it->second->Copy(size, size);  // mappings keep the old bytes
  if (!copy) return NoMemory(path);
  it->second = copy;
  return Status::OK();
}

Status MemoryEnv::CreateDirIfMissing(const std::string&) { return Status::OK(); }
Status MemoryEnv::SyncDir(const std::string&) { return Status::OK(); }

Result<std::vector<std::string>> MemoryEnv::ListDir(const std::string& dir) {
  const std::string prefix = dir + "/";
  std::vector<std::string> out;
  MutexLock l(&mu_);
  for (const auto& [path, c] : files_) {
    if (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
        path.find('/', prefix.size()) == std::string::npos) {
      out.push_back(path.substr(prefix.size()));
    }
  }
  return out;
}

Result<uint64_t> MemoryEnv::FileSize(const std::string& path) {
  MutexLock l(&mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return NotFound(path);
  return static_cast<uint64_t>(it->second->size);
}

bool MemoryEnv::FileExists(const std::string& path) {
  MutexLock l(&mu_);
  return files_.count(path) > 0;
}

Result<std::unique_ptr<FileLock>> MemoryEnv::LockFile(const std::string&) {
  return std::unique_ptr<FileLock>(new MemoryLock());
}

uint64_t MemoryEnv::BytesInFiles() const {
  MutexLock l(&mu_);
  uint64_t b = 0;
  for (const auto& [path, c] : files_) b += c->capacity;
  return b;
}

}  // namespace pomai
