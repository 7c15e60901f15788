// RowBuffer: a growable, contiguous float matrix for the memtable.
//
// Backed by an anonymous mapping that grows with mremap (the kernel moves
// the pages: nothing is copied or faulted in again) and asks for transparent
// huge pages, so appending rows costs one page fault per 2 MiB instead of one
// per 4 KiB plus a copy per doubling. Not thread-safe; data() may move on
// Append.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstring>
#include <new>

namespace pomai {

class RowBuffer {
 public:
  explicit RowBuffer(size_t row_bytes) : row_bytes_(row_bytes) {}
  ~RowBuffer() {
    if (base_ != nullptr) ::munmap(base_, capacity_);
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
  const void* data() const { return base_; }
  size_t rows() const { return rows_; }
  size_t capacity_bytes() const { return capacity_; }

 private:
  static constexpr size_t kHugePage = 2u << 20;

  void Grow(size_t need) {
    size_t grown = capacity_ ? capacity_ * 2 : kHugePage;
    while (grown < need) grown *= 2;
    void* p = base_ == nullptr ? ::mmap(nullptr, grown, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                               : ::mremap(base_, capacity_, grown, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) throw std::bad_alloc();
    ::madvise(p, grown, MADV_HUGEPAGE);  // advisory: fine when THP is off
    base_ = p;
    capacity_ = grown;
  }

  size_t row_bytes_;
  void* base_ = nullptr;
  size_t capacity_ = 0;
  size_t rows_ = 0;
};

}  // namespace pomai
