#include "memtable/key_table.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "wal/record_codec.h"

namespace pomai::memtable {

VersionView ViewOf(uint64_t seq, const Value& v) {
  VersionView out;
  out.seq = seq;
  out.kind = v.kind;
  out.metric = v.metric;
  out.has_metadata = v.has_metadata;
  out.bytes = v.bytes;
  out.attrs = v.attrs;
  if (v.kind == ValueKind::kVector) {
    out.vec = v.vec.data();
    out.dim = static_cast<uint32_t>(v.vec.size());
  }
  return out;
}

namespace {
constexpr size_t kVersionOverhead = 48;  // map node share and version slot

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

const Value* KeyTable::Versions::Visible(uint64_t snap, uint64_t* seq) const {
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

const KeyTable::Slot* KeyTable::FindSlot(std::string_view key, uint64_t h) const {
  if (slots_.empty()) return nullptr;
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.hash == 0) return nullptr;
    if (s.hash == h && s.head->key_len == key.size() && std::memcmp(s.head->key(), key.data(), key.size()) == 0)
      return &s;
  }
}

KeyTable::Slot* KeyTable::Index(uint64_t h) {
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

char* KeyTable::Allocate(size_t n) {
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

const KeyTable::Head* KeyTable::NewHead(std::string_view key, Versions* versions) {
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

bool KeyTable::Get(std::string_view key, uint64_t snap, VersionView* out) const {
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

uint64_t KeyTable::LatestSeq(std::string_view key) const {
  const uint64_t h = HashKey(key);
  ReaderLock l(&mu_);
  const Slot* s = FindSlot(key, h);
  return s == nullptr ? 0 : s->head->seq;
}

uint64_t KeyTable::Apply(uint64_t seq, const std::vector<Write>& writes, uint64_t min_snapshot) {
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
    if (w.value->kind == ValueKind::kVector && !w.key.empty() && static_cast<uint8_t>(w.key[0]) == wal::kUserNs)
      AddVectorRow(std::string_view(slot->head->key(), slot->head->key_len), seq, *w.value, versions);
  }
  max_seq_ = std::max(max_seq_, seq);
  return bytes_;
}

void KeyTable::AddVectorRow(std::string_view key, uint64_t seq, const Value& v, Versions* versions) {
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

void KeyTable::VisibleVectors(uint64_t snap, std::vector<VisibleVector>* out) const {
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

void KeyTable::Scan(std::string_view lo, std::string_view hi, uint64_t snap,
                    const std::function<void(std::string_view, const VersionView&)>& fn) const {
  ReaderLock l(&mu_);
  for (auto it = map_.lower_bound(lo); it != map_.end(); ++it) {
    if (!hi.empty() && std::string_view(it->first) >= hi) break;
    uint64_t seq = 0;
    if (const Value* v = it->second.Visible(snap, &seq)) fn(it->first, ViewOf(seq, *v));
  }
}

void KeyTable::Newest(const std::function<void(const std::string&, uint64_t, const Value&)>& fn) const {
  ReaderLock l(&mu_);
  for (const auto& [key, versions] : map_) {
    if (versions.newest) fn(key, versions.newest_seq, *versions.newest);
  }
}

uint64_t KeyTable::bytes() const {
  ReaderLock l(&mu_);
  return bytes_;
}

bool KeyTable::empty() const {
  ReaderLock l(&mu_);
  return map_.empty();
}

uint64_t KeyTable::max_seq() const {
  ReaderLock l(&mu_);
  return max_seq_;
}

}  // namespace pomai::memtable
