#include "engine/kv_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>

#include "util/coding.h"
#include "util/crc32c.h"

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
uint64_t HashKey(std::string_view key) { return std::hash<std::string_view>()(key) | 1; }
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

const MemTable::Versions* MemTable::Find(std::string_view key) const {
  if (slots_.empty()) return nullptr;
  const uint64_t h = HashKey(key);
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.key == nullptr) return nullptr;
    if (s.hash == h && *s.key == key) return s.versions;
  }
}

void MemTable::Index(const std::string* key, Versions* versions) {
  if ((map_.size() + 1) * 2 > slots_.size()) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(std::max<size_t>(64, old.size() * 2), Slot{});
    const size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.key == nullptr) continue;
      size_t i = s.hash & mask;
      while (slots_[i].key != nullptr) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
  const uint64_t h = HashKey(*key);
  const size_t mask = slots_.size() - 1;
  size_t i = h & mask;
  while (slots_[i].key != nullptr) i = (i + 1) & mask;
  slots_[i] = Slot{h, key, versions};
}

bool MemTable::Get(std::string_view key, uint64_t snap, VersionView* out) const {
  std::shared_lock<std::shared_mutex> l(mu_);
  const Versions* vs = Find(key);
  if (vs == nullptr) return false;
  uint64_t seq = 0;
  const Value* v = vs->Visible(snap, &seq);
  if (v == nullptr) return false;
  *out = ViewOf(seq, *v);
  return true;
}

uint64_t MemTable::LatestSeq(std::string_view key) const {
  std::shared_lock<std::shared_mutex> l(mu_);
  const Versions* vs = Find(key);
  return vs == nullptr ? 0 : vs->newest_seq;
}

void MemTable::Apply(uint64_t seq, const std::vector<Write>& writes, uint64_t min_snapshot) {
  std::unique_lock<std::shared_mutex> l(mu_);
  for (const Write& w : writes) {
    auto it = map_.find(w.key);
    if (it == map_.end()) {
      it = map_.emplace(w.key, Versions{}).first;
      Index(&it->first, &it->second);
      bytes_ += w.key.capacity() + kVersionOverhead + 2 * sizeof(Slot);
    }
    Versions& vs = it->second;
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
  }
  max_seq_ = std::max(max_seq_, seq);
}

void MemTable::Scan(std::string_view lo, std::string_view hi, uint64_t snap,
                    const std::function<void(std::string_view, const VersionView&)>& fn) const {
  std::shared_lock<std::shared_mutex> l(mu_);
  for (auto it = map_.lower_bound(lo); it != map_.end(); ++it) {
    if (!hi.empty() && std::string_view(it->first) >= hi) break;
    uint64_t seq = 0;
    if (const Value* v = it->second.Visible(snap, &seq)) fn(it->first, ViewOf(seq, *v));
  }
}

void MemTable::Newest(const std::function<void(const std::string&, uint64_t, const Value&)>& fn) const {
  std::shared_lock<std::shared_mutex> l(mu_);
  for (const auto& [key, versions] : map_) {
    if (versions.newest) fn(key, versions.newest_seq, *versions.newest);
  }
}

uint64_t MemTable::bytes() const {
  std::shared_lock<std::shared_mutex> l(mu_);
  return bytes_;
}

bool MemTable::empty() const {
  std::shared_lock<std::shared_mutex> l(mu_);
  return map_.empty();
}

uint64_t MemTable::max_seq() const {
  std::shared_lock<std::shared_mutex> l(mu_);
  return max_seq_;
}

// ---------------------------------------------------------------------------
// Segment

namespace {

constexpr uint32_t kNoGroup = 0xFFFFFFFFu;

void PadTo64(std::string* s) { s->resize((s->size() + 63) / 64 * 64, '\0'); }

}  // namespace

Status Segment::Write(Env* env, const std::string& dir, const std::string& name, const std::vector<Input>& entries,
                      uint64_t min_seq, uint64_t max_seq) {
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
  std::vector<uint32_t> group_of(entries.size(), kNoGroup);
  uint32_t g = 0;
  for (const auto& [gk, members] : by_group) {
    PadTo64(&data);
    uint8_t ge[kGroupSize] = {};
    ge[0] = gk.first;
    EncodeFixed32(ge + 4, gk.second);
    EncodeFixed64(ge + 8, members.size());
    EncodeFixed64(ge + 16, data.size());
    EncodeFixed64(ge + 24, rows.size() / 4);
    PutBytes(&groups, ge, sizeof(ge));
    for (uint32_t idx : members) {
      PutFixed32(&rows, idx);
      const Value& v = *entries[idx].value;
      PutBytes(&data, v.vec.data(), v.vec.size() * sizeof(float));
      group_of[idx] = g;
    }
    ++g;
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0 && !(entries[i - 1].key < entries[i].key)) {
      return Status::InvalidArgument("KV segment keys are not strictly ascending at entry " + std::to_string(i));
    }
    const Value& v = *entries[i].value;
    uint8_t e[kEntrySize] = {};
    EncodeFixed64(e, keys.size());
    EncodeFixed32(e + 8, static_cast<uint32_t>(entries[i].key.size()));
    e[12] = static_cast<uint8_t>(v.kind);
    e[13] = static_cast<uint8_t>(v.metric);
    e[14] = v.has_metadata ? 1 : 0;
    EncodeFixed64(e + 16, entries[i].seq);
    EncodeFixed64(e + 24, values.size());
    EncodeFixed64(e + 32, v.kind == ValueKind::kTombstone ? 0 : v.bytes.size());
    EncodeFixed32(e + 40, v.kind == ValueKind::kVector ? static_cast<uint32_t>(v.vec.size()) : 0);
    EncodeFixed32(e + 44, group_of[i]);
    PutBytes(&ent, e, sizeof(e));
    keys.append(entries[i].key);
    if (v.kind != ValueKind::kTombstone) values.append(v.bytes);
  }
  segment::SegmentContents c;
  c.info.dim = 1;
  c.info.shard = kKvSegmentMarker;
  c.info.min_seq = min_seq;
  c.info.max_seq = max_seq;
  c.extra = {{kKvEntries, ent}, {kKvKeys, keys}, {kKvValues, values},
             {kKvGroups, groups}, {kKvVectorRows, rows}, {kKvVectorData, data}};
  return segment::WriteSegment(env, dir, name, c);
}

Result<std::shared_ptr<Segment>> Segment::Open(Env* env, const std::string& path, uint64_t number) {
  POMAI_ASSIGN_OR_RETURN(std::shared_ptr<segment::Segment> seg, segment::Segment::Open(env, path));
  // Every byte is checked once here: a flipped value byte must be reported,
  // not returned.
  POMAI_RETURN_IF_ERROR(seg->Verify());
  const char* base = seg->base();
  auto off = [base](std::string_view s) { return static_cast<uint64_t>(s.data() - base); };
  if (seg->info().shard != kKvSegmentMarker || seg->row_count() != 0) {
    return Status::Corruption(path, 24, "not a keyspace segment (u64-id segment in a keyspace database)");
  }
  std::string_view ent = seg->Section(kKvEntries), keys = seg->Section(kKvKeys), values = seg->Section(kKvValues),
                   groups = seg->Section(kKvGroups), rows = seg->Section(kKvVectorRows),
                   data = seg->Section(kKvVectorData);
  if (ent.data() == nullptr || keys.data() == nullptr || values.data() == nullptr || groups.data() == nullptr ||
      rows.data() == nullptr || data.data() == nullptr) {
    return Status::Corruption(path, seg->file_size() - segment::kFooterSize, "a keyspace section is missing");
  }
  if (ent.size() % kEntrySize != 0) return Status::Corruption(path, off(ent), "entries section size is not a multiple of 48");
  if (groups.size() % kGroupSize != 0) return Status::Corruption(path, off(groups), "group table size is not a multiple of 32");
  if (rows.size() % 4 != 0) return Status::Corruption(path, off(rows), "vector row section size is not a multiple of 4");
  std::shared_ptr<Segment> s(new Segment());
  s->number_ = number;
  s->seg_ = seg;
  s->n_ = ent.size() / kEntrySize;
  s->entries_ = reinterpret_cast<const uint8_t*>(ent.data());
  s->keys_ = keys.data();
  s->values_ = values.data();
  const uint32_t* row_idx = reinterpret_cast<const uint32_t*>(rows.data());
  const uint64_t total_rows = rows.size() / 4;
  s->row_ptr_.assign(s->n_, nullptr);
  const size_t group_count = groups.size() / kGroupSize;
  std::vector<uint32_t> group_of(s->n_, kNoGroup);  // per entry: the group holding its row
  for (size_t gi = 0; gi < group_count; ++gi) {
    const uint8_t* ge = reinterpret_cast<const uint8_t*>(groups.data()) + gi * kGroupSize;
    const uint64_t at = off(groups) + gi * kGroupSize;
    Group g;
    g.ns = ge[0];
    g.dim = DecodeFixed32(ge + 4);
    g.rows = DecodeFixed64(ge + 8);
    const uint64_t data_off = DecodeFixed64(ge + 16);
    const uint64_t rows_off = DecodeFixed64(ge + 24);
    uint64_t bytes = 0, end = 0, rows_end = 0;
    if (g.dim == 0 || g.dim > 65535 || data_off % 64 != 0 || MulOverflows(g.rows, uint64_t{g.dim} * 4, &bytes) ||
        AddOverflows(data_off, bytes, &end) || end > data.size() || AddOverflows(rows_off, g.rows, &rows_end) ||
        rows_end > total_rows) {
      return Status::Corruption(path, at, "vector group " + std::to_string(gi) + " lies outside its sections");
    }
    g.data = reinterpret_cast<const float*>(data.data() + data_off);
    g.entries = row_idx + rows_off;
    for (uint64_t r = 0; r < g.rows; ++r) {
      const uint32_t e = g.entries[r];
      if (e >= s->n_ || s->row_ptr_[e] != nullptr) {
        return Status::Corruption(path, off(rows) + (rows_off + r) * 4, "vector row names a bad or repeated entry");
      }
      s->row_ptr_[e] = g.data + r * g.dim;
      group_of[e] = static_cast<uint32_t>(gi);
    }
    s->groups_.push_back(g);
  }
  for (size_t i = 0; i < s->n_; ++i) {
    const uint8_t* e = s->entry(i);
    const uint64_t at = off(ent) + i * kEntrySize;
    const uint64_t key_off = DecodeFixed64(e), val_off = DecodeFixed64(e + 24), val_len = DecodeFixed64(e + 32);
    const uint32_t key_len = DecodeFixed32(e + 8), dim = DecodeFixed32(e + 40), group = DecodeFixed32(e + 44);
    const uint8_t kind = e[12], metric = e[13], has_meta = e[14];
    uint64_t end = 0;
    if (key_len == 0 || AddOverflows(key_off, key_len, &end) || end > keys.size())
      return Status::Corruption(path, at, "entry " + std::to_string(i) + " key lies outside the key section");
    if (AddOverflows(val_off, val_len, &end) || end > values.size())
      return Status::Corruption(path, at + 24, "entry " + std::to_string(i) + " value lies outside the value section");
    if (kind < 1 || kind > 3 || metric > 2 || has_meta > 1 || e[15] != 0)
      return Status::Corruption(path, at + 12, "entry " + std::to_string(i) + " has a bad kind, metric or flag");
    const bool is_vec = kind == static_cast<uint8_t>(ValueKind::kVector);
    if (is_vec != (s->row_ptr_[i] != nullptr) || (is_vec && (group != group_of[i] || s->groups_[group].dim != dim)) ||
        (!is_vec && (dim != 0 || group != kNoGroup))) {
      return Status::Corruption(path, at + 40, "entry " + std::to_string(i) + " and the vector groups disagree");
    }
    if (i > 0 && !(s->key(i - 1) < s->key(i)))
      return Status::Corruption(path, at, "entry " + std::to_string(i) + " key is not above the previous one");
  }
  return s;
}

std::string_view Segment::key(size_t i) const {
  const uint8_t* e = entry(i);
  return std::string_view(keys_ + DecodeFixed64(e), DecodeFixed32(e + 8));
}

uint64_t Segment::seq(size_t i) const { return DecodeFixed64(entry(i) + 16); }

VersionView Segment::view(size_t i) const {
  const uint8_t* e = entry(i);
  VersionView v;
  v.seq = DecodeFixed64(e + 16);
  v.kind = static_cast<ValueKind>(e[12]);
  v.metric = static_cast<simd::Metric>(e[13]);
  v.has_metadata = e[14] != 0;
  v.bytes = std::string_view(values_ + DecodeFixed64(e + 24), DecodeFixed64(e + 32));
  v.vec = row_ptr_[i];
  v.dim = DecodeFixed32(e + 40);
  return v;
}

size_t Segment::LowerBound(std::string_view k) const {
  size_t lo = 0, hi = n_;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (key(mid) < k) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

bool Segment::Get(std::string_view k, uint64_t snap, VersionView* out) const {
  const size_t i = LowerBound(k);
  if (i >= n_ || key(i) != k || seq(i) > snap) return false;
  *out = view(i);
  return true;
}

uint64_t Segment::LatestSeq(std::string_view k) const {
  const size_t i = LowerBound(k);
  if (i >= n_ || key(i) != k) return 0;
  return seq(i);
}

// ---------------------------------------------------------------------------
// WAL commit record:
//   u32 write count, then per write: u8 kind, u32 key length, key, and
//   kBytes:  u32 length, bytes
//   kVector: u8 metric, u8 has_metadata, u32 metadata length, metadata, u32 dim, dim f32
//   kTombstone: nothing

std::string EncodeCommit(const std::vector<Write>& writes) {
  std::string out;
  PutFixed32(&out, static_cast<uint32_t>(writes.size()));
  for (const Write& w : writes) {
    const Value& v = *w.value;
    out.push_back(static_cast<char>(v.kind));
    PutFixed32(&out, static_cast<uint32_t>(w.key.size()));
    out.append(w.key);
    if (v.kind == ValueKind::kBytes) {
      PutFixed32(&out, static_cast<uint32_t>(v.bytes.size()));
      out.append(v.bytes);
    } else if (v.kind == ValueKind::kVector) {
      out.push_back(static_cast<char>(v.metric));
      out.push_back(v.has_metadata ? 1 : 0);
      PutFixed32(&out, static_cast<uint32_t>(v.bytes.size()));
      out.append(v.bytes);
      PutFixed32(&out, static_cast<uint32_t>(v.vec.size()));
      PutBytes(&out, v.vec.data(), v.vec.size() * sizeof(float));
    }
  }
  return out;
}

Status DecodeCommit(const uint8_t* p, size_t n, const std::string& origin, std::vector<Write>* out) {
  Decoder d(p, n);
  auto bad = [&](const std::string& what) {
    return Status::Corruption(origin + ": commit record byte " + std::to_string(d.pos() - p) + ": " + what);
  };
  uint32_t count = 0;
  if (!d.GetFixed32(&count)) return bad("truncated write count");
  out->clear();
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t kind = 0;
    uint32_t key_len = 0;
    const uint8_t* key = nullptr;
    if (!d.GetU8(&kind) || !d.GetFixed32(&key_len) || !d.GetBytes(key_len, &key)) return bad("truncated key");
    if (key_len < 2) return bad("empty key");
    auto v = std::make_shared<Value>();
    v->kind = static_cast<ValueKind>(kind);
    if (kind == static_cast<uint8_t>(ValueKind::kBytes)) {
      uint32_t len = 0;
      const uint8_t* b = nullptr;
      if (!d.GetFixed32(&len) || !d.GetBytes(len, &b)) return bad("truncated value");
      v->bytes.assign(reinterpret_cast<const char*>(b), len);
    } else if (kind == static_cast<uint8_t>(ValueKind::kVector)) {
      uint8_t metric = 0, has_meta = 0;
      uint32_t meta_len = 0, dim = 0;
      const uint8_t* meta = nullptr;
      const uint8_t* data = nullptr;
      if (!d.GetU8(&metric) || !d.GetU8(&has_meta) || !d.GetFixed32(&meta_len) || !d.GetBytes(meta_len, &meta))
        return bad("truncated vector record");
      if (metric > 2 || has_meta > 1) return bad("bad metric or metadata flag");
      if (!d.GetFixed32(&dim) || dim == 0 || dim > 65535 || !d.GetBytes(size_t{dim} * 4, &data))
        return bad("truncated or bad vector");
      v->metric = static_cast<simd::Metric>(metric);
      v->has_metadata = has_meta != 0;
      v->bytes.assign(reinterpret_cast<const char*>(meta), meta_len);
      v->vec.resize(dim);
      std::memcpy(v->vec.data(), data, size_t{dim} * 4);
    } else if (kind != static_cast<uint8_t>(ValueKind::kTombstone)) {
      return bad("unknown write kind " + std::to_string(kind));
    }
    out->push_back(Write{std::string(reinterpret_cast<const char*>(key), key_len), std::move(v)});
  }
  if (d.remaining() != 0) return bad("trailing bytes");
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Manifest: "POMAIKVM", u32 version 1, u64 next_file_number, u64 log_number,
// u64 last_seq, u32 segment count, u64 numbers..., u32 CRC32C of all before.

namespace {
constexpr char kManifestMagic[8] = {'P', 'O', 'M', 'A', 'I', 'K', 'V', 'M'};
}  // namespace

std::string Manifest::Encode() const {
  std::string out;
  PutBytes(&out, kManifestMagic, 8);
  PutFixed32(&out, 1);
  PutFixed64(&out, next_file_number);
  PutFixed64(&out, log_number);
  PutFixed64(&out, last_seq);
  PutFixed32(&out, static_cast<uint32_t>(segments.size()));
  for (uint64_t s : segments) PutFixed64(&out, s);
  PutFixed32(&out, crc32c::Value(out.data(), out.size()));
  return out;
}

Result<Manifest> Manifest::Decode(const std::string& data, const std::string& path) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  if (data.size() < 8 + 4 + 24 + 4 + 4) return Status::Corruption(path, 0, "manifest too short");
  if (std::memcmp(p, kManifestMagic, 8) != 0) return Status::Corruption(path, 0, "bad keyspace manifest magic");
  const size_t body = data.size() - 4;
  if (crc32c::Value(p, body) != DecodeFixed32(p + body)) return Status::Corruption(path, body, "manifest checksum mismatch");
  Decoder d(p + 8, body - 8);
  Manifest m;
  uint32_t version = 0, count = 0;
  d.GetFixed32(&version);
  if (version != 1) return Status::Corruption(path, 8, "unsupported keyspace manifest version " + std::to_string(version));
  d.GetFixed64(&m.next_file_number);
  d.GetFixed64(&m.log_number);
  d.GetFixed64(&m.last_seq);
  d.GetFixed32(&count);
  if (count > d.remaining() / 8) return Status::Corruption(path, 36, "truncated segment list");
  m.segments.resize(count);
  for (auto& s : m.segments) {
    d.GetFixed64(&s);
    if (s >= m.next_file_number) return Status::Corruption(path, static_cast<uint64_t>(d.pos() - p), "segment number beyond next_file_number");
  }
  if (d.remaining() != 0) return Status::Corruption(path, static_cast<uint64_t>(d.pos() - p), "trailing bytes in manifest");
  return m;
}

}  // namespace pomai::engine::kv
