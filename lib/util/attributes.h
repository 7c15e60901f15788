// Typed attributes (docs/FILTERS.md, "Attributes"): the columns a row of a
// collection may carry beside its vector and metadata, as one batch of rows
// holds them. The same struct carries a batch from the C ABI to the WAL
// record, from a decoded record into the memtable, and from the memtable to a
// segment writer, so every layer agrees on one layout and one check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace pomai {

// The stored numbers of the types (WAL records and segment sections use them).
enum class AttrType : uint8_t { kInt64 = 1, kFloat64 = 2, kBool = 3, kString = 4, kTags = 5 };

constexpr size_t kMaxAttrColumns = 256;        // distinct columns in one collection
constexpr size_t kMaxAttrNameLen = 255;        // bytes
constexpr size_t kMaxAttrStringLen = 65535;    // bytes of one string or one tag

// "int64", "float64", "bool", "string", "tags"; "unknown" for another number.
const char* AttrTypeName(AttrType type);
// Whether `number` is one of AttrType's.
bool IsAttrType(uint8_t number);

// One column of a batch of `rows` rows. Only the buffers of its type are used;
// the others stay empty.
struct AttrColumn {
  std::string name;
  AttrType type = AttrType::kInt64;
  // rows bytes: 1 = the row has a value, 0 = null. Empty: every row has one.
  // A null row's slot in the value buffers holds 0 / an empty string / no tags.
  std::vector<uint8_t> valid;
  std::vector<int64_t> ints;       // kInt64: rows values
  std::vector<double> floats;      // kFloat64: rows values, never NaN (infinities allowed)
  std::vector<uint8_t> bools;      // kBool: rows values, each 0 or 1
  // kString: rows + 1 offsets into `bytes` (row r is bytes[offsets[r], offsets[r + 1])).
  // kTags: rows + 1 offsets into the list of tag strings (row r's tags are
  // strings offsets[r] .. offsets[r + 1] - 1, in the order written), and
  // string j is bytes[tag_offsets[j], tag_offsets[j + 1]).
  std::vector<uint64_t> offsets;
  std::vector<uint64_t> tag_offsets;  // kTags: (number of tags) + 1 offsets into `bytes`
  std::string bytes;

  // An empty column of `type` (string and tags columns start with offsets {0}).
  static AttrColumn Make(std::string name, AttrType type);

  // Rows the column holds (by its value buffer).
  size_t rows() const;
  // Builders: append one row. Use only the one of the column's type.
  void AppendNull();
  void AppendInt(int64_t v);
  void AppendFloat(double v);
  void AppendBool(bool v);
  void AppendString(std::string_view v);
  void AppendTags(const std::string_view* tags, size_t n);

  bool has_value(size_t row) const { return valid.empty() || valid[row] != 0; }
  std::string_view str(size_t row) const;  // kString: row's string
  size_t tag_count(size_t row) const { return offsets[row + 1] - offsets[row]; }
  std::string_view tag(size_t row, size_t i) const;  // kTags: row's i-th tag
  // Bytes the column's buffers hold (for memory accounting).
  size_t ByteSize() const;
};

// Checks a batch's columns for `rows` rows; INVALID_ARGUMENT naming the
// column (and the row) otherwise: at most kMaxAttrColumns columns; names
// 1..kMaxAttrNameLen bytes of valid UTF-8 without NUL, not "id", unique in
// the batch; a known type; every buffer of the right length; valid and bools
// in {0, 1}; a null row's slot holding 0, "" or no tags; offsets starting at
// 0, non-decreasing, ending at the buffer's size; strings and tags valid
// UTF-8 of at most kMaxAttrStringLen bytes; no NaN float.
Status CheckAttrColumns(const std::vector<AttrColumn>& columns, size_t rows);

// Whether `s` is valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Checks one column name alone (the rules above); `what` names it in the message.
Status CheckAttrName(std::string_view name, std::string_view what);

}  // namespace pomai
