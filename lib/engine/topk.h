// TopK: the best k hits seen so far, by score descending then key ascending
// (docs/ENGINE.md 4.5: one top-k for both faces). A hit type H has a `float
// score` and a key, HitKey(h), ordered by <: the u64 id of a pomaidb Hit, or
// the internal key of a keyspace hit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace pomai::engine {

struct Hit {
  uint64_t id;
  float score;  // higher is better
  uint32_t shard;
};
inline uint64_t HitKey(const Hit& h) { return h.id; }

// Whether hit a ranks before hit b: higher score, then the smaller key.
template <class H>
bool Better(const H& a, const H& b) {
  return a.score > b.score || (a.score == b.score && HitKey(a) < HitKey(b));
}

template <class H>
class TopKOf {
 public:
  using Key = decltype(HitKey(std::declval<const H&>()));

  explicit TopKOf(size_t k) : k_(k) {}
  size_t k() const { return k_; }
  size_t size() const { return heap_.size(); }

  // Cheap pre-test on the score alone: false only when `score` cannot enter.
  // A NaN score is turned into -infinity first, so the order stays strict.
  bool MayAccept(float& score) const {
    if (std::isnan(score)) score = -std::numeric_limits<float>::infinity();
    return heap_.size() < k_ || (k_ > 0 && score >= heap_.front().score);
  }
  // Exact test, with the key tie-break.
  bool Accepts(float score, const Key& key) const {
    if (heap_.size() < k_) return true;
    if (k_ == 0) return false;
    const H& worst = heap_.front();
    return score > worst.score || (score == worst.score && key < HitKey(worst));
  }
  // Inserts `h` (which Accepts) and drops the worst when over k.
  void Push(const H& h) {
    heap_.push_back(h);
    std::push_heap(heap_.begin(), heap_.end(), Better<H>);
    if (heap_.size() > k_) {
      std::pop_heap(heap_.begin(), heap_.end(), Better<H>);
      heap_.pop_back();
    }
  }
  // MayAccept, Accepts and Push in one.
  void Offer(const H& h) {
    float score = h.score;
    if (!MayAccept(score) || !Accepts(score, HitKey(h))) return;
    H copy = h;
    copy.score = score;
    Push(copy);
  }
  // Appends the hits, in no particular order.
  void AppendTo(std::vector<H>* out) const { out->insert(out->end(), heap_.begin(), heap_.end()); }
  // The hits, best first; empties the heap.
  std::vector<H> TakeSorted() {
    std::sort_heap(heap_.begin(), heap_.end(), Better<H>);
    return std::move(heap_);
  }

 private:
  size_t k_;
  std::vector<H> heap_;  // heap_.front() is the worst kept hit
};

using TopK = TopKOf<Hit>;

}  // namespace pomai::engine
