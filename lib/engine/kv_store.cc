#include "engine/kv_store.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <new>

#include "engine/kv_db.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "util/limits.h"

namespace pomai::engine::kv {

VersionView ViewOf(uint64_t seq, const Value& v) {
  VersionView out;
  out.seq = seq;
  out.kind = v.kind;
  out.metric = v.metric;
  out.has_metadata = v.has_metadata;
  out.bytes = v.bytes;
  if (v.kind == ValueKind::kVector) {
    out.vec = v.vec.data();
    out.dim = static_cast<uint32_t>(v.vec.size());
  }
  return out;
}

// ---------------------------------------------------------------------------
// MemTable

namespace {
constexpr size_t kVersionOverhead = 48;  // map node share and version slot
}  // namespace

namespace {
// A fast 64-bit hash of a key for the slot table (in memory only, never
// stored): 8 bytes at a time through a multiply-xorshift, then the murmur3
// finaliser, so that the low bits that pick a slot depend on every byte.
// Never 0 (0 marks an empty slot).
uint64_t HashKey(std::string_view key) {
  const char* p = key.data();
  size_t n = key.size();
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x94D049BB133111EBull;
  }
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  return h | 1;
}
constexpr size_t kArenaBlock = 256 << 10;
constexpr size_t kVectorBlockBytes = 1 << 20;
}  // namespace

const Value* MemTable::Versions::Visible(uint64_t snap, uint64_t* seq) const {
  if (newest_seq <= snap) {
    *seq = newest_seq;
    return newest.get();
  }
  for (const Version& v : older) {
    if (v.seq <= snap) {
      *seq = v.seq;
      return v.value.get();
    }
  }
  return nullptr;
}

const MemTable::Slot* MemTable::FindSlot(std::string_view key, uint64_t h) const {
  if (slots_.empty()) return nullptr;
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.hash == 0) return nullptr;
    if (s.hash == h && s.head->key_len == key.size() && std::memcmp(s.head->key(), key.data(), key.size()) == 0)
      return &s;
  }
}

MemTable::Slot* MemTable::Index(uint64_t h) {
  if ((map_.size() + 1) * 2 > slots_.size()) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(std::max<size_t>(64, old.size() * 2), Slot{});
    const size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.hash == 0) continue;
      size_t i = s.hash & mask;
      while (slots_[i].hash != 0) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
  const size_t mask = slots_.size() - 1;
  size_t i = h & mask;
  while (slots_[i].hash != 0) i = (i + 1) & mask;
  slots_[i].hash = h;
  return &slots_[i];
}

char* MemTable::Allocate(size_t n) {
  n = (n + 7) & ~size_t{7};
  bytes_ += n;
  if (n > kArenaBlock / 4) {
    // A big head gets a block of its own; the current block keeps its room.
    arena_.emplace_back(new char[n]);
    return arena_.back().get();
  }
  if (n > arena_left_) {
    // Blocks grow from 4 KiB, so a small memtable stays small; a new block is
    // never smaller than the head it is made for (n <= kArenaBlock / 4).
    arena_block_ = std::max(n, std::min(kArenaBlock, std::max<size_t>(4096, arena_block_ * 2)));
    arena_.emplace_back(new char[arena_block_]);
    arena_next_ = arena_.back().get();
    arena_left_ = arena_block_;
  }
  char* p = arena_next_;
  arena_next_ += n;
  arena_left_ -= n;
  return p;
}

const MemTable::Head* MemTable::NewHead(std::string_view key, Versions* versions) {
  const Value& v = *versions->newest;
  const bool plain = v.kind == ValueKind::kTombstone ||
                     (v.kind == ValueKind::kBytes && !v.has_metadata && v.metric == Value{}.metric &&
                      v.bytes.size() <= kInlineValueMax);
  const size_t value_len = plain && v.kind == ValueKind::kBytes ? v.bytes.size() : 0;
  char* p = Allocate(sizeof(Head) + key.size() + value_len);
  Head* head = new (p) Head{};
  head->seq = versions->newest_seq;
  head->versions = versions;
  head->key_len = static_cast<uint32_t>(key.size());
  head->bytes_len = static_cast<uint32_t>(value_len);
  head->kind = v.kind;
  head->plain = plain;
  std::memcpy(p + sizeof(Head), key.data(), key.size());
  if (value_len > 0) std::memcpy(p + sizeof(Head) + key.size(), v.bytes.data(), value_len);
  return head;
}

bool MemTable::Get(std::string_view key, uint64_t snap, VersionView* out) const {
  const uint64_t h = HashKey(key);
  ReaderLock l(&mu_);
  const Slot* s = FindSlot(key, h);
  if (s == nullptr) return false;
  const Head& head = *s->head;
  if (head.plain && head.seq <= snap) {
    *out = VersionView{};
    out->seq = head.seq;
    out->kind = head.kind;
    out->bytes = std::string_view(head.bytes(), head.bytes_len);
    return true;
  }
  uint64_t seq = 0;
  const Value* v = head.versions->Visible(snap, &seq);
  if (v == nullptr) return false;
  *out = ViewOf(seq, *v);
  return true;
}

uint64_t MemTable::LatestSeq(std::string_view key) const {
  const uint64_t h = HashKey(key);
  ReaderLock l(&mu_);
  const Slot* s = FindSlot(key, h);
  return s == nullptr ? 0 : s->head->seq;
}

uint64_t MemTable::Apply(uint64_t seq, const std::vector<Write>& writes, uint64_t min_snapshot) {
  WriterLock l(&mu_);
  for (const Write& w : writes) {
    const uint64_t h = HashKey(w.key);
    Slot* slot = const_cast<Slot*>(FindSlot(w.key, h));
    Versions* versions;
    if (slot == nullptr) {
      versions = &map_.emplace(w.key, Versions{}).first->second;
      slot = Index(h);
      bytes_ += w.key.capacity() + kVersionOverhead + 2 * sizeof(Slot);
    } else {
      versions = slot->head->versions;
    }
    Versions& vs = *versions;
    if (vs.column != kNoRow) {
      columns_[vs.column].rows[vs.row].superseded = seq;
      vs.column = kNoRow;
    }
    if (vs.newest) vs.older.insert(vs.older.begin(), Version{vs.newest_seq, std::move(vs.newest)});
    vs.newest_seq = seq;
    vs.newest = w.value;
    bytes_ += w.value->MemoryBytes() + kVersionOverhead;
    // Keep every version newer than the oldest snapshot, and the newest one
    // that snapshot can see; older ones are invisible to everybody.
    size_t keep = vs.older.size();
    if (vs.newest_seq <= min_snapshot) {
      keep = 0;
    } else {
      for (size_t i = 0; i < vs.older.size(); ++i) {
        if (vs.older[i].seq <= min_snapshot) {
          keep = i + 1;
          break;
        }
      }
    }
    for (size_t i = keep; i < vs.older.size(); ++i) bytes_ -= vs.older[i].value->MemoryBytes() + kVersionOverhead;
    vs.older.resize(keep);
    slot->head = NewHead(w.key, versions);
    if (w.value->kind == ValueKind::kVector && !w.key.empty() && static_cast<uint8_t>(w.key[0]) == kUserNs)
      AddVectorRow(std::string_view(slot->head->key(), slot->head->key_len), seq, *w.value, versions);
  }
  max_seq_ = std::max(max_seq_, seq);
  return bytes_;
}

void MemTable::AddVectorRow(std::string_view key, uint64_t seq, const Value& v, Versions* versions) {
  const uint32_t dim = static_cast<uint32_t>(v.vec.size());
  size_t c = 0;
  while (c < columns_.size() && columns_[c].dim != dim) ++c;
  if (c == columns_.size()) {
    VectorColumn col;
    col.dim = dim;
    col.rows_per_block = static_cast<uint32_t>(std::max<size_t>(16, kVectorBlockBytes / (size_t{dim} * sizeof(float))));
    columns_.push_back(std::move(col));
  }
  VectorColumn& col = columns_[c];
  const size_t r = col.rows.size();
  if (r % col.rows_per_block == 0) col.blocks.emplace_back(new float[size_t{col.rows_per_block} * dim]);
  std::memcpy(col.blocks.back().get() + (r % col.rows_per_block) * dim, v.vec.data(), size_t{dim} * sizeof(float));
  col.rows.push_back(RowInfo{seq, UINT64_MAX, key, &v, v.metric});
  versions->column = static_cast<uint32_t>(c);
  versions->row = static_cast<uint32_t>(r);
  bytes_ += size_t{dim} * sizeof(float) + sizeof(RowInfo);
}

void MemTable::VisibleVectors(uint64_t snap, std::vector<VisibleVector>* out) const {
  out->clear();
  ReaderLock l(&mu_);
  for (const VectorColumn& col : columns_) {
    for (size_t r = 0; r < col.rows.size(); ++r) {
      const RowInfo& info = col.rows[r];
      if (info.seq > snap || info.superseded <= snap) continue;
      const float* row = col.blocks[r / col.rows_per_block].get() + (r % col.rows_per_block) * col.dim;
      out->push_back(VisibleVector{row, info.key, info.value, info.seq, col.dim, info.metric});
    }
  }
}

void MemTable::Scan(std::string_view lo, std::string_view hi, uint64_t snap,
                    const std::function<void(std::string_view, const VersionView&)>& fn) const {
  ReaderLock l(&mu_);
  for (auto it = map_.lower_bound(lo); it != map_.end(); ++it) {
    if (!hi.empty() && std::string_view(it->first) >= hi) break;
    uint64_t seq = 0;
    if (const Value* v = it->second.Visible(snap, &seq)) fn(it->first, ViewOf(seq, *v));
  }
}

void MemTable::Newest(const std::function<void(const std::string&, uint64_t, const Value&)>& fn) const {
  ReaderLock l(&mu_);
  for (const auto& [key, versions] : map_) {
    if (versions.newest) fn(key, versions.newest_seq, *versions.newest);
  }
}

uint64_t MemTable::bytes() const {
  ReaderLock l(&mu_);
  return bytes_;
}

bool MemTable::empty() const {
  ReaderLock l(&mu_);
  return map_.empty();
}

uint64_t MemTable::max_seq() const {
  ReaderLock l(&mu_);
  return max_seq_;
}

// ---------------------------------------------------------------------------
// Segment

namespace {

constexpr uint32_t kNoGroup = 0xFFFFFFFFu;

void PadTo64(std::string* s) { s->resize((s->size() + 63) / 64 * 64, '\0'); }

}  // namespace

struct Segment::KeyIndexCheck {
  std::once_flag once;
  Status status;
};

struct Segment::GroupCheck {
  std::once_flag once;
  Status status;
  // Once the group checks: a bit per row whose entry ReadRow has checked
  // whole (the mapping never changes), so later searches skip its CRC.
  std::unique_ptr<std::atomic<uint64_t>[]> bits;
  std::atomic<std::atomic<uint64_t>*> verified{nullptr};
};

Segment::~Segment() = default;

Status Segment::Write(Env* env, const std::string& dir, const std::string& name, const std::vector<Input>& entries,
                      uint64_t min_seq, uint64_t max_seq) {
  for (size_t i = 1; i < entries.size(); ++i) {
    if (!(entries[i - 1].key < entries[i].key)) {
      return Status::InvalidArgument("KV segment keys are not strictly ascending at entry " + std::to_string(i));
    }
  }
  std::string ent, keys, values, groups, rows, data;
  ent.reserve(entries.size() * kEntrySize);
  // Vector rows grouped by (namespace, dim), in entry order within a group.
  std::map<std::pair<uint8_t, uint32_t>, std::vector<uint32_t>> by_group;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Value& v = *entries[i].value;
    if (v.kind == ValueKind::kVector) {
      const uint8_t ns = entries[i].key.empty() ? 0 : static_cast<uint8_t>(entries[i].key[0]);
      by_group[{ns, static_cast<uint32_t>(v.vec.size())}].push_back(static_cast<uint32_t>(i));
    }
  }
  std::vector<uint32_t> group_of(entries.size(), kNoGroup), row_of(entries.size(), kNoGroup);
  uint32_t g = 0;
  for (const auto& [gk, members] : by_group) {
    PadTo64(&data);
    const size_t data_start = data.size(), rows_start = rows.size();
    for (size_t r = 0; r < members.size(); ++r) {
      const uint32_t idx = members[r];
      PutFixed32(&rows, idx);
      const Value& v = *entries[idx].value;
      PutBytes(&data, v.vec.data(), v.vec.size() * sizeof(float));
      group_of[idx] = g;
      row_of[idx] = static_cast<uint32_t>(r);
    }
    uint8_t ge[kGroupSize] = {};
    ge[0] = gk.first;
    EncodeFixed32(ge + 4, gk.second);
    EncodeFixed64(ge + 8, members.size());
    EncodeFixed64(ge + 16, data_start);
    EncodeFixed64(ge + 24, rows_start / 4);
    EncodeFixed32(ge + 32, crc32c::Value(data.data() + data_start, data.size() - data_start));
    EncodeFixed32(ge + 36, crc32c::Value(rows.data() + rows_start, rows.size() - rows_start));
    EncodeFixed32(ge + 44, crc32c::Value(ge, 44));
    PutBytes(&groups, ge, sizeof(ge));
    ++g;
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    const Value& v = *entries[i].value;
    const bool is_vec = v.kind == ValueKind::kVector;
    const std::string_view value = v.kind == ValueKind::kTombstone ? std::string_view() : std::string_view(v.bytes);
    uint8_t e[kEntrySize] = {};
    EncodeFixed64(e, keys.size());
    EncodeFixed32(e + 8, static_cast<uint32_t>(entries[i].key.size()));
    e[12] = static_cast<uint8_t>(v.kind);
    e[13] = static_cast<uint8_t>(v.metric);
    e[14] = v.has_metadata ? 1 : 0;
    EncodeFixed64(e + 16, entries[i].seq);
    EncodeFixed64(e + 24, values.size());
    EncodeFixed64(e + 32, value.size());
    EncodeFixed32(e + 40, is_vec ? static_cast<uint32_t>(v.vec.size()) : 0);
    EncodeFixed32(e + 44, group_of[i]);
    EncodeFixed32(e + 48, row_of[i]);
    uint32_t crc = crc32c::Value(e, 52);
    crc = crc32c::Extend(crc, entries[i].key.data(), entries[i].key.size());
    crc = crc32c::Extend(crc, value.data(), value.size());
    if (is_vec) crc = crc32c::Extend(crc, v.vec.data(), v.vec.size() * sizeof(float));
    EncodeFixed32(e + 52, crc);
    PutBytes(&ent, e, sizeof(e));
    keys.append(entries[i].key);
    values.append(value);
  }
  std::string format;
  PutFixed32(&format, kKvFormatVersion);
  PutFixed32(&format, 0);
  segment::SegmentContents c;
  c.info.dim = 1;
  c.info.shard = kKvSegmentMarker;
  c.info.min_seq = min_seq;
  c.info.max_seq = max_seq;
  c.extra = {{KindNumber(SectionKind::kKvEntries), ent},       {KindNumber(SectionKind::kKvKeys), keys},
             {KindNumber(SectionKind::kKvValues), values},     {KindNumber(SectionKind::kKvGroups), groups},
             {KindNumber(SectionKind::kKvVectorRows), rows},   {KindNumber(SectionKind::kKvVectorData), data},
             {KindNumber(SectionKind::kKvFormat), format}};
  return segment::WriteSegment(env, dir, name, c);
}

Result<std::shared_ptr<Segment>> Segment::Open(Env* env, const std::string& path, uint64_t number) {
  // The container's header, footer and section table only: no section
  // checksum (that would read the whole file). Entries are checked when read.
  POMAI_ASSIGN_OR_RETURN(std::shared_ptr<segment::Segment> seg, segment::Segment::Open(env, path));
  const char* base = seg->base();
  auto off = [base](std::string_view s) { return static_cast<uint64_t>(s.data() - base); };
  if (seg->info().shard != kKvSegmentMarker || seg->row_count() != 0) {
    return Status::Corruption(path, 24, "not a keyspace segment (u64-id segment in a keyspace database)");
  }
  std::string_view format = seg->Section(SectionKind::kKvFormat);
  if (format.data() == nullptr) {
    return Status::Corruption(path, seg->file_size() - segment::kFooterSize,
                              "unsupported keyspace segment format version 1");
  }
  if (format.size() != 8 || DecodeFixed32(reinterpret_cast<const uint8_t*>(format.data())) != kKvFormatVersion ||
      DecodeFixed32(reinterpret_cast<const uint8_t*>(format.data()) + 4) != 0) {
    const uint32_t v = format.size() >= 4 ? DecodeFixed32(reinterpret_cast<const uint8_t*>(format.data())) : 0;
    return Status::Corruption(path, off(format), "unsupported keyspace segment format version " + std::to_string(v));
  }
  std::string_view ent = seg->Section(SectionKind::kKvEntries), keys = seg->Section(SectionKind::kKvKeys),
                   values = seg->Section(SectionKind::kKvValues), groups = seg->Section(SectionKind::kKvGroups),
                   rows = seg->Section(SectionKind::kKvVectorRows), data = seg->Section(SectionKind::kKvVectorData);
  if (ent.data() == nullptr || keys.data() == nullptr || values.data() == nullptr || groups.data() == nullptr ||
      rows.data() == nullptr || data.data() == nullptr) {
    return Status::Corruption(path, seg->file_size() - segment::kFooterSize, "a keyspace section is missing");
  }
  if (ent.size() % kEntrySize != 0) return Status::Corruption(path, off(ent), "entries section size is not a multiple of 56");
  if (groups.size() % kGroupSize != 0) return Status::Corruption(path, off(groups), "group table size is not a multiple of 48");
  if (rows.size() % 4 != 0) return Status::Corruption(path, off(rows), "vector row section size is not a multiple of 4");
  if (reinterpret_cast<uintptr_t>(ent.data()) % 8 != 0 || reinterpret_cast<uintptr_t>(rows.data()) % 4 != 0 ||
      reinterpret_cast<uintptr_t>(data.data()) % 64 != 0) {
    return Status::Corruption(path, off(ent), "a keyspace section is misaligned");
  }
  std::shared_ptr<Segment> s(new Segment());
  s->number_ = number;
  s->seg_ = seg;
  s->n_ = ent.size() / kEntrySize;
  s->entries_ = reinterpret_cast<const uint8_t*>(ent.data());
  s->keys_ = keys.data();
  s->keys_size_ = keys.size();
  s->values_ = values.data();
  s->values_size_ = values.size();
  const uint32_t* row_idx = reinterpret_cast<const uint32_t*>(rows.data());
  const uint64_t total_rows = rows.size() / 4;
  const size_t group_count = groups.size() / kGroupSize;
  s->groups_.reserve(group_count);
  for (size_t gi = 0; gi < group_count; ++gi) {
    const uint8_t* ge = reinterpret_cast<const uint8_t*>(groups.data()) + gi * kGroupSize;
    const uint64_t at = off(groups) + gi * kGroupSize;
    if (crc32c::Value(ge, 44) != DecodeFixed32(ge + 44) || ge[1] != 0 || ge[2] != 0 || ge[3] != 0 ||
        DecodeFixed32(ge + 40) != 0) {
      return Status::Corruption(path, at, "vector group " + std::to_string(gi) + " descriptor checksum mismatch");
    }
    Group g;
    g.ns = ge[0];
    g.dim = DecodeFixed32(ge + 4);
    g.rows = DecodeFixed64(ge + 8);
    const uint64_t data_off = DecodeFixed64(ge + 16);
    const uint64_t rows_off = DecodeFixed64(ge + 24);
    g.data_crc = DecodeFixed32(ge + 32);
    g.rows_crc = DecodeFixed32(ge + 36);
    uint64_t bytes = 0, end = 0, rows_end = 0;
    if (g.dim == 0 || g.dim > kMaxDim || data_off % 64 != 0 || MulOverflows(g.rows, uint64_t{g.dim} * 4, &bytes) ||
        AddOverflows(data_off, bytes, &end) || end > data.size() || AddOverflows(rows_off, g.rows, &rows_end) ||
        rows_end > total_rows || g.rows > s->n_) {
      return Status::Corruption(path, at, "vector group " + std::to_string(gi) + " lies outside its sections");
    }
    g.data = reinterpret_cast<const float*>(data.data() + data_off);
    g.entries = row_idx + rows_off;
    s->groups_.push_back(g);
  }
  s->group_checks_.reset(new GroupCheck[group_count]);
  s->key_index_check_ = std::make_unique<KeyIndexCheck>();
  return s;
}

uint64_t Segment::EntryOffset(size_t i) const {
  return static_cast<uint64_t>(reinterpret_cast<const char*>(entry(i)) - seg_->base());
}

Status Segment::Bad(uint64_t offset, const std::string& what) const { return Status::Corruption(path(), offset, what); }

Status Segment::Key(size_t i, std::string_view* key) const {
  const uint8_t* e = entry(i);
  const uint64_t key_off = DecodeFixed64(e);
  const uint32_t key_len = DecodeFixed32(e + 8);
  uint64_t end = 0;
  if (key_len == 0 || AddOverflows(key_off, key_len, &end) || end > keys_size_)
    return Bad(EntryOffset(i), "entry " + std::to_string(i) + " key lies outside the key section");
  *key = std::string_view(keys_ + key_off, key_len);
  return Status::OK();
}

Status Segment::Read(size_t i, std::string_view* key, VersionView* out) const {
  return ReadEntry(i, key, out, true);
}

Status Segment::ReadEntry(size_t i, std::string_view* key, VersionView* out, bool check_crc) const {
  POMAI_RETURN_IF_ERROR(Key(i, key));
  const uint8_t* e = entry(i);
  const uint64_t at = EntryOffset(i);
  const uint64_t val_off = DecodeFixed64(e + 24), val_len = DecodeFixed64(e + 32);
  const uint32_t dim = DecodeFixed32(e + 40), group = DecodeFixed32(e + 44), row = DecodeFixed32(e + 48);
  const uint8_t kind = e[12], metric = e[13], has_meta = e[14];
  uint64_t end = 0;
  if (AddOverflows(val_off, val_len, &end) || end > values_size_)
    return Bad(at + 24, "entry " + std::to_string(i) + " value lies outside the value section");
  if (kind < 1 || kind > 3 || metric > 2 || has_meta > 1 || e[15] != 0 ||
      (kind == static_cast<uint8_t>(ValueKind::kTombstone) && val_len != 0))
    return Bad(at + 12, "entry " + std::to_string(i) + " has a bad kind, metric or flag");
  const float* vec = nullptr;
  if (kind == static_cast<uint8_t>(ValueKind::kVector)) {
    if (group >= groups_.size() || groups_[group].dim != dim || row >= groups_[group].rows)
      return Bad(at + 40, "entry " + std::to_string(i) + " and the vector groups disagree");
    vec = groups_[group].data + uint64_t{row} * dim;
  } else if (dim != 0 || group != kNoGroup || row != kNoGroup) {
    return Bad(at + 40, "entry " + std::to_string(i) + " and the vector groups disagree");
  }
  if (check_crc) {
    uint32_t crc = crc32c::Value(e, 52);
    crc = crc32c::Extend(crc, key->data(), key->size());
    crc = crc32c::Extend(crc, values_ + val_off, val_len);
    if (vec != nullptr) crc = crc32c::Extend(crc, vec, uint64_t{dim} * sizeof(float));
    if (crc != DecodeFixed32(e + 52)) return Bad(at, "entry " + std::to_string(i) + " checksum mismatch");
  }
  out->seq = DecodeFixed64(e + 16);
  out->kind = static_cast<ValueKind>(kind);
  out->metric = static_cast<simd::Metric>(metric);
  out->has_metadata = has_meta != 0;
  out->bytes = std::string_view(values_ + val_off, val_len);
  out->vec = vec;
  out->dim = dim;
  return Status::OK();
}

Status Segment::CheckKeyIndex() const {
  std::call_once(key_index_check_->once, [&] {
    for (const segment::Segment::SectionRef& r : seg_->sections()) {
      if (r.kind != KindNumber(SectionKind::kKvEntries) && r.kind != KindNumber(SectionKind::kKvKeys)) continue;
      if (crc32c::Value(seg_->base() + r.offset, r.length) != r.crc) {
        key_index_check_->status =
            Bad(r.offset, std::string(r.kind == KindNumber(SectionKind::kKvEntries) ? "entries" : "keys") +
                              " section checksum mismatch");
        return;
      }
    }
  });
  return key_index_check_->status;
}

Status Segment::LowerBound(std::string_view k, size_t* out) const {
  POMAI_RETURN_IF_ERROR(CheckKeyIndex());
  size_t lo = 0, hi = n_;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    const uint8_t* e = entry(mid);
    const uint64_t key_off = DecodeFixed64(e);
    const uint32_t key_len = DecodeFixed32(e + 8);
    uint64_t end = 0;
    if (key_len == 0 || AddOverflows(key_off, key_len, &end) || end > keys_size_) {
      std::string_view unused;
      return Key(mid, &unused);  // the Corruption naming the entry
    }
    if (std::string_view(keys_ + key_off, key_len) < k) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  *out = lo;
  return Status::OK();
}

Status Segment::Get(std::string_view k, uint64_t snap, VersionView* out, bool* found) const {
  // The key index is checked (LowerBound): a miss reads no entry's value.
  size_t i = 0;
  POMAI_RETURN_IF_ERROR(LowerBound(k, &i));
  *found = false;
  std::string_view key;
  if (i == n_) return Status::OK();
  POMAI_RETURN_IF_ERROR(Key(i, &key));
  if (key != k) return Status::OK();
  VersionView v;
  POMAI_RETURN_IF_ERROR(Read(i, &key, &v));
  if (v.seq > snap) return Status::OK();
  *found = true;
  *out = v;
  return Status::OK();
}

Status Segment::LatestSeq(std::string_view k, uint64_t* seq) const {
  // Keys and the entries (seqs included) are covered by the checked key index.
  size_t i = 0;
  POMAI_RETURN_IF_ERROR(LowerBound(k, &i));
  *seq = 0;
  std::string_view key;
  if (i == n_) return Status::OK();
  POMAI_RETURN_IF_ERROR(Key(i, &key));
  if (key == k) *seq = EntrySeq(i);
  return Status::OK();
}

uint64_t Segment::EntrySeq(size_t i) const { return DecodeFixed64(entry(i) + 16); }

Status Segment::CheckGroup(size_t gi) const {
  GroupCheck& c = group_checks_[gi];
  std::call_once(c.once, [&] {
    const Group& g = groups_[gi];
    const uint64_t at =
        static_cast<uint64_t>(seg_->Section(SectionKind::kKvGroups).data() - seg_->base()) + gi * kGroupSize;
    if (crc32c::Value(g.data, g.rows * g.dim * sizeof(float)) != g.data_crc) {
      c.status = Bad(static_cast<uint64_t>(reinterpret_cast<const char*>(g.data) - seg_->base()),
                     "vector group " + std::to_string(gi) + " data checksum mismatch (group at " + std::to_string(at) + ")");
    } else if (crc32c::Value(g.entries, g.rows * 4) != g.rows_crc) {
      c.status = Bad(static_cast<uint64_t>(reinterpret_cast<const char*>(g.entries) - seg_->base()),
                     "vector group " + std::to_string(gi) + " row list checksum mismatch (group at " + std::to_string(at) + ")");
    } else {
      const size_t words = (g.rows + 63) / 64;
      c.bits.reset(new std::atomic<uint64_t>[words]);
      for (size_t w = 0; w < words; ++w) c.bits[w].store(0, std::memory_order_relaxed);
      c.verified.store(c.bits.get(), std::memory_order_release);
    }
  });
  return c.status;
}

Status Segment::ReadRow(size_t gi, uint64_t r, std::string_view* key, VersionView* out) const {
  const Group& g = groups_[gi];
  const uint32_t e = g.entries[r];
  const uint64_t at = static_cast<uint64_t>(reinterpret_cast<const char*>(g.entries + r) - seg_->base());
  if (e >= n_) return Bad(at, "vector row names entry " + std::to_string(e) + ", beyond the entries");
  std::atomic<uint64_t>* verified = group_checks_[gi].verified.load(std::memory_order_acquire);
  const uint64_t bit = uint64_t{1} << (r % 64);
  const bool known_good = verified != nullptr && (verified[r / 64].load(std::memory_order_relaxed) & bit) != 0;
  POMAI_RETURN_IF_ERROR(ReadEntry(e, key, out, !known_good));
  const uint8_t* en = entry(e);
  if (DecodeFixed32(en + 44) != gi || DecodeFixed32(en + 48) != r)
    return Bad(at, "vector row names entry " + std::to_string(e) + ", which names another row");
  if (verified != nullptr && !known_good) verified[r / 64].fetch_or(bit, std::memory_order_relaxed);
  return Status::OK();
}

Status Segment::VerifyAll() const {
  POMAI_RETURN_IF_ERROR(seg_->Verify());
  std::string_view prev;
  uint64_t vectors = 0;
  for (size_t i = 0; i < n_; ++i) {
    std::string_view key;
    VersionView v;
    POMAI_RETURN_IF_ERROR(Read(i, &key, &v));
    if (i > 0 && !(prev < key)) return Bad(EntryOffset(i), "entry " + std::to_string(i) + " key is not above the previous one");
    prev = key;
    if (v.kind == ValueKind::kVector) ++vectors;
  }
  uint64_t rows = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    POMAI_RETURN_IF_ERROR(CheckGroup(gi));
    for (uint64_t r = 0; r < groups_[gi].rows; ++r) {
      std::string_view key;
      VersionView v;
      POMAI_RETURN_IF_ERROR(ReadRow(gi, r, &key, &v));
      if (key.empty() || static_cast<uint8_t>(key[0]) != groups_[gi].ns)
        return Bad(EntryOffset(groups_[gi].entries[r]), "entry in vector group " + std::to_string(gi) + " of another namespace");
    }
    rows += groups_[gi].rows;
  }
  if (rows != vectors) {
    return Bad(static_cast<uint64_t>(seg_->Section(SectionKind::kKvGroups).data() - seg_->base()),
               "vector groups hold " + std::to_string(rows) + " rows for " + std::to_string(vectors) + " vector entries");
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// WAL commit records

std::string EncodeCommit(const std::vector<Write>& writes) {
  std::vector<wal::RecordOp> ops(writes.size());
  for (size_t i = 0; i < writes.size(); ++i) {
    const Value& v = *writes[i].value;
    wal::RecordOp& op = ops[i];
    op.key = writes[i].key;
    if (v.kind == ValueKind::kBytes) {
      op.kind = wal::OpKind::kPutBytes;
      op.bytes = v.bytes;
    } else if (v.kind == ValueKind::kVector) {
      op.kind = wal::OpKind::kPutVector;
      op.metric = static_cast<uint8_t>(v.metric);
      op.has_metadata = v.has_metadata;
      op.bytes = v.bytes;
      op.dim = static_cast<uint32_t>(v.vec.size());
      op.vector = v.vec.data();
    } else {
      op.kind = wal::OpKind::kDeleteKey;
    }
  }
  return wal::EncodeWriteBatch(ops.data(), ops.size());
}

Status WritesOf(const std::vector<wal::RecordOp>& ops, const std::string& origin, std::vector<Write>* out) {
  out->clear();
  out->reserve(ops.size());
  for (const wal::RecordOp& op : ops) {
    auto v = std::make_shared<Value>();
    switch (op.kind) {
      case wal::OpKind::kPutBytes:
        v->kind = ValueKind::kBytes;
        v->bytes.assign(op.bytes);
        break;
      case wal::OpKind::kPutVector:
        v->kind = ValueKind::kVector;
        v->metric = static_cast<simd::Metric>(op.metric);
        v->has_metadata = op.has_metadata;
        v->bytes.assign(op.bytes);
        v->vec.resize(op.dim);
        std::memcpy(v->vec.data(), op.vector, size_t{op.dim} * 4);
        break;
      case wal::OpKind::kDeleteKey:
        v->kind = ValueKind::kTombstone;
        break;
      default:
        return Status::Corruption(origin + ": " + wal::OpKindName(op.kind) + " op in a keyspace commit");
    }
    out->push_back(Write{std::string(op.key), std::move(v)});
  }
  return Status::OK();
}

}  // namespace pomai::engine::kv
