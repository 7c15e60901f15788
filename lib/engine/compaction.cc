// Compaction: merging runs of adjacent segments of one shard.
//
// Only segments adjacent in age are merged, so the merged segment can take
// the run's place in the newest-first order without changing what shadows
// what. Within the run the newest entry of an id wins (a row, or a tombstone);
// tombstones are kept unless the run reaches the shard's oldest segment (then
// nothing older is left for them to hide). The merged graph starts from the
// largest input's graph when index::BuildHnswFrom can reuse it (same graph
// params, at least half of the merged rows are its rows), else from nothing.
// Which run to merge: PickMergeRun (compaction.h), which the keyspace engine
// shares. Install order: new segment file durable -> manifest names it
// instead of the inputs -> in-memory version swapped -> input files deleted;
// a crash at any point leaves the old or the new set, never a mix.
#include "engine/compaction.h"

#include <algorithm>
#include <string>

#include "engine/db.h"
#include "engine/db_impl.h"
#include "engine/filename.h"

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

namespace {

// A shard compacts once it has more segments than this.
constexpr size_t kMaxSegments = 4;

}  // namespace

Status DB::Compact(bool force, const ProgressFn& progress_fn) {
  if (closed_) return Status::Closed("database is closed");
  MutexLock c(&compact_mu_);
  Progress progress(progress_fn);
  for (size_t s = 0; s < shards_.size(); ++s) {
    bool did_work = true;
    // The policy may ask for several merges in a row (a forced one needs one).
    while (did_work) {
      if (closed_) return Status::OK();
      POMAI_RETURN_IF_ERROR(CompactShard(s, force, progress.enabled() ? &progress : nullptr, &did_work));
      if (force) break;
    }
  }
  progress.Finish();
  return Status::OK();
}

Status DB::CompactShard(size_t shard_index, bool force, Progress* progress, bool* did_work) {
  *did_work = false;
  Shard* sh = shards_[shard_index].get();
  std::vector<std::shared_ptr<const LiveSegment>> segs;
  {
    MutexLock v(&version_mu_);
    segs = sh->segments;
  }
  std::vector<uint64_t> weights;
  for (const auto& s : segs) weights.push_back(s->seg->row_count() + s->seg->tombstone_count() + 1);
  const MergeRun run = PickMergeRun(weights, kMaxSegments, force, segs.size() == 1 && segs[0]->seg->tombstone_count() > 0);
  const size_t first = run.first, count = run.count;
  if (count == 0) return Status::OK();
  const bool reaches_oldest = first + count == segs.size();
  // Every input is checked whole before any of it is copied (rows,
  // tombstones, metadata and the graph the merge may start from): damage
  // fails the merge with nothing written, rather than being rewritten under
  // new checksums.
  for (size_t r = 0; r < count; ++r) POMAI_RETURN_IF_ERROR(segs[first + r]->seg->CheckAllSections());

  // Newest entry per id across the run: (id, age rank, is tombstone, row).
  struct Entry {
    uint64_t id;
    uint32_t rank;
    bool tombstone;
    uint64_t row;
  };
  std::vector<Entry> entries;
  size_t total = 0;
  for (size_t r = 0; r < count; ++r) total += segs[first + r]->seg->row_count() + segs[first + r]->seg->tombstone_count();
  entries.reserve(total);
  uint64_t min_seq = UINT64_MAX, max_seq = 0;
  for (size_t r = 0; r < count; ++r) {
    const segment::Segment& seg = *segs[first + r]->seg;
    for (uint64_t row = 0; row < seg.row_count(); ++row) entries.push_back({seg.ids()[row], static_cast<uint32_t>(r), false, row});
    for (uint64_t t = 0; t < seg.tombstone_count(); ++t) entries.push_back({seg.tombstones()[t], static_cast<uint32_t>(r), true, 0});
    min_seq = std::min(min_seq, seg.info().min_seq);
    max_seq = std::max(max_seq, seg.info().max_seq);
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.id < b.id || (a.id == b.id && a.rank < b.rank); });

  // The largest input with a graph: its rows that survive keep their links.
  size_t largest = count;
  for (size_t r = 0; r < count; ++r) {
    const LiveSegment& in = *segs[first + r];
    if (in.graph && (largest == count || in.seg->row_count() > segs[first + largest]->seg->row_count())) largest = r;
  }
  std::vector<uint32_t> new_row(largest < count ? segs[first + largest]->seg->row_count() : 0, index::kNoRow);

  MemTable::Sorted merged;
  merged.meta_offsets.push_back(0);
  const uint32_t dim = options_.dim;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0 && entries[i].id == entries[i - 1].id) continue;  // an older version
    const Entry& e = entries[i];
    if (e.tombstone) {
      if (!reaches_oldest) merged.tombstones.push_back(e.id);
      continue;
    }
    const segment::Segment& seg = *segs[first + e.rank]->seg;
    POMAI_ASSIGN_OR_RETURN(std::string_view meta, seg.Metadata(e.row));
    if (e.rank == largest) new_row[e.row] = static_cast<uint32_t>(merged.ids.size());
    merged.ids.push_back(e.id);
    const float* v = seg.vector(e.row);
    merged.vectors.insert(merged.vectors.end(), v, v + dim);
    merged.meta_blob.append(meta);
    merged.meta_offsets.push_back(merged.meta_blob.size());
  }
  entries = {};
  if (closed_) return Status::OK();

  std::shared_ptr<LiveSegment> out;
  if (!merged.ids.empty() || !merged.tombstones.empty()) {
    if (progress && options_.build_graphs && merged.ids.size() >= options_.adaptive_threshold)
      progress->AddTotal(merged.ids.size());
    const index::GraphBase base{largest < count ? segs[first + largest]->graph.get() : nullptr, new_row.data()};
    POMAI_ASSIGN_OR_RETURN(out, WriteLiveSegment(merged, static_cast<uint32_t>(shard_index),
                                                 min_seq == UINT64_MAX ? 0 : min_seq, max_seq, progress,
                                                 base.graph ? &base : nullptr));
  }
  auto drop_output = [&] {
    if (out) (void)env_->RemoveFile(JoinPath(options_.path, files::FileName(files::FileType::kSegment, out->number)));
  };

  // Install, excluding freezes (which also rewrite the manifest).
  MutexLock f(&freeze_mu_);
  if (closed_) {
    drop_output();
    return Status::OK();
  }
  std::vector<uint64_t> inputs;
  for (size_t r = 0; r < count; ++r) inputs.push_back(segs[first + r]->number);
  Manifest next;
  {
    MutexLock m(&manifest_mu_);
    next = manifest_;
  }
  // The manifest lists a shard's segments oldest first: the run is a contiguous
  // stretch there too, which the merged segment (if any) replaces in place.
  auto& list = next.segments[shard_index];
  auto pos = std::find_if(list.begin(), list.end(), [&](const SegmentEntry& e) { return e.file_number == inputs.back(); });
  if (pos == list.end() || static_cast<size_t>(list.end() - pos) < count) {
    drop_output();
    return Status::Internal("compaction inputs are no longer live in shard " + std::to_string(shard_index));
  }
  pos = list.erase(pos, pos + static_cast<std::ptrdiff_t>(count));
  if (out) list.insert(pos, SegmentEntry{out->number, out->seg->row_count()});
  Status ms = WriteManifest(env_, options_.path, next);
  if (!ms.ok()) return ms;  // the output stays: the new manifest may be in place (see DB::FlushImmutables)
  {
    MutexLock m(&manifest_mu_);
    const uint64_t next_file = manifest_.next_file_number;
    manifest_.segments = next.segments;
    manifest_.next_file_number = next_file;
  }
  {
    MutexLock v(&version_mu_);
    auto& live = sh->segments;
    auto it = std::find(live.begin(), live.end(), segs[first]);
    // Freezes only prepend, so the run is still contiguous at `it`.
    it = live.erase(it, it + static_cast<std::ptrdiff_t>(count));
    if (out) live.insert(it, out);
  }
  // Readers still holding the old segments keep their mappings; unlinking is safe.
  for (uint64_t n : inputs) (void)env_->RemoveFile(JoinPath(options_.path, files::FileName(files::FileType::kSegment, n)));
  *did_work = true;
  return Status::OK();
}

Result<std::string> DB::StatsJson() {
  if (closed_) return Status::Closed("database is closed");
  std::string j = "{\"dim\": " + std::to_string(options_.dim) + ", \"shards\": [";
  uint64_t segments = 0, rows = 0, tombstones = 0, bytes = 0, mem_rows = 0, reused_rows = 0;
  for (size_t s = 0; s < shards_.size(); ++s) {
    Shard* sh = shards_[s].get();
    std::vector<std::shared_ptr<const LiveSegment>> segs;
    std::shared_ptr<MemTable> mem, imm;
    {
      MutexLock v(&version_mu_);
      segs = sh->segments;
      mem = sh->mem;
      imm = sh->imm;
    }
    uint64_t shard_mem_rows;
    {
      ReaderLock l(&sh->mem_mu);
      shard_mem_rows = mem->rows() + (imm ? imm->rows() : 0);
    }
    mem_rows += shard_mem_rows;
    j += (s ? ", " : "") + std::string("{\"shard\": ") + std::to_string(s) +
         ", \"memtable_rows\": " + std::to_string(shard_mem_rows) + ", \"segments\": [";
    for (size_t k = 0; k < segs.size(); ++k) {
      const LiveSegment& live = *segs[k];
      ++segments;
      rows += live.seg->row_count();
      tombstones += live.seg->tombstone_count();
      bytes += live.seg->file_size();
      j += (k ? ", " : "") + std::string("{\"file\": \"") + files::FileName(files::FileType::kSegment, live.number) +
           "\", \"rows\": " + std::to_string(live.seg->row_count()) +
           ", \"tombstones\": " + std::to_string(live.seg->tombstone_count()) +
           ", \"bytes\": " + std::to_string(live.seg->file_size());
      if (live.graph) {
        auto gs = live.graph->Stats();
        if (gs.ok()) {
          j += ", \"graph\": {\"m\": " + std::to_string(gs->m) + ", \"ef_construction\": " +
               std::to_string(gs->ef_construction) + ", \"max_level\": " + std::to_string(gs->max_level) +
               ", \"avg_degree0\": " + std::to_string(gs->avg_degree0) + ", \"bytes\": " + std::to_string(gs->bytes) +
               ", \"vectors\": \"" + (gs->sq8 ? "sq8" : "float32") + "\", \"reused_rows\": " +
               std::to_string(gs->reused_rows) + "}";
          reused_rows += gs->reused_rows;
        }
      } else {
        j += ", \"graph\": null";
      }
      j += "}";
    }
    j += "]}";
  }
  POMAI_ASSIGN_OR_RETURN(uint64_t live_rows, Count());
  j += "], \"segments\": " + std::to_string(segments) + ", \"segment_rows\": " + std::to_string(rows) +
       ", \"segment_tombstones\": " + std::to_string(tombstones) + ", \"segment_bytes\": " + std::to_string(bytes) +
       ", \"memtable_rows\": " + std::to_string(mem_rows) + ", \"live_rows\": " + std::to_string(live_rows) +
       ", \"dead_rows\": " + std::to_string(rows + mem_rows > live_rows ? rows + mem_rows - live_rows : 0) +
       ", \"graph_reused_rows\": " + std::to_string(reused_rows) + "}";
  return j;
}

}  // namespace pomai::engine
