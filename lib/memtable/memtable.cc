#include "memtable/memtable.h"

#include <algorithm>
#include <cstring>
#include <numeric>

namespace pomai {

MemTable::MemTable(uint32_t dim) : dim_(dim) {}

void MemTable::NoteSeq(uint64_t seq) {
  if (min_seq_ == 0 || seq < min_seq_) min_seq_ = seq;
  max_seq_ = std::max(max_seq_, seq);
}

void MemTable::Put(uint64_t id, uint64_t seq, const float* vec, std::string_view meta) {
  NoteSeq(seq);
  auto [it, inserted] = index_.try_emplace(id, ids_.size());
  size_t row = it->second;
  if (inserted) {
    ids_.push_back(id);
    vectors_.resize(vectors_.size() + dim_);
    std::memcpy(vectors_.data() + row * dim_, vec, dim_ * sizeof(float));
    metadata_.emplace_back(meta);
    metadata_bytes_ += meta.size();
    deleted_.push_back(0);
    first_seq_.push_back(seq);
    return;
  }
  std::memcpy(vectors_.data() + row * dim_, vec, dim_ * sizeof(float));
  metadata_bytes_ = metadata_bytes_ - metadata_[row].size() + meta.size();
  metadata_[row].assign(meta.data(), meta.size());
  if (deleted_[row]) {
    deleted_[row] = 0;
    --deleted_count_;
  }
}

void MemTable::Delete(uint64_t id, uint64_t seq) {
  NoteSeq(seq);
  auto [it, inserted] = index_.try_emplace(id, ids_.size());
  size_t row = it->second;
  if (inserted) {
    // A tombstone for an id this memtable never held: it shadows older layers.
    ids_.push_back(id);
    vectors_.resize(vectors_.size() + dim_, 0.0f);
    metadata_.emplace_back();
    deleted_.push_back(1);
    first_seq_.push_back(seq);
    ++deleted_count_;
    return;
  }
  if (!deleted_[row]) {
    deleted_[row] = 1;
    ++deleted_count_;
    metadata_bytes_ -= metadata_[row].size();
    std::string().swap(metadata_[row]);
  }
}

MemTable::State MemTable::Find(uint64_t id, size_t* row) const {
  auto it = index_.find(id);
  if (it == index_.end()) return State::kAbsent;
  *row = it->second;
  return deleted_[it->second] ? State::kDeleted : State::kLive;
}

size_t MemTable::ApproximateMemoryUsage() const {
  return vectors_.capacity() * sizeof(float) + ids_.capacity() * (2 * sizeof(uint64_t) + sizeof(std::string) + 1) +
         metadata_bytes_ + index_.size() * 32;
}

MemTable::Sorted MemTable::SortedContents() const {
  std::vector<size_t> order(ids_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [this](size_t a, size_t b) { return ids_[a] < ids_[b]; });
  Sorted out;
  out.ids.reserve(live_count());
  out.vectors.reserve(live_count() * dim_);
  out.meta_offsets.reserve(live_count() + 1);
  out.meta_offsets.push_back(0);
  out.meta_blob.reserve(metadata_bytes_);
  for (size_t row : order) {
    if (deleted_[row]) {
      out.tombstones.push_back(ids_[row]);
      continue;
    }
    out.ids.push_back(ids_[row]);
    const float* v = vector(row);
    out.vectors.insert(out.vectors.end(), v, v + dim_);
    out.meta_blob.append(metadata_[row]);
    out.meta_offsets.push_back(out.meta_blob.size());
  }
  return out;
}

}  // namespace pomai
