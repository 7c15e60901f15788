// What a filter reads: one layer's rows and attribute columns
// (docs/FILTERS.md, "Execution"). The memtable's row set and a segment's u64
// group each implement ColumnSource; filter::Filter::Evaluate turns a
// compiled filter into a Bitmap over the source's rows.
#pragma once

#include <cstdint>
#include <string_view>

#include "util/attributes.h"
#include "util/status.h"

namespace pomai::filter {

// One column of a layer, as buffers valid while the source is pinned (a
// memtable's shared lock, a segment's mapping). Row r is in [0, rows()).
struct ColumnRef {
  AttrType type = AttrType::kInt64;
  // rows bytes, 1 = value, 0 = null; null pointer: every row has a value.
  const uint8_t* valid = nullptr;
  const int64_t* ints = nullptr;    // kInt64
  const double* floats = nullptr;   // kFloat64
  const uint8_t* bools = nullptr;   // kBool
  // kString: codes[r] is row r's string in the dictionary (a null row's code
  // is 0 and is never read: the dictionary may be empty). kTags: row r's tags are
  // codes[tag_offsets[r]] .. codes[tag_offsets[r + 1] - 1].
  const uint32_t* codes = nullptr;
  const uint64_t* tag_offsets = nullptr;  // kTags: rows + 1
  // The dictionary of kString and kTags: entry c is
  // dict_bytes[dict_offsets[c], dict_offsets[c + 1]).
  uint64_t dict_size = 0;
  const uint64_t* dict_offsets = nullptr;  // dict_size + 1
  const char* dict_bytes = nullptr;
  // Entries strictly ascending by bytes (unsigned): a range predicate is a
  // range of codes. False for a memtable (entries in order of first write).
  bool dict_sorted = false;
};

class ColumnSource {
 public:
  virtual ~ColumnSource() = default;
  // The rows evaluated: [0, rows()), every version a layer holds (the
  // caller combines the bitmap with visibility).
  virtual uint64_t rows() const = 0;
  // Row r's id is ids()[r].
  virtual const uint64_t* ids() const = 0;
  // The column `name` of this layer, checked before it is handed out (a
  // segment's section CRCs; damage is Corruption). *present is false when
  // the layer has no such column: every row of it is null.
  virtual Status Column(std::string_view name, ColumnRef* out, bool* present) const = 0;
};

// Appends row `row` of `ref` to `out` (a column of ref's type): its value, or
// a null when !present (the layer has no such column) or the row is null.
// The caller checked what `ref` points into (ColumnSource::Column).
void AppendRow(const ColumnRef& ref, bool present, uint64_t row, AttrColumn* out);

}  // namespace pomai::filter
