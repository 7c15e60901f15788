// Internal to lib/index: what graph walks (build and search) share.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace pomai::index::internal {

// A node and its distance to the query (distance = -score: lower is closer).
struct Cand {
  float d;
  uint32_t id;
};

// Heap orders for std::push_heap / pop_heap: front() is the closest, or the farthest.
struct ClosestOnTop {
  bool operator()(const Cand& a, const Cand& b) const { return a.d > b.d; }
};
struct FarthestOnTop {
  bool operator()(const Cand& a, const Cand& b) const { return a.d < b.d; }
};
// Total order for results and neighbour selection: distance, then row.
inline bool CloserThan(const Cand& a, const Cand& b) { return a.d < b.d || (a.d == b.d && a.id < b.id); }

// NaN distances (NaN or infinite inputs) count as infinitely far, so every
// comparison the walks make is a strict weak order.
inline float Distance(float score) {
  const float d = -score;
  return d == d ? d : std::numeric_limits<float>::infinity();
}

// An epoch-tagged visited set: marking costs a store, and a new walk costs
// nothing until the 16-bit epoch wraps (then the marks are cleared once).
// A walk may take several consecutive epochs to give a node more than one
// marked state (the filtered walk's "seen" and "visited").
class VisitedSet {
 public:
  // Starts a walk over `n` nodes with `states` (1 .. 255) epochs, epoch()
  // .. epoch() + states - 1: afterwards no node carries any of them.
  void Begin(size_t n, uint16_t states = 1) {
    if (marks_.size() < n) marks_.resize(n, 0);  // new marks are 0, never a live epoch
    if (last_ > 0xFFFF - states) {
      std::fill(marks_.begin(), marks_.end(), uint16_t{0});
      last_ = 0;
    }
    epoch_ = static_cast<uint16_t>(last_ + 1);
    last_ = static_cast<uint16_t>(last_ + states);
  }
  uint16_t* marks() { return marks_.data(); }
  uint16_t epoch() const { return epoch_; }

 private:
  std::vector<uint16_t> marks_;
  uint16_t epoch_ = 0;
  uint16_t last_ = 0;  // the last epoch handed out
};

// The calling thread's visited set, reused by every walk on this thread.
inline VisitedSet& ThreadVisitedSet() {
  thread_local VisitedSet visited;
  return visited;
}

}  // namespace pomai::index::internal
