// The compaction policy (docs/ENGINE.md 4.7): which run of adjacent segments
// to merge next.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pomai::engine {

// A run of segments [first, first + count) in newest-first order; count 0:
// nothing to merge.
struct MergeRun {
  size_t first = 0;
  size_t count = 0;
};

// `weights`: one per live segment, newest first (its entries + rows +
// tombstones + 1). Unforced: nothing while there are at most `max_segments`;
// then the first run (from the newest) in which each next older segment
// weighs at most twice the run so far, else the two newest. Forced: every
// segment into one, a lone segment only when `lone_has_garbage` (it holds
// tombstones or dead rows a merge would drop).
MergeRun PickMergeRun(const std::vector<uint64_t>& weights, size_t max_segments, bool force, bool lone_has_garbage);

}  // namespace pomai::engine
