// The crash harness's workload model (tests/engine/crash_test.cc and
// crash_points_test.cc; docs/CRASH_TESTING.md): steps of both faces of one
// database, the pomaidb face (row batches, row arrays and row batches with
// attributes of the default collection, attribute updates) and the alopex face (transactions of byte values, vector
// records and entries of the named collection kIndex; its creation and
// drop); the state a reader can see after a prefix of the committed steps;
// and the one rule both tests check after a recovery, CheckPrefix: the
// database shows the state after some prefix of the history, of a length
// within the bounds the test knows.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "engine/db.h"
#include "util/attributes.h"

namespace pomai::engine::crash {

inline constexpr uint32_t kDim = 8;
inline constexpr char kIndex[] = "ix";
// The row ProbeCommit writes; no history does (crash_points_test's row ids
// are 3 mod 7, crash_test's at least 8).
inline constexpr uint64_t kProbeRowId = 1;

struct ScriptOp {
  // kRowAttr: an attribute update of row `key`, setting "v" to `version`.
  enum Kind { kPut, kDelete, kVector, kIndexPut, kIndexDelete, kRowPut, kRowDelete, kRowAttr } kind;
  std::string key;  // a row's: its id in decimal
  uint32_t version = 0;
};
struct ScriptStep {
  // kTxn, kCreateIndex, kDropIndex, kRows and kRowArray are commits (the
  // history): a transaction of the alopex face; the creation (or
  // re-creation, which replaces the collection and its entries) and the drop
  // of the named collection kIndex; one Write of row puts and deletes of the
  // default collection, one PutArray of its row puts; kAttrRows one PutRows
  // of row puts with attributes (AttrsFor), kUpdateAttrs one
  // UpdateAttributes of "v" (kRowAttr ops). kFlush, kCompact (a
  // forced merge of every segment), kReopen and kSearch (index statistics and
  // a search: the first after the index is created with committed entries
  // and no graph flushes) are not.
  enum Kind {
    kTxn, kCreateIndex, kDropIndex, kRows, kRowArray, kAttrRows, kUpdateAttrs, kFlush, kCompact, kReopen, kSearch
  } kind = kTxn;
  std::vector<ScriptOp> ops;  // kTxn, kRows, kRowArray, kAttrRows, kUpdateAttrs
  bool commit() const { return kind <= kUpdateAttrs; }
};

inline std::string ValueFor(const std::string& key, uint32_t version) {
  return key + "=" + std::to_string(version) + std::string(8 + version * 7 % 60, static_cast<char>('a' + version % 26));
}
inline std::string MetaFor(const std::string& key, uint32_t version) { return key + "@" + std::to_string(version); }
inline std::vector<float> VecFor(const std::string& key, uint32_t version) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
  std::mt19937_64 rng(h * 1000003ull + version);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(kDim);
  for (auto& x : v) x = u(rng);
  return v;
}

inline std::vector<ScriptStep> History(const std::vector<ScriptStep>& script) {
  std::vector<ScriptStep> h;
  for (const ScriptStep& st : script)
    if (st.commit()) h.push_back(st);
  return h;
}

// A row's attributes: "v" (int64), "k" (string), "t" (tags); absent = null.
struct Attrs {
  std::optional<int64_t> v;
  std::optional<std::string> k;
  std::optional<std::vector<std::string>> t;
  bool operator==(const Attrs&) const = default;
};
// The attributes a kAttrRows put of (key, version) writes: "k" null for every
// third version, "t" empty for odd ones.
inline Attrs AttrsFor(const std::string& key, uint32_t version) {
  Attrs a;
  a.v = version;
  if (version % 3 != 0) a.k = key + "#" + std::to_string(version);
  a.t = version % 2 ? std::vector<std::string>{} : std::vector<std::string>{"t" + std::to_string(version % 5), "x"};
  return a;
}

// What a reader can see, in one comparable form.
struct State {
  std::map<std::string, std::string> keys;  // user key -> "B|" value, or "V|" metadata "|" vector bytes
  bool index = false;
  std::map<std::string, std::string> entries;  // index entry key -> metadata
  std::map<uint64_t, std::string> rows;  // default collection id -> VectorRecord(metadata, vector)
  std::map<uint64_t, Attrs> attrs;       // rows that have some attribute
  bool operator==(const State&) const = default;
};

inline std::string VectorRecord(const std::string& meta, const std::vector<float>& v) {
  return "V|" + meta + "|" + std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

// The attributes of index entry `key` at `version`: none for every third
// version, else an int64 `v` (the version) and tags `t` ({key}). A recovery
// check finds each entry by its vector with the filter IndexWhereFor.
inline std::vector<AttrColumn> IndexAttrsFor(const std::string& key, uint32_t version) {
  std::vector<AttrColumn> cols;
  if (version % 3 == 0) return cols;
  cols.push_back(AttrColumn::Make("t", AttrType::kTags));
  const std::string_view tag(key);
  cols.back().AppendTags(&tag, 1);
  cols.push_back(AttrColumn::Make("v", AttrType::kInt64));
  cols.back().AppendInt(version);
  return cols;
}
inline std::string IndexWhereFor(const std::string& key, uint32_t version) {
  return version % 3 == 0 ? "v IS NULL AND t IS NULL" : "v = " + std::to_string(version) + " AND t CONTAINS '" + key + "'";
}

inline void Apply(const ScriptStep& st, State* s) {
  if (st.kind == ScriptStep::kCreateIndex || st.kind == ScriptStep::kDropIndex) {
    s->index = st.kind == ScriptStep::kCreateIndex;
    s->entries.clear();
    return;
  }
  for (const ScriptOp& op : st.ops) {
    switch (op.kind) {
      case ScriptOp::kPut: s->keys[op.key] = "B|" + ValueFor(op.key, op.version); break;
      case ScriptOp::kVector: s->keys[op.key] = VectorRecord(MetaFor(op.key, op.version), VecFor(op.key, op.version)); break;
      case ScriptOp::kDelete: s->keys.erase(op.key); break;
      case ScriptOp::kIndexPut: s->entries[op.key] = MetaFor(op.key, op.version); break;
      case ScriptOp::kIndexDelete: s->entries.erase(op.key); break;
      case ScriptOp::kRowPut: {
        const uint64_t id = std::stoull(op.key);
        s->rows[id] = VectorRecord(st.kind == ScriptStep::kRowArray ? "" : MetaFor(op.key, op.version),
                                   VecFor(op.key, op.version));
        if (st.kind == ScriptStep::kAttrRows) {
          s->attrs[id] = AttrsFor(op.key, op.version);
        } else {
          s->attrs.erase(id);  // a put without attributes: every column null
        }
        break;
      }
      case ScriptOp::kRowDelete:
        s->rows.erase(std::stoull(op.key));
        s->attrs.erase(std::stoull(op.key));
        break;
      case ScriptOp::kRowAttr: s->attrs[std::stoull(op.key)].v = op.version; break;
    }
  }
}

inline DefaultCollectionOptions RowsOptions() {
  DefaultCollectionOptions o;
  o.dim = kDim;
  o.metric = simd::Metric::kL2;
  o.shards = 2;
  o.hnsw_m = 8;
  o.hnsw_ef_construction = 32;
  o.adaptive_threshold = 16;  // segments of more rows get graphs
  return o;
}

// The options of both crash tests: a memtable budget of a few KiB makes
// background flushes, and merges past max_segments (0: the default budget).
inline Options CrashOptions(const std::string& path, bool fsync, Env* env, uint64_t memtable_budget_bytes) {
  Options o;
  o.path = path;
  o.fsync = fsync;
  o.search_threads = 1;
  o.memtable_budget_bytes = memtable_budget_bytes;
  o.max_segments = 4;
  o.env = env;
  return o;
}

// Opens the database and its default collection (created by the first open).
inline Result<std::unique_ptr<DB>> OpenWithRows(const Options& o) {
  POMAI_ASSIGN_OR_RETURN(std::unique_ptr<DB> db, DB::Open(o));
  POMAI_RETURN_IF_ERROR(db->OpenDefaultCollection(RowsOptions()));
  return db;
}

// One PutRows of the step's row puts with their attributes and metadata.
inline Status PutAttrRows(DB* db, const ScriptStep& st) {
  std::vector<uint64_t> ids;
  std::vector<float> matrix;
  std::vector<uint64_t> meta_off{0};
  std::string meta;
  AttrColumn v = AttrColumn::Make("v", AttrType::kInt64), k = AttrColumn::Make("k", AttrType::kString),
             t = AttrColumn::Make("t", AttrType::kTags);
  for (const ScriptOp& op : st.ops) {
    ids.push_back(std::stoull(op.key));
    const std::vector<float> vec = VecFor(op.key, op.version);
    matrix.insert(matrix.end(), vec.begin(), vec.end());
    meta += MetaFor(op.key, op.version);
    meta_off.push_back(meta.size());
    const Attrs a = AttrsFor(op.key, op.version);
    v.AppendInt(*a.v);
    a.k ? k.AppendString(*a.k) : k.AppendNull();
    std::vector<std::string_view> tags(a.t->begin(), a.t->end());
    t.AppendTags(tags.data(), tags.size());
  }
  RowsIn in;
  in.n = ids.size();
  in.ids = ids.data();
  in.vectors = matrix.data();
  in.metadata_offsets = meta_off.data();
  in.metadata = reinterpret_cast<const uint8_t*>(meta.data());
  in.columns = {std::move(v), std::move(k), std::move(t)};
  return db->PutRows(in);
}

inline Status CommitStep(DB* db, const ScriptStep& st) {
  if (st.kind == ScriptStep::kAttrRows) return PutAttrRows(db, st);
  if (st.kind == ScriptStep::kUpdateAttrs) {
    std::vector<uint64_t> ids;
    AttrColumn v = AttrColumn::Make("v", AttrType::kInt64);
    for (const ScriptOp& op : st.ops) {
      ids.push_back(std::stoull(op.key));
      v.AppendInt(op.version);
    }
    return db->UpdateAttributes(ids.data(), ids.size(), {std::move(v)});
  }
  if (st.kind == ScriptStep::kRows || st.kind == ScriptStep::kRowArray) {
    std::vector<std::vector<float>> vecs;
    std::vector<std::string> metas;
    vecs.reserve(st.ops.size());
    metas.reserve(st.ops.size());
    std::vector<WriteOp> ops;
    std::vector<uint64_t> ids;
    std::vector<float> matrix;
    for (const ScriptOp& op : st.ops) {
      WriteOp w;
      w.id = std::stoull(op.key);
      if (op.kind == ScriptOp::kRowDelete) {
        w.kind = WriteOp::Kind::kDelete;
      } else {
        vecs.push_back(VecFor(op.key, op.version));
        metas.push_back(MetaFor(op.key, op.version));
        w.vector = vecs.back().data();
        w.metadata = metas.back();
        ids.push_back(w.id);
        matrix.insert(matrix.end(), vecs.back().begin(), vecs.back().end());
      }
      ops.push_back(w);
    }
    return st.kind == ScriptStep::kRows ? db->Write(ops.data(), ops.size()) : db->PutArray(ids.data(), matrix.data(), ids.size());
  }
  if (st.kind == ScriptStep::kCreateIndex) {
    IndexConfig c;
    c.dim = kDim;
    c.m = 8;
    c.ef_construction = 32;
    c.metric = simd::Metric::kL2;
    return db->CreateIndex(kIndex, c);
  }
  if (st.kind == ScriptStep::kDropIndex) return db->DropIndex(kIndex);
  auto t = db->Begin(TxnMode::kReadWrite);
  if (!t.ok()) return t.status();
  for (const ScriptOp& op : st.ops) {
    Status s;
    switch (op.kind) {
      case ScriptOp::kPut: s = (*t)->Put(op.key, ValueFor(op.key, op.version)); break;
      case ScriptOp::kDelete: s = (*t)->Delete(op.key); break;
      case ScriptOp::kVector: {
        const std::string meta = MetaFor(op.key, op.version);
        const std::string_view mv(meta);
        s = (*t)->UpsertVector(op.key, VecFor(op.key, op.version).data(), kDim, simd::Metric::kL2, &mv);
        break;
      }
      case ScriptOp::kIndexPut: {
        const std::string meta = MetaFor(op.key, op.version);
        const std::string_view mv(meta);
        const std::vector<AttrColumn> attrs = IndexAttrsFor(op.key, op.version);
        s = (*t)->IndexUpsert(kIndex, op.key, VecFor(op.key, op.version).data(), kDim, &mv, &attrs);
        break;
      }
      case ScriptOp::kIndexDelete: s = (*t)->IndexDelete(kIndex, op.key); break;
      case ScriptOp::kRowPut:
      case ScriptOp::kRowDelete:
      case ScriptOp::kRowAttr: return Status::InvalidArgument("a row op in a transaction step");
    }
    if (!s.ok()) return s;
  }
  return (*t)->Commit();
}

// A commit of a key outside the script (to probe whether writes are
// taken), then a row of an id outside it when the default collection is open.
inline Status ProbeCommit(DB* db) {
  auto t = db->Begin(TxnMode::kReadWrite);
  if (!t.ok()) return t.status();
  POMAI_RETURN_IF_ERROR((*t)->Put("probe", "p"));
  POMAI_RETURN_IF_ERROR((*t)->Commit());
  if (db->dim() == 0) return Status::OK();
  const std::vector<float> v(kDim, 0.5f);
  WriteOp op;
  op.id = kProbeRowId;
  op.vector = v.data();
  return db->Write(&op, 1);
}

// The rows' attributes as a scan sees them, and a filtered count of them.
inline Status ObserveAttrs(DB* db, State* out) {
  auto scan = db->Scan(ScanSpec{});
  if (!scan.ok()) return Status(scan.status().code(), "Scan: " + scan.status().ToString());
  const AttrSchema& cols = (*scan)->columns();
  uint64_t with_v = 0;
  for (;;) {
    ScanBatch b;
    bool done = false;
    Status s = (*scan)->Next(&b, &done);
    if (!s.ok()) return Status(s.code(), "Scan: " + s.ToString());
    if (done) break;
    for (size_t j = 0; j < b.ids.size(); ++j) {
      if (b.ids[j] == kProbeRowId) continue;
      Attrs a;
      for (size_t c = 0; c < cols.size(); ++c) {
        const AttrColumn& col = b.columns[c];
        if (!col.has_value(j)) continue;
        if (cols[c].first == "v") a.v = col.ints[j];
        if (cols[c].first == "k") a.k = std::string(col.str(j));
        if (cols[c].first == "t") {
          a.t.emplace();
          for (size_t i = 0; i < col.tag_count(j); ++i) a.t->emplace_back(col.tag(j, i));
        }
      }
      if (a.v || a.k || a.t) out->attrs[b.ids[j]] = a;
      with_v += a.v.has_value();
    }
  }
  if (cols.empty()) return Status::OK();
  RowFilterSpec f;
  f.expression = "v IS NOT NULL";
  auto n = db->Count(&f);
  if (!n.ok()) return Status(n.status().code(), "Count(v IS NOT NULL): " + n.status().ToString());
  if (*n != with_v)
    return Status::Corruption("Count(v IS NOT NULL) is " + std::to_string(*n) + ", a scan finds " + std::to_string(with_v));
  return Status::OK();
}

// The default collection's rows as Get, Count and Search see them.
inline Status ObserveRows(DB* db, const std::set<uint64_t>& row_universe, State* out) {
  for (uint64_t id : row_universe) {
    std::vector<float> vec;
    std::string meta;
    Status s = db->Get(id, &vec, &meta);
    if (s.IsNotFound()) continue;
    if (!s.ok()) return Status(s.code(), "Get(" + std::to_string(id) + "): " + s.ToString());
    out->rows[id] = VectorRecord(meta, vec);
  }
  // ProbeCommit's row counts in Count and searches, not in the state.
  auto probe = db->Exists(kProbeRowId);
  if (!probe.ok()) return Status(probe.status().code(), "Exists(probe row): " + probe.status().ToString());
  auto count = db->Count();
  if (!count.ok()) return Status(count.status().code(), "Count: " + count.status().ToString());
  if (*count != out->rows.size() + (*probe ? 1 : 0))
    return Status::Corruption("Count() is " + std::to_string(*count) + ", Get finds " + std::to_string(out->rows.size()));
  {
    const std::vector<float> q(kDim, 0.0f);
    const uint32_t k = static_cast<uint32_t>(*count + 3);
    std::vector<std::vector<Hit>> hits;
    Status s = db->Search(q.data(), 1, &k, 0, 0, &hits);
    if (!s.ok()) return Status(s.code(), "Search: " + s.ToString());
    std::set<uint64_t> found;
    for (const Hit& h : hits[0])
      if (h.id != kProbeRowId) found.insert(h.id);
    std::set<uint64_t> want;
    for (const auto& [id, rec] : out->rows) want.insert(id);
    if (found != want) return Status::Corruption("a search over every row returns other ids than Get finds");
  }
  return ObserveAttrs(db, out);
}

// Reads every user key the script names, and the whole index.
inline Status Observe(DB* db, const std::set<std::string>& universe, const std::set<uint64_t>& row_universe, State* out) {
  auto t = db->Begin(TxnMode::kReadOnly);
  if (!t.ok()) return t.status();
  for (const std::string& key : universe) {
    std::string v;
    bool found = false;
    Status s = (*t)->Get(key, &v, &found);
    if (!s.ok()) return Status(s.code(), "Get(" + key + "): " + s.ToString());
    if (!found) continue;
    std::vector<float> vec;
    s = (*t)->GetVector(key, simd::Metric::kL2, &vec);
    if (s.ok()) out->keys[key] = VectorRecord(v, vec);
    else if (s.IsNotFound()) out->keys[key] = "B|" + v;
    else return Status(s.code(), "GetVector(" + key + "): " + s.ToString());
  }
  // The default collection (when this handle opened it): every row by Get,
  // their count, and one search over all of them (exact: k covers them).
  if (db->dim() != 0) POMAI_RETURN_IF_ERROR(ObserveRows(db, row_universe, out));
  IndexStats stats;
  Status s = db->GetIndexStats(kIndex, &stats);
  if (s.IsNotFound()) return Status::OK();
  if (!s.ok()) return Status(s.code(), "GetIndexStats: " + s.ToString());
  out->index = true;
  if (stats.node_count == 0) return Status::OK();
  // ef above the entry count makes the walk exhaustive on these small graphs.
  const std::vector<float> q(kDim, 0.0f);
  std::vector<KeyHit> hits;
  const uint32_t k = static_cast<uint32_t>(stats.node_count);
  s = db->SearchIndex(kIndex, q.data(), kDim, k, k + 64, "", &hits, nullptr);
  if (!s.ok()) return Status(s.code(), "SearchIndex: " + s.ToString());
  for (const KeyHit& h : hits) out->entries[h.key] = h.metadata;
  if (hits.size() != stats.node_count)
    return Status::Corruption("index holds " + std::to_string(stats.node_count) + " entries, a search over all returns " +
                              std::to_string(hits.size()));
  return Status::OK();
}

inline std::string Name(uint64_t id) { return std::to_string(id); }
inline std::string Name(const std::string& key) { return key; }

// Checks the database shows the state after some prefix of `history` with a
// length in [lo, hi]; returns that length. The entries' vectors are checked
// too: each entry is the nearest neighbour of its own vector.
inline std::optional<size_t> CheckPrefix(DB* db, const std::vector<ScriptStep>& history, size_t lo, size_t hi, std::string* why) {
  std::set<std::string> universe;
  std::set<uint64_t> row_universe;
  for (const ScriptStep& st : history)
    for (const ScriptOp& op : st.ops) {
      if (op.kind == ScriptOp::kRowPut || op.kind == ScriptOp::kRowDelete || op.kind == ScriptOp::kRowAttr)
        row_universe.insert(std::stoull(op.key));
      else if (op.kind != ScriptOp::kIndexPut && op.kind != ScriptOp::kIndexDelete) universe.insert(op.key);
    }
  State got;
  Status s = Observe(db, universe, row_universe, &got);
  if (!s.ok()) {
    *why = s.ToString();
    return std::nullopt;
  }
  State state;
  for (size_t k = 0; k < lo && k < history.size(); ++k) Apply(history[k], &state);
  for (size_t k = lo; k <= hi && k <= history.size(); ++k) {
    if (k > lo) Apply(history[k - 1], &state);
    if (!(state == got)) continue;
    for (const auto& [key, meta] : state.entries) {
      const uint32_t ver = static_cast<uint32_t>(std::stoul(meta.substr(meta.find('@') + 1)));
      const std::vector<float> v = VecFor(key, ver);
      std::vector<KeyHit> hits;
      // Among the entries with its attributes, it is the nearest to its own vector.
      Status ss = db->SearchIndex(kIndex, v.data(), kDim, 1, 64, IndexWhereFor(key, ver), &hits, nullptr);
      if (!ss.ok() || hits.size() != 1 || hits[0].key != key || hits[0].score != 0.0f) {
        *why = "index entry " + key + " is not the nearest neighbour of its own vector among entries with its "
               "attributes (" + IndexWhereFor(key, ver) + "): " + ss.ToString();
        return std::nullopt;
      }
    }
    return k;
  }
  *why = "state matches no prefix in [" + std::to_string(lo) + ", " + std::to_string(hi) + "] (" +
         std::to_string(got.keys.size()) + " keys, index " + (got.index ? "present" : "absent") + " with " +
         std::to_string(got.entries.size()) + " entries, " + std::to_string(got.rows.size()) + " rows)";
  // What differs from the state after `lo` commits.
  State at_lo;
  for (size_t k = 0; k < lo && k < history.size(); ++k) Apply(history[k], &at_lo);
  *why += "; after " + std::to_string(lo) + " commits: " + std::to_string(at_lo.keys.size()) + " keys, " +
          std::to_string(at_lo.entries.size()) + " entries, " + std::to_string(at_lo.rows.size()) + " rows";
  auto diff = [&](const char* what, const auto& want, const auto& have) {
    for (const auto& [k, v] : want) {
      auto it = have.find(k);
      if (it == have.end()) *why += "; " + std::string(what) + " " + Name(k) + " missing";
      else if (it->second != v) *why += "; " + std::string(what) + " " + Name(k) + " differs";
    }
    for (const auto& [k, v] : have)
      if (!want.count(k)) *why += "; " + std::string(what) + " " + Name(k) + " extra";
  };
  diff("row", at_lo.rows, got.rows);
  for (const auto& [id, a] : at_lo.attrs)
    if (!got.attrs.count(id) || !(got.attrs.at(id) == a)) *why += "; attributes of row " + std::to_string(id) + " differ";
  diff("entry", at_lo.entries, got.entries);
  diff("key", at_lo.keys, got.keys);
  return std::nullopt;
}

}  // namespace pomai::engine::crash
