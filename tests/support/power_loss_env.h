// PowerLossEnv: an Env for tests that models what a power cut leaves on disk.
//
// It wraps a real Env (Env::Default()) and tracks one database directory
// (files directly inside `dir`; anything else passes through untracked):
//
//  - per file (inode): how many bytes are durable, i.e. were appended before
//    the last successful Sync of that file (a truncation, O_TRUNC included,
//    counts as durable at once);
//  - per directory: the entries (name -> inode) as of the last SyncDir, next
//    to the current ones. Creations, renames and removals only reach the
//    durable view at the next SyncDir of the directory.
//
// When an operation would drop the last current name of an inode that the
// durable view still names (RemoveFile, or RenameFile over an existing
// name), the inode is first hard-linked into a private stash directory (a
// sibling of `dir`), so that SimulatePowerLoss can bring it back.
//
// SimulatePowerLoss() (call it once the DB object is destroyed or abandoned)
// rewrites `dir` to the durable view: every durably named inode comes back
// under its durable name, truncated to its durable length (or, with
// Unsynced::kHalf, plus the first half of its unsynced bytes: a torn tail);
// every other entry is removed. Afterwards everything on disk is durable. This is the model of
// LevelDB's and RocksDB's FaultInjectionTestEnv (unsynced data is lost
// entirely; no torn or reordered sectors).
//
// The directory itself is modelled too: when CreateDirIfMissing creates it,
// its entry in the parent is durable only after a SyncDir of the parent;
// until then a power cut loses the whole directory.
//
// I/O points: every Append/AppendV, Sync, SyncDir, RenameFile, RemoveFile,
// TruncateFile and file creation (NewWritableFile, NewAppendableFile) on a
// tracked path, the creation of `dir` and a SyncDir of its parent, is one
// numbered point (1-based). CrashAt(n) makes point n and
// every later one fail with EIO without touching the disk: the process keeps
// running, but nothing more reaches the "disk". Reads (MapFile, ReadableFile,
// ListDir...) keep working.
//
// Since durability is simulated, Sync and SyncDir do not call the real
// fdatasync/fsync unless real_sync is set: the tests stay fast.
//
// Thread-safe: every tracked operation runs under one mutex, so the point
// numbering is the order in which operations happened.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "util/env.h"

namespace pomai::testing {

class PowerLossEnv : public EnvWrapper {
 public:
  // `dir` may exist (its content is then durable) or not (the DB creates it;
  // its entry in the parent is durable only after a SyncDir of the parent).
  // The stash is dir + ".stash".
  explicit PowerLossEnv(std::string dir, Env* target = Env::Default(), bool real_sync = false)
      : EnvWrapper(target),
        dir_(Normalize(dir)),
        parent_(Normalize(std::filesystem::path(dir_).parent_path().string())),
        stash_(dir_ + ".stash"),
        real_sync_(real_sync) {
    std::filesystem::create_directories(parent_);
    std::filesystem::create_directories(stash_);
    std::lock_guard<std::mutex> l(mu_);
    ResetToDiskLocked();
  }
  ~PowerLossEnv() override {
    std::error_code ec;
    std::filesystem::remove_all(stash_, ec);
  }

  // Crash at point n (1-based): it and every later point fail with EIO. 0 = never.
  void CrashAt(uint64_t n) {
    std::lock_guard<std::mutex> l(mu_);
    crash_at_ = n;
  }
  uint64_t points() const {
    std::lock_guard<std::mutex> l(mu_);
    return points_;
  }
  bool crashed() const {
    std::lock_guard<std::mutex> l(mu_);
    return crash_at_ != 0 && points_ >= crash_at_;
  }
  // Description of the operation at the crash point ("" if not reached).
  std::string crash_op() const {
    std::lock_guard<std::mutex> l(mu_);
    return crash_op_;
  }

  // What survives of the bytes written to a file after its last Sync.
  enum class Unsynced {
    kDropped,  // none (the default model)
    kHalf,     // the first half of them: a torn tail, cut anywhere (even mid-record)
  };

  // Rewrites the directory to what a power cut would leave (see above) and
  // makes that the new durable state. The crash point is cleared.
  void SimulatePowerLoss(Unsynced unsynced = Unsynced::kDropped) {
    std::lock_guard<std::mutex> l(mu_);
    namespace fs = std::filesystem;
    if (!dir_durable_) {
      // The directory's own entry never reached the disk: it is all gone.
      fs::remove_all(dir_);
    } else {
      // 1. Copy out the durable content of every durably named inode.
      const std::string staging = stash_ + "/.staging";
      fs::remove_all(staging);
      fs::create_directories(staging);
      std::map<std::string, std::string> staged;  // durable name -> staged copy
      int k = 0;
      for (const auto& [name, ino] : durable_) {
        const Inode& node = inodes_.at(ino);
        const std::string tmp = staging + "/" + std::to_string(k++);
        uint64_t keep = node.synced;
        if (unsynced == Unsynced::kHalf && node.written > node.synced) keep += (node.written - node.synced) / 2;
        CopyPrefix(SourceOf(ino), tmp, keep);
        staged[name] = tmp;
      }
      // 2. Wipe the directory and install the durable view.
      for (const auto& e : fs::directory_iterator(dir_)) fs::remove_all(e.path());
      for (const auto& [name, tmp] : staged) fs::rename(tmp, dir_ + "/" + name);
    }
    fs::remove_all(stash_);
    fs::create_directories(stash_);
    crash_at_ = 0;
    crash_op_.clear();
    ResetToDiskLocked();
  }

  // ---- Env ----
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& p) override {
    return OpenWritable(p, /*truncate=*/true);
  }
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& p) override {
    return OpenWritable(p, /*truncate=*/false);
  }
  Status RenameFile(const std::string& f, const std::string& t) override {
    std::lock_guard<std::mutex> l(mu_);
    const bool tf = Tracked(f), tt = Tracked(t);
    if (!tf && !tt) return target()->RenameFile(f, t);
    POMAI_RETURN_IF_ERROR(Point("rename", f + " -> " + t));
    if (tf != tt) return Status::InvalidArgument("PowerLossEnv: rename across the tracked directory");
    const std::string fn = Name(f), tn = Name(t);
    auto it = current_.find(fn);
    if (it == current_.end()) return target()->RenameFile(f, t);  // let the real call report the error
    auto old = current_.find(tn);
    if (old != current_.end() && old->second != it->second) StashIfNeeded(old->second);
    POMAI_RETURN_IF_ERROR(target()->RenameFile(f, t));
    const uint64_t ino = it->second;
    current_.erase(it);
    current_[tn] = ino;
    inodes_[ino].name = tn;
    return Status::OK();
  }
  Status RemoveFile(const std::string& p) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!Tracked(p)) return target()->RemoveFile(p);
    POMAI_RETURN_IF_ERROR(Point("remove", p));
    auto it = current_.find(Name(p));
    if (it != current_.end()) StashIfNeeded(it->second);
    POMAI_RETURN_IF_ERROR(target()->RemoveFile(p));
    if (it != current_.end()) {
      inodes_[it->second].name.clear();
      current_.erase(it);
    }
    return Status::OK();
  }
  Status TruncateFile(const std::string& p, uint64_t size) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!Tracked(p)) return target()->TruncateFile(p, size);
    POMAI_RETURN_IF_ERROR(Point("truncate", p));
    POMAI_RETURN_IF_ERROR(target()->TruncateFile(p, size));
    auto it = current_.find(Name(p));
    if (it != current_.end()) {
      Inode& node = inodes_[it->second];
      node.written = size;
      if (node.synced > size) node.synced = size;
    }
    return Status::OK();
  }
  Status CreateDirIfMissing(const std::string& p) override {
    std::lock_guard<std::mutex> l(mu_);
    if (Normalize(p) != dir_) return target()->CreateDirIfMissing(p);
    const bool existed = std::filesystem::is_directory(dir_);
    if (existed) return target()->CreateDirIfMissing(p);
    POMAI_RETURN_IF_ERROR(Point("mkdir", p));
    POMAI_RETURN_IF_ERROR(target()->CreateDirIfMissing(p));
    dir_durable_ = false;  // until the parent is synced
    return Status::OK();
  }
  Status SyncDir(const std::string& p) override {
    std::lock_guard<std::mutex> l(mu_);
    if (Normalize(p) == parent_ && parent_ != dir_) {
      POMAI_RETURN_IF_ERROR(Point("fsync directory", p));
      if (real_sync_) POMAI_RETURN_IF_ERROR(target()->SyncDir(p));
      if (std::filesystem::is_directory(dir_)) dir_durable_ = true;
      return Status::OK();
    }
    if (Normalize(p) != dir_) return target()->SyncDir(p);
    POMAI_RETURN_IF_ERROR(Point("fsync directory", p));
    if (real_sync_) POMAI_RETURN_IF_ERROR(target()->SyncDir(p));
    durable_ = current_;
    // Stashed inodes no longer durably named are garbage now.
    for (auto it = inodes_.begin(); it != inodes_.end();) {
      if (it->second.name.empty() && !DurablyNamed(it->first)) {
        if (!it->second.stash.empty()) ::unlink(it->second.stash.c_str());
        it = inodes_.erase(it);
      } else {
        ++it;
      }
    }
    return Status::OK();
  }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& p) override {
    std::lock_guard<std::mutex> l(mu_);
    const bool fresh = Tracked(p) && !current_.count(Name(p));
    auto r = target()->LockFile(p);
    if (r.ok() && fresh) NewInode(Name(p), 0);
    return r;
  }

 private:
  struct Inode {
    std::string name;    // current name in dir_, "" if unlinked
    std::string stash;   // hard link in stash_, "" if none
    uint64_t written = 0;
    uint64_t synced = 0;
  };

  class File : public WritableFile {
   public:
    File(PowerLossEnv* env, std::unique_ptr<WritableFile> base, uint64_t ino)
        : env_(env), base_(std::move(base)), ino_(ino) {}
    Status Append(const void* d, size_t n) override {
      std::lock_guard<std::mutex> l(env_->mu_);
      POMAI_RETURN_IF_ERROR(env_->Point("write", base_->path()));
      Status s = base_->Append(d, n);
      env_->Wrote(ino_, base_->Size());
      return s;
    }
    Status AppendV(const std::string_view* pieces, size_t n) override {
      std::lock_guard<std::mutex> l(env_->mu_);
      POMAI_RETURN_IF_ERROR(env_->Point("write", base_->path()));
      Status s = base_->AppendV(pieces, n);
      env_->Wrote(ino_, base_->Size());
      return s;
    }
    Status Sync() override {
      std::lock_guard<std::mutex> l(env_->mu_);
      POMAI_RETURN_IF_ERROR(env_->Point("fdatasync", base_->path()));
      if (env_->real_sync_) POMAI_RETURN_IF_ERROR(base_->Sync());
      auto it = env_->inodes_.find(ino_);
      if (it != env_->inodes_.end()) it->second.synced = it->second.written;
      return Status::OK();
    }
    Status Close() override { return base_->Close(); }
    uint64_t Size() const override { return base_->Size(); }
    const std::string& path() const override { return base_->path(); }

   private:
    PowerLossEnv* env_;
    std::unique_ptr<WritableFile> base_;
    uint64_t ino_;
  };

  Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& p, bool truncate) {
    std::lock_guard<std::mutex> l(mu_);
    const bool tracked = Tracked(p);
    if (tracked) POMAI_RETURN_IF_ERROR(Point(truncate ? "create" : "open for append", p));
    auto r = truncate ? target()->NewWritableFile(p) : target()->NewAppendableFile(p);
    if (!r.ok() || !tracked) return r;
    const std::string name = Name(p);
    uint64_t ino;
    auto it = current_.find(name);
    if (it == current_.end()) {
      ino = NewInode(name, 0);
    } else {
      ino = it->second;
      Inode& node = inodes_[ino];
      node.written = (*r)->Size();
      if (truncate) node.synced = 0;
    }
    return std::unique_ptr<WritableFile>(new File(this, std::move(r).value(), ino));
  }

  void Wrote(uint64_t ino, uint64_t size) {
    auto it = inodes_.find(ino);
    if (it != inodes_.end()) it->second.written = size;
  }

  // Counts one I/O point; the injected EIO once the crash point is reached.
  Status Point(const char* what, const std::string& path) {
    ++points_;
    if (crash_at_ != 0 && points_ >= crash_at_) {
      if (points_ == crash_at_) crash_op_ = std::string(what) + " " + path;
      return Status::FromErrno(std::string("simulated power loss before ") + what, path, EIO);
    }
    return Status::OK();
  }

  uint64_t NewInode(const std::string& name, uint64_t size) {
    const uint64_t ino = next_ino_++;
    Inode node;
    node.name = name;
    node.written = node.synced = size;
    inodes_[ino] = node;
    current_[name] = ino;
    return ino;
  }

  // Keeps the content of `ino` reachable when its current name is about to go.
  void StashIfNeeded(uint64_t ino) {
    Inode& node = inodes_[ino];
    if (!node.stash.empty() || node.name.empty() || !DurablyNamed(ino)) return;
    node.stash = stash_ + "/ino-" + std::to_string(ino);
    if (::link((dir_ + "/" + node.name).c_str(), node.stash.c_str()) != 0) node.stash.clear();
  }

  bool DurablyNamed(uint64_t ino) const {
    for (const auto& [name, i] : durable_) {
      if (i == ino) return true;
    }
    return false;
  }

  std::string SourceOf(uint64_t ino) const {
    const Inode& node = inodes_.at(ino);
    if (!node.stash.empty()) return node.stash;
    return dir_ + "/" + node.name;
  }

  static void CopyPrefix(const std::string& src, const std::string& dst, uint64_t n) {
    std::ifstream in(src, std::ios::binary);
    std::ofstream out(dst, std::ios::binary | std::ios::trunc);
    std::vector<char> buf(1 << 16);
    while (n > 0 && in) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(n, buf.size()));
      in.read(buf.data(), static_cast<std::streamsize>(want));
      const auto got = in.gcount();
      if (got <= 0) break;
      out.write(buf.data(), got);
      n -= static_cast<uint64_t>(got);
    }
  }

  // Everything on disk now is durable.
  void ResetToDiskLocked() {
    inodes_.clear();
    current_.clear();
    durable_.clear();
    dir_durable_ = std::filesystem::is_directory(dir_);  // what is on disk now is durable
    if (!dir_durable_) return;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      if (!e.is_regular_file()) continue;
      NewInode(e.path().filename().string(), e.file_size());
    }
    durable_ = current_;
  }

  static std::string Normalize(const std::string& p) {
    std::string s = std::filesystem::path(p).lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
  }
  bool Tracked(const std::string& p) const {
    return Normalize(std::filesystem::path(p).parent_path().string()) == dir_;
  }
  static std::string Name(const std::string& p) { return std::filesystem::path(p).filename().string(); }

  const std::string dir_;
  const std::string parent_;
  const std::string stash_;
  const bool real_sync_;
  mutable std::mutex mu_;
  uint64_t points_ = 0;
  uint64_t crash_at_ = 0;
  std::string crash_op_;
  uint64_t next_ino_ = 1;
  bool dir_durable_ = false;  // dir_'s own entry in parent_ is durable
  std::map<uint64_t, Inode> inodes_;
  std::map<std::string, uint64_t> current_;  // name -> inode, now
  std::map<std::string, uint64_t> durable_;  // name -> inode, as of the last SyncDir
};

}  // namespace pomai::testing
