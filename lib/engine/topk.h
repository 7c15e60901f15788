// Hit and TopK: the best k hits seen so far, by score descending then id ascending.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace pomai::engine {

struct Hit {
  uint64_t id;
  float score;  // higher is better
  uint32_t shard;
};

// Whether hit a ranks before hit b: higher score, then lower id.
inline bool Better(const Hit& a, const Hit& b) { return a.score > b.score || (a.score == b.score && a.id < b.id); }

class TopK {
 public:
  explicit TopK(size_t k) : k_(k) {}
  size_t k() const { return k_; }
  size_t size() const { return heap_.size(); }

  // Cheap pre-test on the score alone: false only when `score` cannot enter.
  // A NaN score is turned into -infinity first, so the order stays strict.
  bool MayAccept(float& score) const {
    if (std::isnan(score)) score = -std::numeric_limits<float>::infinity();
    return heap_.size() < k_ || score >= heap_.front().score;
  }
  // Exact test, with the id tie-break.
  bool Accepts(float score, uint64_t id) const {
    if (heap_.size() < k_) return true;
    const Hit& worst = heap_.front();
    return score > worst.score || (score == worst.score && id < worst.id);
  }
  // Inserts `h` (which Accepts) and drops the worst when over k.
  void Push(const Hit& h) {
    heap_.push_back(h);
    std::push_heap(heap_.begin(), heap_.end(), Better);
    if (heap_.size() > k_) {
      std::pop_heap(heap_.begin(), heap_.end(), Better);
      heap_.pop_back();
    }
  }
  // Appends the hits, in no particular order.
  void AppendTo(std::vector<Hit>* out) const { out->insert(out->end(), heap_.begin(), heap_.end()); }

 private:
  size_t k_;
  std::vector<Hit> heap_;  // heap_.front() is the worst kept hit
};

}  // namespace pomai::engine
