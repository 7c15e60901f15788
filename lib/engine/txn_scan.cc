// Key-range scans in transactions (Txn::Scan; the contract is
// pomai_txn_scan's in include/pomai/kv.h) and the range check a read-write
// transaction's commit makes for the ranges its scans returned
// (RangeChangedSince).
//
// A scan merges, newest first, the transaction's own writes, the active
// memtable, the frozen one and the segments (newest first): per key the
// newest version with seq <= the snapshot wins (an own write always), a
// tombstone hides the key, a vector record is skipped (and hides older
// versions too). Every segment entry is read through ReadEntry (checked
// whole); LowerBound checks the key index first, as point reads do.
//
// A call is stateless for the caller: the next batch starts again from the
// key after the last one returned. The segments are positioned by binary
// search; the memtables cannot be (KeyTable::Scan visits a whole range), so
// the first batch of a range collects the memtable versions visible at the
// snapshot in [lo, hi) once, and the transaction keeps them (ScanCache) for
// the next batches of that range.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/collection.h"
#include "engine/db.h"
#include "engine/db_impl.h"
#include "memtable/key_table.h"
#include "segment/file.h"
#include "util/limits.h"

namespace pomai::engine {

// The keys of [lo, hi) (internal keys) with their version visible at the
// transaction's snapshot (a tombstone included) in its active and frozen
// memtables. The views point into the memtables' map nodes and values,
// which live as long as the transaction's layers and snapshot.
struct ScanCache {
  struct Entry {
    std::string_view key;
    VersionView v;
  };
  std::string lo, hi;
  std::vector<Entry> entries[2];  // [0] the active memtable, [1] the frozen one
};

namespace {

// How many ranges' memtable versions a transaction keeps (its latest scans).
constexpr size_t kScanCaches = 4;

// Adds [lo, hi) to `ranges` (sorted, disjoint), merging what it overlaps or touches.
void AddRange(std::vector<KeyRange>* ranges, std::string lo, std::string hi) {
  if (lo >= hi) return;
  auto first = std::lower_bound(ranges->begin(), ranges->end(), lo,
                                [](const KeyRange& r, const std::string& key) { return r.hi < key; });
  auto last = first;
  for (; last != ranges->end() && last->lo <= hi; ++last) {
    if (last->lo < lo) lo = last->lo;
    if (last->hi > hi) hi = last->hi;
  }
  first = ranges->erase(first, last);
  ranges->insert(first, KeyRange{std::move(lo), std::move(hi)});
}

// The memtable versions of [lo, hi) at t's snapshot: a kept set whose range
// has the same hi and starts at or before lo (a later batch of the same
// scan), else collected now.
const ScanCache& MemVersions(TxnState& t, const std::string& lo, const std::string& hi) {
  auto& caches = t.scan_caches;
  for (size_t i = 0; i < caches.size(); ++i) {
    if (caches[i]->hi == hi && caches[i]->lo <= lo) {
      std::rotate(caches.begin(), caches.begin() + i, caches.begin() + i + 1);
      return *caches[0];
    }
  }
  auto c = std::make_shared<ScanCache>();
  c->lo = lo;
  c->hi = hi;
  const MemTable* tables[2] = {t.layers->mem.get(), t.layers->imm.get()};
  for (int j = 0; j < 2; ++j) {
    if (tables[j] == nullptr) continue;
    std::vector<ScanCache::Entry>& entries = c->entries[j];
    tables[j]->keys().Scan(lo, hi, t.snap,
                           [&entries](std::string_view key, const VersionView& v) { entries.push_back({key, v}); });
  }
  caches.insert(caches.begin(), std::move(c));
  if (caches.size() > kScanCaches) caches.pop_back();
  return *caches[0];
}

// A segment's entries in a range, at the first one visible at the snapshot.
struct SegmentCursor {
  const segment::SegmentFile* seg = nullptr;
  uint64_t i = 0, end = 0;
  segment::EntryView e;  // entry i, when i < end

  bool valid() const { return i < end; }
  // Moves to the first entry from i on with seq <= snap (checked whole).
  Status Settle(uint64_t snap) {
    for (; i < end; ++i) {
      POMAI_RETURN_IF_ERROR(seg->ReadEntry(i, &e));
      if (e.seq <= snap) break;
    }
    return Status::OK();
  }
};

}  // namespace

Status Txn::Scan(std::string_view lo, const std::string_view* hi, size_t max_entries, size_t max_bytes,
                 std::vector<ScanEntry>* out, bool* more) {
  TxnState& t = *state_;
  out->clear();
  *more = false;
  POMAI_RETURN_IF_ERROR(t.CheckActive());
  if (max_entries == 0) return Status::InvalidArgument("max_entries is 0; a scan batch holds at least 1 entry");
  if (hi != nullptr && lo > *hi)
    return Status::InvalidArgument("lo '" + Printable(lo) + "' is greater than hi '" + Printable(*hi) + "'");
  // The range as internal keys: the user namespace is [kUserNs, kUserNs + 1).
  const std::string ilo = UserKey(lo);
  const std::string ihi = hi != nullptr ? UserKey(*hi) : std::string(1, static_cast<char>(kUserNs + 1));

  const ScanCache& mem = MemVersions(t, ilo, ihi);
  size_t mi[2];
  for (int j = 0; j < 2; ++j) {
    const std::vector<ScanCache::Entry>& e = mem.entries[j];
    mi[j] = std::lower_bound(e.begin(), e.end(), std::string_view(ilo),
                             [](const ScanCache::Entry& x, std::string_view k) { return x.key < k; }) -
            e.begin();
  }
  auto own = t.writes.lower_bound(ilo);
  auto own_valid = [&] { return own != t.writes.end() && own->first < ihi; };
  std::vector<SegmentCursor> segs(t.layers->segs.size());
  for (size_t s = 0; s < segs.size(); ++s) {
    SegmentCursor& c = segs[s];
    c.seg = t.layers->segs[s].get();
    POMAI_RETURN_IF_ERROR(c.seg->LowerBound(ilo, &c.i));
    POMAI_RETURN_IF_ERROR(c.seg->LowerBound(ihi, &c.end));
    POMAI_RETURN_IF_ERROR(c.Settle(t.snap));
  }

  size_t bytes = 0;
  for (;;) {
    // The smallest key any layer has next.
    std::string_view key;
    bool any = false;
    auto consider = [&](std::string_view k) {
      if (!any || k < key) key = k;
      any = true;
    };
    if (own_valid()) consider(own->first);
    for (int j = 0; j < 2; ++j)
      if (mi[j] < mem.entries[j].size()) consider(mem.entries[j][mi[j]].key);
    for (const SegmentCursor& c : segs)
      if (c.valid()) consider(c.e.key);
    if (!any) break;
    // Its version in the newest layer holding one; every layer moves past it.
    VersionView v;
    bool have = false;
    if (own_valid() && own->first == key) {
      v = ViewOf(t.snap + 1, *own->second);
      have = true;
      ++own;
    }
    for (int j = 0; j < 2; ++j) {
      if (mi[j] < mem.entries[j].size() && mem.entries[j][mi[j]].key == key) {
        if (!have) {
          v = mem.entries[j][mi[j]].v;
          have = true;
        }
        ++mi[j];
      }
    }
    for (SegmentCursor& c : segs) {
      if (!c.valid() || c.e.key != key) continue;
      if (!have) {
        v = ViewOfEntry(*c.seg, c.e);
        have = true;
      }
      ++c.i;
      POMAI_RETURN_IF_ERROR(c.Settle(t.snap));
    }
    if (!have || v.kind != ValueKind::kBytes) continue;  // deleted, or a vector record
    const size_t size = key.size() - 1 + v.bytes.size();
    if (out->size() == max_entries || (max_bytes > 0 && !out->empty() && bytes + size > max_bytes)) {
      *more = true;
      break;
    }
    bytes += size;
    out->push_back(ScanEntry{key.substr(1), v.bytes});
  }

  if (t.mode == TxnMode::kReadWrite) {
    // What this batch read: up to the end of the range, or through its last key.
    std::string end = ihi;
    if (*more) {
      end = UserKey(out->back().key);
      end.push_back('\0');
    }
    AddRange(&t.scanned, ilo, std::move(end));
  }
  return Status::OK();
}

Status RangeChangedSince(const Layers& layers, std::string_view lo, std::string_view hi, uint64_t snap,
                         bool* changed) {
  *changed = false;
  for (const MemTable* m : {layers.mem.get(), layers.imm.get()}) {
    if (m == nullptr || m->keys().max_seq() <= snap) continue;
    m->keys().Scan(lo, hi, UINT64_MAX, [&](std::string_view, const VersionView& v) {
      if (v.seq > snap) *changed = true;
    });
    if (*changed) return Status::OK();
  }
  for (const auto& seg : layers.segs) {
    if (seg->max_seq() <= snap) continue;
    uint64_t i = 0, end = 0;
    POMAI_RETURN_IF_ERROR(seg->LowerBound(lo, &i));
    POMAI_RETURN_IF_ERROR(seg->LowerBound(hi, &end));
    for (; i < end; ++i) {
      segment::EntryView e;
      POMAI_RETURN_IF_ERROR(seg->ReadEntry(i, &e));
      if (e.seq > snap) {
        *changed = true;
        return Status::OK();
      }
    }
  }
  return Status::OK();
}

}  // namespace pomai::engine
