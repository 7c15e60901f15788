// RowBuffer: a growable, contiguous float matrix for the memtable.
//
// Backed by an anonymous mapping that grows with mremap (the kernel moves
// the pages: nothing is copied or faulted in again), so appending rows costs
// no copy per doubling; a buffer whose mapping is reused across memtables
// also asks for transparent huge pages (one fault per 2 MiB instead of one
// per 4 KiB, fewer TLB misses when searched). Not thread-safe; data() may
// move on Append.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "util/mutex.h"

namespace pomai {

// Keeps the mapping of one retired RowBuffer for the next one, so that the
// memtable that follows a freeze writes into pages that are already faulted
// in instead of having the kernel allocate and zero them again (at 512 bytes
// a row that zeroing alone costs as much as the WAL write). Holds at most
// one mapping of at most max_bytes; unmaps it when destroyed. Thread-safe.
class MappingCache {
 public:
  explicit MappingCache(size_t max_bytes) : max_bytes_(max_bytes) {}
  ~MappingCache() {
    if (base_ != nullptr) ::munmap(base_, bytes_);
  }
  MappingCache(const MappingCache&) = delete;
  MappingCache& operator=(const MappingCache&) = delete;

  // Takes ownership of the mapping and returns true, or returns false (the
  // caller unmaps it) when one is already kept or it is too big.
  bool Put(void* base, size_t bytes) {
    MutexLock l(&mu_);
    if (base_ != nullptr || bytes > max_bytes_) return false;
    base_ = base;
    bytes_ = bytes;
    return true;
  }
  // The kept mapping and its size, or {nullptr, 0}; ownership passes to the caller.
  std::pair<void*, size_t> Take() {
    MutexLock l(&mu_);
    return {std::exchange(base_, nullptr), std::exchange(bytes_, 0)};
  }

 private:
  const size_t max_bytes_;
  Mutex mu_;
  void* base_ GUARDED_BY(mu_) = nullptr;
  size_t bytes_ GUARDED_BY(mu_) = 0;
};

class RowBuffer {
 public:
  // `cache` (may be null) provides the first mapping and takes it back at destruction.
  // `huge_pages`: ask for transparent huge pages (MADV_HUGEPAGE). Worth it
  // only for a buffer whose mapping is reused through `cache`: on a fresh
  // mapping each huge page fault may stall for milliseconds compacting memory
  // (seen as 10-46 ms stalls of a write every few hundred batches).
  explicit RowBuffer(size_t row_bytes, std::shared_ptr<MappingCache> cache = nullptr, bool huge_pages = false)
      : row_bytes_(row_bytes), cache_(std::move(cache)), huge_pages_(huge_pages) {}
  ~RowBuffer() {
    if (base_ != nullptr && !(cache_ && cache_->Put(base_, capacity_))) ::munmap(base_, capacity_);
  }
  RowBuffer(const RowBuffer&) = delete;
  RowBuffer& operator=(const RowBuffer&) = delete;

  // Space for one more row at the end; throws std::bad_alloc when the
  // mapping cannot grow.
  void* AppendRow() {
    const size_t need = (rows_ + 1) * row_bytes_;
    if (need > capacity_) Grow(need);
    void* row = static_cast<char*>(base_) + rows_ * row_bytes_;
    ++rows_;
    return row;
  }
  void* row(size_t i) { return static_cast<char*>(base_) + i * row_bytes_; }
  const void* row(size_t i) const { return static_cast<const char*>(base_) + i * row_bytes_; }
  const void* data() const { return base_; }
  size_t rows() const { return rows_; }

 private:
  static constexpr size_t kHugePage = 2u << 20;

  void Grow(size_t need) {
    if (base_ == nullptr && cache_) {
      auto [p, bytes] = cache_->Take();
      if (p != nullptr) {
        base_ = p;
        capacity_ = bytes;
        if (capacity_ >= need) return;
      }
    }
    size_t grown = capacity_ ? capacity_ * 2 : kHugePage;
    while (grown < need) grown *= 2;
    void* p = base_ == nullptr ? ::mmap(nullptr, grown, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                               : ::mremap(base_, capacity_, grown, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) throw std::bad_alloc();
    if (huge_pages_) ::madvise(p, grown, MADV_HUGEPAGE);  // advisory: fine when THP is off
    base_ = p;
    capacity_ = grown;
  }

  size_t row_bytes_;
  std::shared_ptr<MappingCache> cache_;
  bool huge_pages_;
  void* base_ = nullptr;
  size_t capacity_ = 0;
  size_t rows_ = 0;
};

// A growable array of trivially copyable T on a RowBuffer: growth moves
// pages instead of copying elements, unlike std::vector.
template <typename T>
class MappedArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  MappedArray() : buf_(sizeof(T)) {}
  void push_back(const T& v) { std::memcpy(buf_.AppendRow(), &v, sizeof(T)); }
  T& operator[](size_t i) { return static_cast<T*>(buf_.row(0))[i]; }
  const T& operator[](size_t i) const { return static_cast<const T*>(buf_.data())[i]; }
  const T* data() const { return static_cast<const T*>(buf_.data()); }
  size_t size() const { return buf_.rows(); }
  bool empty() const { return buf_.rows() == 0; }

 private:
  RowBuffer buf_;
};

}  // namespace pomai
