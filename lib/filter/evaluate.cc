// Filter::Evaluate: the compiled tree over one layer, in chunks of kChunkRows
// rows (a chunk's bitmaps stay in cache, and an AND stops at its first child
// that passes nothing in the chunk, an OR at its first that passes all).
// Every predicate yields bits P for its rows; the result is
// valid & (negated ? ~P : P), so a null row passes neither a predicate nor
// its negation (IS NULL aside), which is SQL's three-valued logic once NOT
// has been pushed down to the predicates. RowTest::Passes is the same per
// row: a Binding (the layer's columns and each predicate's dictionary
// state) is shared by the chunked run and the row test.
#include <algorithm>
#include <bit>
#include <cstring>

#include "filter/compiled.h"
#include "filter/kernels.h"

namespace pomai::filter {
namespace {

constexpr size_t kChunkRows = 16384;
constexpr size_t kChunkWords = kChunkRows / 64;
constexpr size_t kSmallSet = 16;  // sets up to this size: one SIMD pass per value

size_t Words(size_t n) { return (n + 63) / 64; }
uint64_t TailMask(size_t n) { return n % 64 == 0 ? ~uint64_t{0} : (uint64_t{1} << (n % 64)) - 1; }

void Ones(size_t n, uint64_t* w) {
  const size_t words = Words(n);
  std::fill(w, w + words, ~uint64_t{0});
  if (words) w[words - 1] = TailMask(n);
}

std::string_view Entry(const ColumnRef& ref, uint64_t code) {
  return std::string_view(ref.dict_bytes + ref.dict_offsets[code], ref.dict_offsets[code + 1] - ref.dict_offsets[code]);
}

// The first dictionary entry (of a sorted dictionary) not less than `s`
// (not at most `s` when `after`).
uint64_t DictBound(const ColumnRef& ref, std::string_view s, bool after) {
  uint64_t lo = 0, hi = ref.dict_size;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    const int c = Entry(ref, mid).compare(s);
    if (c < 0 || (after && c == 0)) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

bool InRange(const Pred& p, std::string_view e) {
  if (p.has_lo) {
    const int c = e.compare(p.lo);
    if (c < 0 || (c == 0 && !p.lo_incl)) return false;
  }
  if (p.has_hi) {
    const int c = e.compare(p.hi);
    if (c > 0 || (c == 0 && !p.hi_incl)) return false;
  }
  return true;
}

bool InSorted(const std::vector<std::string>& strs, std::string_view e) {
  return std::binary_search(strs.begin(), strs.end(), e, [](std::string_view a, std::string_view b) { return a < b; });
}

}  // namespace

// What a string or tags predicate needs of one layer's dictionary.
struct DictState {
  bool code_range = false;  // kStrRange over a sorted dictionary: codes [clo, chi]
  uint32_t clo = 1, chi = 0;
  std::vector<uint8_t> table;  // entry passes (kStrRange unsorted, kStrSet, kTagsAny)
  // kTagsAll: entry -> 1 + index of the literal it equals, 0 for none.
  std::vector<uint32_t> literal_of;
  bool impossible = false;  // kTagsAll: a literal is in no entry
};

struct ColState {
  ColumnRef ref;
  bool present = false;
};

// One layer's columns as a compiled filter reads them, checked, with each
// string predicate's dictionary state: immutable once made.
class RowTest::Bound {
 public:
  Bound(std::shared_ptr<const Filter::Compiled> keep, const ColumnSource& src) : keep_(std::move(keep)), c_(*keep_) {
    rows_ = src.rows();
    ids_ = src.ids();
  }

  Status Bind(const ColumnSource& src) {
    cols_.resize(c_.columns.size());
    for (size_t i = 0; i < c_.columns.size(); ++i) {
      ColState& col = cols_[i];
      POMAI_RETURN_IF_ERROR(src.Column(c_.columns[i], &col.ref, &col.present));
      if (col.present && col.ref.type != c_.types[i])
        return Status::Internal("filter: the layer's column '" + c_.columns[i] + "' is " + AttrTypeName(col.ref.type) +
                                ", the collection's is " + AttrTypeName(c_.types[i]));
    }
    dicts_.resize(c_.preds);
    Prepare(c_.root);
    return Status::OK();
  }

  const Filter::Compiled& compiled() const { return c_; }
  uint64_t rows() const { return rows_; }
  const uint64_t* ids() const { return ids_; }
  const ColState& col(int i) const { return cols_[i]; }
  const DictState& dict(int pred) const { return dicts_[pred]; }

  bool Passes(uint64_t r) const { return NodeRow(c_.root, r); }

 private:
  void Prepare(const Node& node);
  bool NodeRow(const Node& node, uint64_t r) const {
    switch (node.kind) {
      case Node::kPred: return PredRow(node.pred, r);
      case Node::kAnd:
        for (const Node& child : node.children)
          if (!NodeRow(child, r)) return false;
        return true;
      case Node::kOr:
        for (const Node& child : node.children)
          if (NodeRow(child, r)) return true;
        return false;
    }
    return false;
  }
  bool PredRow(const Pred& p, uint64_t r) const;

  std::shared_ptr<const Filter::Compiled> keep_;
  const Filter::Compiled& c_;
  uint64_t rows_ = 0;
  const uint64_t* ids_ = nullptr;
  std::vector<ColState> cols_;
  std::vector<DictState> dicts_;  // by Pred::index
};

namespace {

class Evaluator {
 public:
  explicit Evaluator(const RowTest::Bound& b) : b_(b), c_(b.compiled()) {}

  void Run(Bitmap* out) {
    const uint64_t rows = b_.rows();
    out->Reset(rows, false);
    stamps_.resize(c_.preds);
    scratch_.assign(static_cast<size_t>(c_.height) * kChunkWords, 0);
    valid_.assign(kChunkWords, 0);
    tmp_.assign(kChunkWords, 0);
    ids_ = b_.ids();
    for (uint64_t begin = 0; begin < rows; begin += kChunkRows) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunkRows, rows - begin));
      EvalNode(c_.root, 0, begin, n, out->words() + begin / 64);
    }
    out->ClearTail();
  }

 private:
  void EvalNode(const Node& node, int level, uint64_t begin, size_t n, uint64_t* dst) {
    if (node.kind == Node::kPred) return EvalPred(node.pred, begin, n, dst);
    const size_t words = Words(n);
    uint64_t* tmp = scratch_.data() + static_cast<size_t>(level) * kChunkWords;
    const bool is_and = node.kind == Node::kAnd;
    EvalNode(node.children[0], level + 1, begin, n, dst);
    for (size_t i = 1; i < node.children.size(); ++i) {
      if (is_and ? AllZero(dst, words) : AllOnes(dst, n)) return;
      EvalNode(node.children[i], level + 1, begin, n, tmp);
      if (is_and) {
        for (size_t w = 0; w < words; ++w) dst[w] &= tmp[w];
      } else {
        for (size_t w = 0; w < words; ++w) dst[w] |= tmp[w];
      }
    }
  }

  static bool AllZero(const uint64_t* w, size_t words) {
    uint64_t any = 0;
    for (size_t i = 0; i < words; ++i) any |= w[i];
    return any == 0;
  }
  static bool AllOnes(const uint64_t* w, size_t n) {
    const size_t words = Words(n);
    uint64_t all = ~uint64_t{0};
    for (size_t i = 0; i + 1 < words; ++i) all &= w[i];
    return all == ~uint64_t{0} && words > 0 && w[words - 1] == TailMask(n);
  }

  // Bits of the rows [begin, begin + n) of the id predicate p (never null).
  void IdBits(const Pred& p, uint64_t begin, size_t n, uint64_t* dst) {
    const uint64_t* ids = ids_ + begin;
    if (p.kind == PredKind::kIdRange) return RangeBitsU64(ids, n, p.ulo, p.uhi, dst);
    const std::vector<uint64_t>& set = p.ids.sorted();
    if (set.size() <= kSmallSet) {
      std::fill(dst, dst + Words(n), 0);
      for (uint64_t v : set) {
        RangeBitsU64(ids, n, v, v, tmp_.data());
        for (size_t w = 0; w < Words(n); ++w) dst[w] |= tmp_[w];
      }
      return;
    }
    if (std::is_sorted(ids, ids + n)) {  // a segment's rows: merge with the sorted set
      auto it = std::lower_bound(set.begin(), set.end(), ids[0]);
      PerRow(n, dst, [&](size_t r) {
        while (it != set.end() && *it < ids[r]) ++it;
        return it != set.end() && *it == ids[r];
      });
      return;
    }
    const uint64_t lo = set.front(), hi = set.back();
    PerRow(n, dst, [&](size_t r) { return ids[r] >= lo && ids[r] <= hi && p.ids.Contains(ids[r]); });
  }

  template <class F>
  static void PerRow(size_t n, uint64_t* dst, F pass) {
    for (size_t w = 0; w < Words(n); ++w) {
      const size_t end = std::min(n, w * 64 + 64);
      uint64_t word = 0;
      for (size_t r = w * 64; r < end; ++r) word |= static_cast<uint64_t>(pass(r)) << (r % 64);
      dst[w] = word;
    }
  }

  template <class T, class Kernel>
  void SetBits(const std::vector<T>& set, const T* v, size_t n, uint64_t* dst, Kernel kernel) {
    const size_t words = Words(n);
    if (set.size() <= kSmallSet) {
      std::fill(dst, dst + words, 0);
      for (T x : set) {
        kernel(v, n, x, x, tmp_.data());
        for (size_t w = 0; w < words; ++w) dst[w] |= tmp_[w];
      }
      return;
    }
    PerRow(n, dst, [&](size_t r) { return std::binary_search(set.begin(), set.end(), v[r]); });
  }

  void EvalPred(const Pred& p, uint64_t begin, size_t n, uint64_t* dst) {
    const size_t words = Words(n);
    const uint64_t flip = p.negated ? ~uint64_t{0} : 0;
    if (p.column < 0) {
      IdBits(p, begin, n, dst);
      for (size_t w = 0; w < words; ++w) dst[w] ^= flip;
      dst[words - 1] &= TailMask(n);
      return;
    }
    const ColState& col = b_.col(p.column);
    if (!col.present) {  // every row null
      if (p.kind == PredKind::kIsNull && !p.negated) return Ones(n, dst);
      std::fill(dst, dst + words, 0);
      return;
    }
    const ColumnRef& ref = col.ref;
    uint64_t* valid = valid_.data();
    if (ref.valid != nullptr) {
      NonZeroBits(ref.valid + begin, n, valid);
    } else {
      Ones(n, valid);
    }
    if (p.kind == PredKind::kIsNull) {
      for (size_t w = 0; w < words; ++w) dst[w] = p.negated ? valid[w] : ~valid[w];
      dst[words - 1] &= TailMask(n);
      return;
    }
    const DictState& d = b_.dict(p.index);
    switch (p.kind) {
      case PredKind::kIntRange: RangeBitsI64(ref.ints + begin, n, p.ilo, p.ihi, dst); break;
      case PredKind::kIntSet:
        if (p.ints.size() > kSmallSet && !p.dense.empty()) {
          // A bit table over the set's span: one gathered word and test per row.
          TableBitsI64(ref.ints + begin, n, p.ints.front(), p.dense.data(), p.dense.size() * 64, dst);
          break;
        }
        SetBits(p.ints, ref.ints + begin, n, dst, RangeBitsI64);
        break;
      case PredKind::kFloatRange: RangeBitsF64(ref.floats + begin, n, p.flo, p.fhi, dst); break;
      case PredKind::kFloatSet: SetBits(p.floats, ref.floats + begin, n, dst, RangeBitsF64); break;
      case PredKind::kBool: {
        NonZeroBits(ref.bools + begin, n, dst);
        const uint64_t if_true = p.pass_true ? ~uint64_t{0} : 0, if_false = p.pass_false ? ~uint64_t{0} : 0;
        for (size_t w = 0; w < words; ++w) dst[w] = (dst[w] & if_true) | (~dst[w] & if_false);
        break;
      }
      case PredKind::kStrRange:
      case PredKind::kStrSet: {
        const uint32_t* codes = ref.codes + begin;
        if (d.code_range) {
          RangeBitsU32(codes, n, d.clo, d.chi, dst);
          break;
        }
        const uint8_t* table = d.table.data();
        const uint64_t size = d.table.size();
        PerRow(n, dst, [&](size_t r) { return codes[r] < size && table[codes[r]] != 0; });
        break;
      }
      case PredKind::kTagsAny: {
        // Branch-free: hits_[k] counts the passing tags among the chunk's
        // first k tags; a row passes when the count grows over its tags.
        const uint64_t* off = ref.tag_offsets + begin;
        const uint64_t first = off[0], slots = off[n] - first;
        const uint8_t* table = d.table.data();
        const uint64_t size = d.table.size();
        hits_.resize(slots + 1);
        uint64_t count = 0;
        hits_[0] = 0;
        for (uint64_t k = 0; k < slots; ++k) {
          const uint32_t code = ref.codes[first + k];
          count += code < size ? table[code] : 0;
          hits_[k + 1] = count;
        }
        const uint64_t* hits = hits_.data();
        PerRow(n, dst, [&](size_t r) { return hits[off[r + 1] - first] != hits[off[r] - first]; });
        break;
      }
      case PredKind::kTagsAll: {
        if (d.impossible) {
          std::fill(dst, dst + words, 0);
          break;
        }
        // The rows with the first literal (branch-free, as kTagsAny), then
        // those few checked for every literal.
        const uint64_t* off = ref.tag_offsets + begin;
        const uint64_t first = off[0], slots = off[n] - first;
        const uint32_t* literal_of = d.literal_of.data();
        const uint64_t size = d.literal_of.size();
        hits_.resize(slots + 1);
        uint64_t count = 0;
        hits_[0] = 0;
        for (uint64_t k = 0; k < slots; ++k) {
          const uint32_t code = ref.codes[first + k];
          count += code < size && literal_of[code] == 1 ? 1 : 0;
          hits_[k + 1] = count;
        }
        const uint64_t* hits = hits_.data();
        PerRow(n, dst, [&](size_t r) { return hits[off[r + 1] - first] != hits[off[r] - first]; });
        const size_t want = p.strs.size();
        if (want == 1) break;
        std::vector<uint64_t>& stamps = stamps_[p.index];
        stamps.resize(want);
        for (size_t w = 0; w < words; ++w) {
          for (uint64_t bits = dst[w]; bits != 0; bits &= bits - 1) {
            const size_t r = w * 64 + static_cast<size_t>(std::countr_zero(bits));
            const uint64_t mark = begin + r + 1;
            size_t have = 0;
            for (uint64_t j = off[r]; j < off[r + 1]; ++j) {
              const uint32_t code = ref.codes[j];
              if (code >= size || literal_of[code] == 0) continue;
              uint64_t& stamp = stamps[literal_of[code] - 1];
              if (stamp != mark) {
                stamp = mark;
                ++have;
              }
            }
            if (have != want) dst[w] &= ~(uint64_t{1} << (r % 64));
          }
        }
        break;
      }
      case PredKind::kIsNull:
      case PredKind::kIdRange:
      case PredKind::kIdSet: break;  // handled above
    }
    for (size_t w = 0; w < words; ++w) dst[w] = (dst[w] ^ flip) & valid[w];
  }

  const RowTest::Bound& b_;
  const Filter::Compiled& c_;
  const uint64_t* ids_ = nullptr;
  // kTagsAll, by Pred::index: per literal, 1 + the last row that had it.
  std::vector<std::vector<uint64_t>> stamps_;
  std::vector<uint64_t> scratch_;  // kChunkWords per tree level
  std::vector<uint64_t> valid_, tmp_;
  std::vector<uint64_t> hits_;  // kTagsAny: running count per tag of the chunk
};

}  // namespace

void RowTest::Bound::Prepare(const Node& node) {
  for (const Node& child : node.children) Prepare(child);
  if (node.kind != Node::kPred) return;
  const Pred& p = node.pred;
  if (p.column < 0 || !cols_[p.column].present) return;
  const ColumnRef& ref = cols_[p.column].ref;
  DictState& d = dicts_[p.index];
  switch (p.kind) {
    case PredKind::kStrRange:
      if (ref.dict_sorted) {
        const uint64_t first = p.has_lo ? DictBound(ref, p.lo, !p.lo_incl) : 0;
        const uint64_t end = p.has_hi ? DictBound(ref, p.hi, p.hi_incl) : ref.dict_size;
        d.code_range = true;
        if (first < end) {
          d.clo = static_cast<uint32_t>(first);
          d.chi = static_cast<uint32_t>(end - 1);
        }
        return;
      }
      d.table.resize(ref.dict_size);
      for (uint64_t e = 0; e < ref.dict_size; ++e) d.table[e] = InRange(p, Entry(ref, e));
      return;
    case PredKind::kStrSet:
    case PredKind::kTagsAny:
      d.table.assign(ref.dict_size, 0);
      if (ref.dict_sorted) {
        for (const std::string& s : p.strs) {
          const uint64_t e = DictBound(ref, s, false);
          if (e < ref.dict_size && Entry(ref, e) == s) d.table[e] = 1;
        }
      } else {
        for (uint64_t e = 0; e < ref.dict_size; ++e) d.table[e] = InSorted(p.strs, Entry(ref, e));
      }
      return;
    case PredKind::kTagsAll: {
      d.literal_of.assign(ref.dict_size, 0);
      std::vector<uint8_t> found(p.strs.size(), 0);
      for (uint64_t e = 0; e < ref.dict_size; ++e) {
        const std::string_view entry = Entry(ref, e);
        const auto it = std::lower_bound(p.strs.begin(), p.strs.end(), entry,
                                         [](const std::string& a, std::string_view b) { return std::string_view(a) < b; });
        if (it != p.strs.end() && *it == entry) {
          const size_t k = static_cast<size_t>(it - p.strs.begin());
          d.literal_of[e] = static_cast<uint32_t>(k + 1);
          found[k] = 1;
        }
      }
      d.impossible = std::find(found.begin(), found.end(), 0) != found.end();
        return;
    }
    default: return;
  }
}

bool RowTest::Bound::PredRow(const Pred& p, uint64_t r) const {
  if (p.column < 0) {
    const uint64_t id = ids_[r];
    const bool in = p.kind == PredKind::kIdRange ? id >= p.ulo && id <= p.uhi : p.ids.Contains(id);
    return in != p.negated;
  }
  const ColState& col = cols_[p.column];
  if (!col.present) return p.kind == PredKind::kIsNull && !p.negated;  // every row null
  const ColumnRef& ref = col.ref;
  const bool valid = ref.valid == nullptr || ref.valid[r] != 0;
  if (p.kind == PredKind::kIsNull) return valid == p.negated;
  if (!valid) return false;
  const DictState& d = dicts_[p.index];
  bool in = false;
  switch (p.kind) {
    case PredKind::kIntRange: in = ref.ints[r] >= p.ilo && ref.ints[r] <= p.ihi; break;
    case PredKind::kIntSet: {
      const int64_t v = ref.ints[r];
      if (!p.dense.empty()) {  // the bit table over [ints.front(), ints.front() + span)
        const uint64_t off = static_cast<uint64_t>(v) - static_cast<uint64_t>(p.ints.front());
        in = off < p.dense.size() * 64 && ((p.dense[off / 64] >> (off % 64)) & 1) != 0;
      } else {
        in = std::binary_search(p.ints.begin(), p.ints.end(), v);
      }
      break;
    }
    case PredKind::kFloatRange: in = ref.floats[r] >= p.flo && ref.floats[r] <= p.fhi; break;
    case PredKind::kFloatSet: in = std::binary_search(p.floats.begin(), p.floats.end(), ref.floats[r]); break;
    case PredKind::kBool: in = ref.bools[r] != 0 ? p.pass_true : p.pass_false; break;
    case PredKind::kStrRange:
    case PredKind::kStrSet: {
      const uint32_t code = ref.codes[r];
      in = d.code_range ? code >= d.clo && code <= d.chi : code < d.table.size() && d.table[code] != 0;
      break;
    }
    case PredKind::kTagsAny:
      for (uint64_t j = ref.tag_offsets[r]; j < ref.tag_offsets[r + 1] && !in; ++j) {
        const uint32_t code = ref.codes[j];
        in = code < d.table.size() && d.table[code] != 0;
      }
      break;
    case PredKind::kTagsAll: {
      if (d.impossible) break;
      // The literals among the row's tags (1 + index each), deduplicated.
      std::vector<uint32_t> have;
      for (uint64_t j = ref.tag_offsets[r]; j < ref.tag_offsets[r + 1]; ++j) {
        const uint32_t code = ref.codes[j];
        if (code < d.literal_of.size() && d.literal_of[code] != 0) have.push_back(d.literal_of[code]);
      }
      std::sort(have.begin(), have.end());
      in = static_cast<size_t>(std::unique(have.begin(), have.end()) - have.begin()) == p.strs.size();
      break;
    }
    case PredKind::kIsNull:
    case PredKind::kIdRange:
    case PredKind::kIdSet: break;  // handled above
  }
  return in != p.negated;
}

Status Filter::Evaluate(const ColumnSource& src, Bitmap* out) const {
  if (!c_->has_root) {
    out->Reset(src.rows(), true);
    return Status::OK();
  }
  RowTest::Bound b(c_, src);
  POMAI_RETURN_IF_ERROR(b.Bind(src));
  Evaluator(b).Run(out);
  return Status::OK();
}

Result<std::unique_ptr<RowTest>> RowTest::Bind(const Filter& f, const ColumnSource& src) {
  auto b = std::make_unique<Bound>(f.c_, src);
  if (f.c_->has_root) POMAI_RETURN_IF_ERROR(b->Bind(src));
  return std::unique_ptr<RowTest>(new RowTest(std::move(b)));
}

RowTest::RowTest(std::unique_ptr<Bound> b) : b_(std::move(b)) {}
RowTest::~RowTest() = default;

uint64_t RowTest::rows() const { return b_->rows(); }

bool RowTest::Passes(uint64_t row) const { return !b_->compiled().has_root || b_->Passes(row); }

void RowTest::EvaluateAll(Bitmap* out) const {
  if (!b_->compiled().has_root) return out->Reset(b_->rows(), true);
  Evaluator(*b_).Run(out);
}

}  // namespace pomai::filter
