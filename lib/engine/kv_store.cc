#include "engine/kv_store.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>

#include "engine/kv_db.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "util/limits.h"

namespace pomai::engine::kv {

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
