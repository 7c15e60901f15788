// The tiered merge policy (compaction.h). Only segments adjacent in age are
// merged, so the merged segment can take the run's place in the newest-first
// order without changing what shadows what.
#include "engine/compaction.h"

namespace pomai::engine {

// A run grows while the next older segment weighs at most this many times the run.
constexpr double kSizeRatio = 2.0;

MergeRun PickMergeRun(const std::vector<uint64_t>& weights, size_t max_segments, bool force, bool lone_has_garbage) {
  MergeRun run;
  if (force) {
    if (weights.size() >= 2 || (weights.size() == 1 && lone_has_garbage)) run.count = weights.size();
    return run;
  }
  if (weights.size() <= max_segments) return run;
  for (size_t start = 0; start + 1 < weights.size(); ++start) {
    double total = static_cast<double>(weights[start]);
    size_t k = 1;
    while (start + k < weights.size() && static_cast<double>(weights[start + k]) <= kSizeRatio * total) {
      total += static_cast<double>(weights[start + k]);
      ++k;
    }
    if (k >= 2) {
      run.first = start;
      run.count = k;
      return run;
    }
  }
  // Every segment dwarfs the newer ones: merge the two newest to bound the count.
  run.count = 2;
  return run;
}

}  // namespace pomai::engine
