// An Env whose mappings are never unmapped while the test runs: when the
// engine drops a MappedFile, its address range is replaced by an inaccessible
// (PROT_NONE) anonymous mapping that stays reserved until the Env itself is
// destroyed. A reader that touches a segment after the engine let go of it
// therefore faults at once (SIGSEGV, or an ASan/TSan report) instead of
// reading whatever a later mmap put at the same address.
//
// It also counts mappings: live() is how many the engine holds now,
// released() how many it has let go of; after the database is closed live()
// must be 0.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "util/env.h"

namespace pomai::testing {

class PoisonMapEnv : public EnvWrapper {
 public:
  PoisonMapEnv() : EnvWrapper(Env::Default()) {}
  // The engine is gone: destroying the retired mappings unmaps their
  // (now inaccessible) ranges.
  ~PoisonMapEnv() override = default;

  Result<std::unique_ptr<MappedFile>> MapFile(const std::string& path) override {
    auto r = target()->MapFile(path);
    if (!r.ok()) return r.status();
    live_.fetch_add(1);
    return std::unique_ptr<MappedFile>(new Poisoned(this, std::move(r).value()));
  }

  int64_t live() const { return live_.load(); }
  int64_t released() const { return released_.load(); }

 private:
  class Poisoned final : public MappedFile {
   public:
    Poisoned(PoisonMapEnv* env, std::unique_ptr<MappedFile> base) : env_(env), base_(std::move(base)) {}
    ~Poisoned() override { env_->Retire(std::move(base_)); }
    const uint8_t* data() const override { return base_->data(); }
    size_t size() const override { return base_->size(); }
    const std::string& path() const override { return base_->path(); }

   private:
    PoisonMapEnv* env_;
    std::unique_ptr<MappedFile> base_;
  };

  void Retire(std::unique_ptr<MappedFile> base) {
    live_.fetch_sub(1);
    released_.fetch_add(1);
    if (base->data() == nullptr || base->size() == 0) return;
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    void* addr = const_cast<uint8_t*>(base->data());
    const size_t len = (base->size() + page - 1) / page * page;
    // Atomically replaces the file mapping (MAP_FIXED): no moment where the
    // range is free for another mmap.
    void* p = ::mmap(addr, len, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) std::abort();
    // Destroying `base` now would munmap the range and free it for reuse;
    // it is kept until the Env goes.
    std::lock_guard<std::mutex> l(mu_);
    retired_.push_back(std::move(base));
  }

  std::atomic<int64_t> live_{0};
  std::atomic<int64_t> released_{0};
  std::mutex mu_;
  std::vector<std::unique_ptr<MappedFile>> retired_;
};

}  // namespace pomai::testing
