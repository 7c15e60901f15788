// Internals shared by the engine's .cc files (db.cc, compaction.cc): a
// shard's layers and a consistent view of them. Not part of any API.
#pragma once

#include <cstdint>
#include <algorithm>
#include <functional>
#include <memory>
#include <vector>

#include "engine/db.h"
#include "memtable/memtable.h"

namespace pomai::engine {

// Adds up the graph-build progress of several segments (built in parallel)
// into one (done, total) stream for the user's callback, one call at a time.
class DB::Progress {
 public:
  explicit Progress(const ProgressFn& fn) : fn_(fn) {}
  bool enabled() const { return static_cast<bool>(fn_); }
  void AddTotal(uint64_t rows) {
    MutexLock l(&mu_);
    total_ += rows;
  }
  // A per-segment callback for BuildHnsw, reporting into this aggregate.
  std::function<void(uint64_t, uint64_t)> ForSegment() {
    if (!fn_) return nullptr;
    auto last = std::make_shared<uint64_t>(0);
    return [this, last](uint64_t done, uint64_t) {
      MutexLock l(&mu_);
      done_ += done - *last;
      *last = done;
      fn_(done_, std::max(done_, total_));
    };
  }
  void Finish() {
    MutexLock l(&mu_);
    if (fn_) fn_(std::max(done_, total_), std::max(done_, total_));
  }

 private:
  const ProgressFn& fn_;
  Mutex mu_;
  uint64_t done_ GUARDED_BY(mu_) = 0;
  uint64_t total_ GUARDED_BY(mu_) = 0;
};

struct DB::Shard {
  uint32_t index = 0;
  // The vector mapping of the shard's last retired memtable, for its next one.
  std::shared_ptr<MappingCache> row_cache;
  // Writers of `mem`'s contents hold it exclusively, readers shared.
  SharedMutex mem_mu;
  // The three layer pointers below are guarded by DB::version_mu_.
  std::shared_ptr<MemTable> mem;
  std::shared_ptr<MemTable> imm;  // being frozen; contents immutable
  std::vector<std::shared_ptr<const DB::LiveSegment>> segments;  // newest first
};

// A consistent set of one shard's layers, newest first.
struct ShardView {
  DB::Shard* shard;
  std::shared_ptr<MemTable> mem;
  std::shared_ptr<MemTable> imm;
  std::vector<std::shared_ptr<const DB::LiveSegment>> segments;

  // The view shows the memtables as of this sequence number: versions
  // written after it are neither returned nor let shadow older layers, so a
  // batch applied while a search runs is invisible to it in every shard.
  uint64_t snapshot_seq = UINT64_MAX;

  // False when `mem` held no version written at or before snapshot_seq when
  // the view was taken (set by DB::SnapshotViews): mem then hides nothing
  // from the view, and reading the older layers needs no mem_mu.
  bool mem_may_shadow = true;

  // Whether nothing newer than segment `seg_index` (-1: imm) can hide any of
  // its ids from this view, so a search may skip Shadowed for its rows.
  bool NothingNewerThan(int seg_index) const {
    return !mem_may_shadow && (seg_index == -1 || (imm == nullptr && seg_index == 0));
  }

  // Shadowed, taking the shard's mem_mu only when the memtable can answer
  // and skipping every lookup when nothing newer exists.
  bool Hidden(uint64_t id, int seg_index) const {
    if (NothingNewerThan(seg_index)) return false;
    if (!mem_may_shadow) return Shadowed(id, seg_index);
    ReaderLock l(&shard->mem_mu);
    return Shadowed(id, seg_index);
  }

  // Checks the segment sections a search of segment `seg_index` reads
  // (segment::Segment::CheckSection, once per segment): its ids and vectors,
  // and the ids and tombstones of every newer segment, which Shadowed reads.
  Status CheckSegmentReads(int seg_index) const {
    for (int j = 0; j < seg_index; ++j) {
      POMAI_RETURN_IF_ERROR(segments[j]->seg->CheckSection(segment::SectionKind::kIds));
      POMAI_RETURN_IF_ERROR(segments[j]->seg->CheckSection(segment::SectionKind::kTombstones));
    }
    POMAI_RETURN_IF_ERROR(segments[seg_index]->seg->CheckSection(segment::SectionKind::kIds));
    return segments[seg_index]->seg->CheckSection(segment::SectionKind::kVectors);
  }

  // Whether a layer newer than segment `seg_index` (-1: newer than imm,
  // -2: newer than mem) says anything about `id`. Call with mem_mu shared
  // unless mem_may_shadow is false, and after CheckSegmentReads(seg_index).
  bool Shadowed(uint64_t id, int seg_index) const {
    if (seg_index == -2) return false;
    if (mem_may_shadow && mem->HoldsAt(id, snapshot_seq)) return true;
    if (seg_index == -1) return false;
    if (imm && imm->HoldsAt(id, snapshot_seq)) return true;
    for (int j = 0; j < seg_index; ++j) {
      uint64_t r;
      if (segments[j]->seg->FindRow(id, &r) || segments[j]->seg->HasTombstone(id)) return true;
    }
    return false;
  }
};

}  // namespace pomai::engine
