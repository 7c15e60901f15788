// Bitmap: one bit per row of a layer, the form a filter takes before a
// search, count, delete or scan uses it (docs/FILTERS.md, "Execution").
// Bit r is bit (r % 64) of word r / 64; bits at and past size() are zero.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pomai {

class Bitmap {
 public:
  Bitmap() = default;
  // `bits` bits, all set to `value`.
  explicit Bitmap(size_t bits, bool value = false) { Reset(bits, value); }

  void Reset(size_t bits, bool value) {
    bits_ = bits;
    words_.assign((bits + 63) / 64, value ? ~uint64_t{0} : 0);
    ClearTail();
  }
  size_t size() const { return bits_; }
  bool Get(size_t i) const { return (words_[i >> 6] >> (i & 63)) & 1; }
  void Set(size_t i) { words_[i >> 6] |= uint64_t{1} << (i & 63); }
  void Clear(size_t i) { words_[i >> 6] &= ~(uint64_t{1} << (i & 63)); }
  void Assign(size_t i, bool v) { v ? Set(i) : Clear(i); }

  // Number of set bits.
  size_t Count() const {
    size_t n = 0;
    for (uint64_t w : words_) n += static_cast<size_t>(std::popcount(w));
    return n;
  }
  // Word-wise operations with a bitmap of the same size.
  void And(const Bitmap& o) {
    for (size_t w = 0; w < words_.size(); ++w) words_[w] &= o.words_[w];
  }
  void Or(const Bitmap& o) {
    for (size_t w = 0; w < words_.size(); ++w) words_[w] |= o.words_[w];
  }
  void AndNot(const Bitmap& o) {
    for (size_t w = 0; w < words_.size(); ++w) words_[w] &= ~o.words_[w];
  }
  void Not() {
    for (uint64_t& w : words_) w = ~w;
    ClearTail();
  }
  // Calls f(i) for every set bit i, ascending.
  template <class F>
  void ForEach(F&& f) const {
    for (size_t w = 0; w < words_.size(); ++w) {
      for (uint64_t bits = words_[w]; bits != 0; bits &= bits - 1)
        f(w * 64 + static_cast<size_t>(std::countr_zero(bits)));
    }
  }

  // Calls f(i) for every set bit i in [begin, end), ascending: a word at a
  // time, so sparse ranges cost a load per 64 bits.
  template <class F>
  void ForEachIn(size_t begin, size_t end, F&& f) const {
    if (begin >= end) return;
    for (size_t w = begin / 64; w * 64 < end; ++w) {
      uint64_t bits = words_[w];
      if (w * 64 < begin) bits &= ~uint64_t{0} << (begin % 64);
      if ((w + 1) * 64 > end) bits &= (end % 64 == 0) ? ~uint64_t{0} : (uint64_t{1} << (end % 64)) - 1;
      for (; bits != 0; bits &= bits - 1) f(w * 64 + static_cast<size_t>(std::countr_zero(bits)));
    }
  }

  uint64_t* words() { return words_.data(); }
  const uint64_t* words() const { return words_.data(); }
  size_t word_count() const { return words_.size(); }
  // After writing whole words through words(): zero the bits past size().
  void ClearTail() {
    if (bits_ % 64 != 0) words_.back() &= (uint64_t{1} << (bits_ % 64)) - 1;
  }

 private:
  size_t bits_ = 0;
  std::vector<uint64_t> words_;
};

}  // namespace pomai
