// IdIndex: u64 id -> u32 row, an open-addressing hash table with linear
// probing (no allocation per insert, unlike std::unordered_map). Grows at
// 50% load. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pomai {

class IdIndex {
 public:
  static constexpr uint32_t kNone = 0xFFFFFFFFu;

  // The row of `id`, or kNone.
  uint32_t Find(uint64_t id) const {
    if (slots_.empty()) return kNone;
    for (size_t i = Hash(id) & mask_;; i = (i + 1) & mask_) {
      const Entry& s = slots_[i];
      if (s.row == kNone) return kNone;
      if (s.id == id) return s.row;
    }
  }

  // Inserts id -> row unless `id` is present; returns the row stored for `id`.
  uint32_t FindOrInsert(uint64_t id, uint32_t row) { return *SlotOf(id, row); }

  // Maps `id` to `row`; returns the row it had before, or kNone.
  uint32_t Exchange(uint64_t id, uint32_t row) {
    uint32_t* slot = SlotOf(id, row);
    const uint32_t old = *slot;
    *slot = row;
    return old == row ? kNone : old;
  }

  // Prefetches the first slot `id` probes (a hint; no effect on contents).
  void Prefetch(uint64_t id) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[Hash(id) & mask_], 1);
  }

  // Makes room for `n` ids without growing (a hint: fewer is a no-op).
  void Reserve(size_t n) {
    size_t slots = 1024;
    while (slots < 2 * n + 2) slots *= 2;
    if (slots > slots_.size()) Rehash(slots);
  }

  size_t size() const { return size_; }

 private:
  // The row field of `id`'s entry, inserting id -> row when absent.
  uint32_t* SlotOf(uint64_t id, uint32_t row) {
    if ((size_ + 1) * 2 > slots_.size()) Grow();
    for (size_t i = Hash(id) & mask_;; i = (i + 1) & mask_) {
      Entry& s = slots_[i];
      if (s.row == kNone) {
        s = {id, row};
        ++size_;
        return &s.row;
      }
      if (s.id == id) return &s.row;
    }
  }

  struct Entry {
    uint64_t id;
    uint32_t row;
  };

  static size_t Hash(uint64_t x) {  // splitmix64 finaliser: sequential ids spread well
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return static_cast<size_t>(x);
  }

  void Grow() { Rehash(slots_.empty() ? 1024 : slots_.size() * 2); }

  void Rehash(size_t slots) {
    std::vector<Entry> old;
    old.swap(slots_);
    slots_.assign(slots, Entry{0, kNone});
    mask_ = slots_.size() - 1;
    size_ = 0;
    // Rows go back in at random places: prefetch a few entries ahead.
    constexpr size_t kAhead = 8;
    for (size_t i = 0; i < old.size(); ++i) {
      if (i + kAhead < old.size() && old[i + kAhead].row != kNone) Prefetch(old[i + kAhead].id);
      if (old[i].row != kNone) FindOrInsert(old[i].id, old[i].row);
    }
  }

  std::vector<Entry> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace pomai
