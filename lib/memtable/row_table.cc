#include "memtable/row_table.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "util/coding.h"

namespace pomai::memtable {

namespace {

// Copies `bytes` from src (any alignment) to dst with non-temporal stores
// when dst is 16-byte aligned and bytes a multiple of 16 (memcpy otherwise).
// The caller issues the store fence (FenceStreamedStores) before the data is
// published.
inline void StreamCopy(void* dst, const void* src, size_t bytes) {
#if defined(__SSE2__)
  if ((reinterpret_cast<uintptr_t>(dst) & 15) == 0 && (bytes & 15) == 0) {
    auto* d = static_cast<__m128i*>(dst);
    const auto* s = static_cast<const __m128i*>(src);
    for (size_t i = 0; i < bytes / 16; ++i) _mm_stream_si128(d + i, _mm_loadu_si128(s + i));
    return;
  }
#endif
  std::memcpy(dst, src, bytes);
}

inline void FenceStreamedStores() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace

RowTable::RowTable(uint32_t dim, std::shared_ptr<MappingCache> cache)
    : dim_(dim), vectors_(size_t{dim} * sizeof(float), cache, /*huge_pages=*/cache != nullptr) {}

void RowTable::NoteSeq(uint64_t seq) {
  if (min_seq_ == 0 || seq < min_seq_) min_seq_ = seq;
  max_seq_ = std::max(max_seq_, seq);
}

uint32_t RowTable::AppendVersion(uint64_t id, uint64_t seq, const float* vec, bool tombstone, bool stream) {
  NoteSeq(seq);
  const uint32_t row = static_cast<uint32_t>(ids_.size());
  float* dst = static_cast<float*>(vectors_.AppendRow());
  if (vec != nullptr) {
    if (stream) {
      StreamCopy(dst, vec, dim_ * sizeof(float));
    } else {
      std::memcpy(dst, vec, dim_ * sizeof(float));
    }
  } else {
    std::memset(dst, 0, dim_ * sizeof(float));
  }
  ids_.push_back(id);
  deleted_.push_back(tombstone ? 1 : 0);
  first_seq_.push_back(seq);
  next_.push_back(IdIndex::kNone);
  const uint32_t old = index_.Exchange(id, row);
  if (old == IdIndex::kNone) {
    origin_.push_back(row);
    if (tombstone) ++deleted_count_;
  } else {
    origin_.push_back(origin_[old]);
    next_[old] = row;
    if (deleted_[old] && !tombstone) --deleted_count_;
    if (!deleted_[old] && tombstone) ++deleted_count_;
  }
  return row;
}

void RowTable::Put(uint64_t id, uint64_t seq, const float* vec, std::string_view meta) {
  const uint32_t row = AppendVersion(id, seq, vec, false);
  if (!meta.empty()) SetMetadata(row, meta);
  attrs_.AppendNulls(1);
}

void RowTable::PutRows(uint64_t seq, const uint8_t* ids, const float* vectors, const uint32_t* sel, size_t n) {
  AppendRows(seq, ids, vectors, sel, n);
  attrs_.AppendNulls(n);
}

Status RowTable::PutBatch(uint64_t seq, const uint8_t* ids, const float* vectors, size_t n,
                          const uint64_t* meta_offsets, std::string_view meta_blob,
                          const std::vector<AttrColumn>& columns) {
  POMAI_RETURN_IF_ERROR(attrs_.CheckTypes(columns));
  assert(CheckAttrColumns(columns, n).ok());
  const size_t first = rows();
  AppendRows(seq, ids, vectors, nullptr, n);
  if (meta_offsets != nullptr) {
    for (size_t j = 0; j < n; ++j) {
      const auto row = static_cast<uint32_t>(first + j);
      SetMetadata(row, meta_blob.substr(meta_offsets[j], meta_offsets[j + 1] - meta_offsets[j]));
    }
  }
  attrs_.Append(columns, n);
  return Status::OK();
}

void RowTable::AppendRows(uint64_t seq, const uint8_t* ids, const float* vectors, const uint32_t* sel, size_t n) {
  const auto pick = [sel](size_t j) -> size_t { return sel ? sel[j] : j; };
  // The id index is a large random-access table: start loading the slots of
  // the next few ids while this one is stored.
  constexpr size_t kAhead = 8;
  for (size_t j = 0; j < std::min(n, kAhead); ++j) index_.Prefetch(DecodeFixed64(ids + pick(j) * 8));
  for (size_t j = 0; j < n; ++j) {
    if (j + kAhead < n) index_.Prefetch(DecodeFixed64(ids + pick(j + kAhead) * 8));
    const size_t i = pick(j);
    AppendVersion(DecodeFixed64(ids + i * 8), seq, vectors + i * dim_, false, /*stream=*/true);
  }
  FenceStreamedStores();
}

void RowTable::SetMetadata(uint32_t row, std::string_view meta) {
  if (row >= metadata_.size()) {
    if (meta.empty()) return;
    metadata_.resize(size_t{row} + 1);
  }
  metadata_bytes_ = metadata_bytes_ - metadata_[row].size() + meta.size();
  if (meta.empty()) {
    std::string().swap(metadata_[row]);
  } else {
    metadata_[row].assign(meta.data(), meta.size());
  }
}

void RowTable::Delete(uint64_t id, uint64_t seq) {
  const uint32_t r = index_.Find(id);
  if (r != IdIndex::kNone && deleted_[r]) {  // already deleted: nothing changes at any snapshot
    NoteSeq(seq);
    return;
  }
  AppendVersion(id, seq, nullptr, true);
  attrs_.AppendNulls(1);
}

Status RowTable::Column(std::string_view name, filter::ColumnRef* out, bool* present) const {
  *present = attrs_.Get(name, out);
  return Status::OK();
}

size_t RowTable::bytes() const {
  // Per row: the vector, id, tombstone flag, seq, next and origin, and about
  // two id index slots of 16 bytes.
  const size_t per_row = size_t{dim_} * sizeof(float) + 8 + 1 + 8 + 4 + 4 + 32;
  return rows() * per_row + metadata_.capacity() * sizeof(std::string) + metadata_bytes_ + attrs_.ByteSize();
}

RowTable::State RowTable::Find(uint64_t id, size_t* row) const {
  const uint32_t r = index_.Find(id);
  if (r == IdIndex::kNone) return State::kAbsent;
  *row = r;
  return deleted_[r] ? State::kDeleted : State::kLive;
}

RowTable::State RowTable::FindAt(uint64_t id, uint64_t seq, size_t* row) const {
  uint32_t r = index_.Find(id);
  if (r == IdIndex::kNone) return State::kAbsent;
  if (first_seq_[r] > seq) {  // walk from the id's first version to the last one at or before seq
    r = origin_[r];
    if (first_seq_[r] > seq) return State::kAbsent;
    while (next_[r] != IdIndex::kNone && first_seq_[next_[r]] <= seq) r = next_[r];
  }
  *row = r;
  return deleted_[r] ? State::kDeleted : State::kLive;
}

RowTable::Sorted RowTable::SortedContents() const {
  std::vector<size_t> order;
  order.reserve(index_.size());
  for (size_t row = 0; row < ids_.size(); ++row)
    if (next_[row] == IdIndex::kNone) order.push_back(row);
  std::sort(order.begin(), order.end(), [this](size_t a, size_t b) { return ids_[a] < ids_[b]; });
  Sorted out;
  out.ids.reserve(live_count());
  out.vectors.reserve(live_count() * dim_);
  out.meta_offsets.reserve(live_count() + 1);
  out.meta_offsets.push_back(0);
  out.meta_blob.reserve(metadata_bytes_);
  std::vector<filter::ColumnRef> refs;
  for (const auto& [name, type] : attrs_.columns()) {
    out.columns.push_back(AttrColumn::Make(name, type));
    refs.emplace_back();
    attrs_.Get(name, &refs.back());
  }
  for (size_t row : order) {
    if (deleted_[row]) {
      out.tombstones.push_back(ids_[row]);
      out.tombstone_seqs.push_back(first_seq_[row]);
      continue;
    }
    out.ids.push_back(ids_[row]);
    out.seqs.push_back(first_seq_[row]);
    const float* v = vector(row);
    out.vectors.insert(out.vectors.end(), v, v + dim_);
    out.meta_blob.append(metadata(row));
    out.meta_offsets.push_back(out.meta_blob.size());
    for (size_t c = 0; c < refs.size(); ++c) filter::AppendRow(refs[c], true, row, &out.columns[c]);
  }
  return out;
}

}  // namespace pomai::memtable
