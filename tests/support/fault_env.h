// FaultInjectionEnv: an Env for tests that counts operations and fails chosen ones.
// FailSyncDirAfterRenameTo: fails the directory fsync right after a rename onto a given name.
//
// Counts every Append, Sync (fdatasync of a file), SyncDir, Rename and
// MapFile. A fault plan makes the Nth operation of a kind (1-based, counted
// from the moment the plan is set) fail with the given errno, either once or
// from then on. Thread-safe.
#pragma once

#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <string>

#include "util/env.h"

namespace pomai::testing {

enum class Op { kAppend = 0, kSync, kSyncDir, kRename, kMap, kCount };

class FaultInjectionEnv : public EnvWrapper {
 public:
  explicit FaultInjectionEnv(Env* target = Env::Default()) : EnvWrapper(target) {}

  // Fails the nth (1-based) operation of kind `op` from now on, with `err`
  // (EIO, ENOSPC, ...); `sticky` makes every later one fail too.
  void FailNth(Op op, uint64_t nth, int err = EIO, bool sticky = false) {
    std::lock_guard<std::mutex> l(mu_);
    plan_op_ = op;
    plan_at_ = count(op) + nth;
    plan_err_ = err;
    plan_sticky_ = sticky;
    armed_ = true;
  }
  void ClearFaults() {
    std::lock_guard<std::mutex> l(mu_);
    armed_ = false;
  }
  uint64_t count(Op op) const { return counts_[static_cast<int>(op)].load(); }

  // Called by every counted operation: bumps the counter and returns the injected error, if any.
  Status Tick(Op op, const std::string& what, const std::string& path) {
    uint64_t n = ++counts_[static_cast<int>(op)];
    std::lock_guard<std::mutex> l(mu_);
    if (armed_ && op == plan_op_ && (n == plan_at_ || (plan_sticky_ && n > plan_at_))) {
      return Status::FromErrno("injected fault in " + what, path, plan_err_);
    }
    return Status::OK();
  }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& p) override {
    auto r = target()->NewWritableFile(p);
    if (!r.ok()) return r.status();
    return std::unique_ptr<WritableFile>(new File(this, std::move(r).value()));
  }
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& p) override {
    auto r = target()->NewAppendableFile(p);
    if (!r.ok()) return r.status();
    return std::unique_ptr<WritableFile>(new File(this, std::move(r).value()));
  }
  Result<std::unique_ptr<MappedFile>> MapFile(const std::string& p) override {
    POMAI_RETURN_IF_ERROR(Tick(Op::kMap, "mmap", p));
    return target()->MapFile(p);
  }
  Status RenameFile(const std::string& f, const std::string& t) override {
    POMAI_RETURN_IF_ERROR(Tick(Op::kRename, "rename", f));
    return target()->RenameFile(f, t);
  }
  Status SyncDir(const std::string& p) override {
    POMAI_RETURN_IF_ERROR(Tick(Op::kSyncDir, "fsync directory", p));
    return target()->SyncDir(p);
  }

 private:
  class File : public WritableFile {
   public:
    File(FaultInjectionEnv* env, std::unique_ptr<WritableFile> base) : env_(env), base_(std::move(base)) {}
    Status Append(const void* d, size_t n) override {
      POMAI_RETURN_IF_ERROR(env_->Tick(Op::kAppend, "write", base_->path()));
      return base_->Append(d, n);
    }
    Status AppendV(const std::string_view* pieces, size_t n) override {
      POMAI_RETURN_IF_ERROR(env_->Tick(Op::kAppend, "write", base_->path()));
      return base_->AppendV(pieces, n);
    }
    Status Sync() override {
      POMAI_RETURN_IF_ERROR(env_->Tick(Op::kSync, "fdatasync", base_->path()));
      return base_->Sync();
    }
    Status Close() override { return base_->Close(); }
    uint64_t Size() const override { return base_->Size(); }
    const std::string& path() const override { return base_->path(); }

   private:
    FaultInjectionEnv* env_;
    std::unique_ptr<WritableFile> base_;
  };

  std::atomic<uint64_t> counts_[static_cast<int>(Op::kCount)] = {};
  std::mutex mu_;
  bool armed_ = false;
  Op plan_op_ = Op::kAppend;
  uint64_t plan_at_ = 0;
  int plan_err_ = EIO;
  bool plan_sticky_ = false;
};

// Fails (with EIO) the directory fsync that follows the (skip+1)-th
// successful rename onto a file named `name` once Arm(skip) was called: the
// rename is done, its durability unknown, which is what a manifest writer
// sees when the disk fails between the two. Thread-safe.
class FailSyncDirAfterRenameTo : public EnvWrapper {
 public:
  FailSyncDirAfterRenameTo(std::string name, Env* target = Env::Default())
      : EnvWrapper(target), name_(std::move(name)) {}
  void Arm(int skip) {
    std::lock_guard<std::mutex> l(mu_);
    skip_ = skip;
    armed_ = true;
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    Status s = target()->RenameFile(from, to);
    std::lock_guard<std::mutex> l(mu_);
    const bool match = to.size() >= name_.size() && to.compare(to.size() - name_.size(), name_.size(), name_) == 0 &&
                       (to.size() == name_.size() || to[to.size() - name_.size() - 1] == '/');
    if (s.ok() && armed_ && match && skip_-- == 0) {
      armed_ = false;
      fail_next_ = true;
    }
    return s;
  }
  Status SyncDir(const std::string& path) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (fail_next_) {
        fail_next_ = false;
        return Status::FromErrno("injected fault in fsync directory", path, EIO);
      }
    }
    return target()->SyncDir(path);
  }

 private:
  const std::string name_;
  std::mutex mu_;
  bool armed_ = false, fail_next_ = false;
  int skip_ = 0;
};

}  // namespace pomai::testing
