// The compiled form of a filter (internal to lib/filter): a tree of n-ary
// AND / OR nodes over predicates, NOT already pushed down to the predicates
// (De Morgan), each predicate with literals in its column's representation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "filter/filter.h"

namespace pomai::filter {

// A set of ids for membership tests per row: sorted and unique, plus, when
// it is large, an open-addressing hash table behind a bit filter (8 bits per
// slot, most non-members stop at one bit that stays in cache).
class IdSet {
 public:
  IdSet() = default;
  explicit IdSet(std::vector<uint64_t> ids);  // any order, duplicates allowed
  const std::vector<uint64_t>& sorted() const { return sorted_; }
  bool Contains(uint64_t id) const;

 private:
  std::vector<uint64_t> sorted_;
  std::vector<uint64_t> slots_;  // kEmptySlot = empty; size a power of two, or none when small
  std::vector<uint64_t> bits_;   // bit (hash >> bit_shift_) set for each member; 8 x slots_ bits
  int bit_shift_ = 64;
  bool has_empty_value_ = false;  // the set holds kEmptySlot itself
  int shift_ = 64;
};

enum class PredKind : uint8_t {
  kIsNull,      // column IS NULL (its negation: IS NOT NULL)
  kIntRange,    // int64 in [ilo, ihi]
  kIntSet,      // int64 in ints
  kFloatRange,  // float64 in [flo, fhi]
  kFloatSet,    // float64 in floats
  kBool,        // bool is true (pass_true) or false (pass_false)
  kStrRange,    // string within the bounds below
  kStrSet,      // string in strs
  kTagsAny,     // some tag in strs
  kTagsAll,     // every one of strs among the tags
  kIdRange,     // id in [ulo, uhi]
  kIdSet,       // id in ids
};

struct Pred {
  PredKind kind = PredKind::kIsNull;
  // NOT of the predicate: a non-null row passes when the predicate is false;
  // a null row never passes (for kIsNull: the non-null rows pass).
  bool negated = false;
  int column = -1;  // index into Compiled::columns; -1 for id
  int index = 0;    // 0 .. Compiled::preds - 1, in the tree's order
  int64_t ilo = 0, ihi = -1;
  std::vector<int64_t> ints;  // sorted, unique
  // kIntSet over a narrow span (ints.back() - ints.front() < kDenseSpan): bit
  // v - ints.front() of dense is set when v is in the set; else empty.
  std::vector<uint64_t> dense;
  double flo = 0, fhi = 0;
  std::vector<double> floats;  // sorted, unique, no -0.0
  bool pass_true = false, pass_false = false;
  // kStrRange: lo (inclusive when lo_incl) when has_lo; likewise hi.
  bool has_lo = false, lo_incl = false, has_hi = false, hi_incl = false;
  std::string lo, hi;
  std::vector<std::string> strs;  // sorted (unsigned bytes), unique
  uint64_t ulo = 0, uhi = 0;
  IdSet ids;
};

// The widest span of an int64 IN set kept as a bit table (512 KiB).
constexpr uint64_t kDenseSpan = uint64_t{1} << 22;

struct Node {
  enum Kind : uint8_t { kAnd, kOr, kPred } kind = kPred;
  std::vector<Node> children;  // kAnd, kOr: two or more
  Pred pred;                   // kPred
};

struct Filter::Compiled {
  std::vector<std::string> columns;
  std::vector<AttrType> types;  // of columns
  bool has_root = false;  // false: no expression and no allow-list
  Node root;
  int preds = 0;
  int height = 1;  // levels of the tree (evaluation keeps one buffer per level)
};

}  // namespace pomai::filter
