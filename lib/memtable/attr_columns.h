// AttrColumns: the attribute columns of a RowTable (docs/FILTERS.md,
// "Attributes"). One typed column per name, each with exactly one slot per
// row of the table: a row written without the column (before the column
// existed, by a put that did not name it, a tombstone) is null there.
//
// Everything is appended, nothing is changed in place: int64, float64 and
// bool columns are plain arrays; string and tags columns hold a u32 code per
// row (per tag) into the column's dictionary, whose entries are in order of
// first write (so codes never change). A column keeps validity bytes only
// once some row of it is null. Not thread-safe; buffers handed out by Get
// stay valid until the next append.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "filter/column_source.h"
#include "util/attributes.h"
#include "util/status.h"

namespace pomai::memtable {

// A string dictionary: code c is bytes()[offsets()[c], offsets()[c + 1]).
// Codes are given in order of first Intern; no allocation per entry.
class StringDict {
 public:
  StringDict() : offsets_{0} {}
  // The code of `s`, adding it when new.
  uint32_t Intern(std::string_view s);
  size_t size() const { return offsets_.size() - 1; }
  const uint64_t* offsets() const { return offsets_.data(); }
  const char* bytes() const { return bytes_.data(); }
  std::string_view entry(uint32_t code) const {
    return std::string_view(bytes_).substr(offsets_[code], offsets_[code + 1] - offsets_[code]);
  }
  // Bytes allocated.
  size_t ByteSize() const;

 private:
  void Rehash(size_t slots);

  std::string bytes_;
  std::vector<uint64_t> offsets_;  // size() + 1
  std::vector<uint64_t> hashes_;   // size(): the hash of each entry, for rehashing
  std::vector<uint32_t> slots_;    // code + 1, 0 = free; a power of two, at most half full
};

class AttrColumns {
 public:
  AttrColumns() = default;
  AttrColumns(const AttrColumns&) = delete;
  AttrColumns& operator=(const AttrColumns&) = delete;

  // Rows every column holds.
  size_t rows() const { return rows_; }
  // Columns, in order of creation.
  size_t size() const { return columns_.size(); }
  bool empty() const { return columns_.empty(); }

  // INVALID_ARGUMENT naming the column and both types when a column of
  // `batch` exists here with another type.
  Status CheckTypes(const std::vector<AttrColumn>& batch) const;
  // Appends `n` rows: row j of each column of `batch` (created when new,
  // null for the rows before), null in the columns `batch` does not name.
  // Requires CheckAttrColumns(batch, n) and CheckTypes(batch) to be OK.
  void Append(const std::vector<AttrColumn>& batch, size_t n);
  // Appends `n` rows null in every column.
  void AppendNulls(size_t n);

  // The column `name` as a filter reads it (dict_sorted false), or false
  // when there is none.
  bool Get(std::string_view name, filter::ColumnRef* out) const;
  // (name, type) of every column, in order of creation.
  std::vector<std::pair<std::string, AttrType>> columns() const;
  // Bytes allocated by every column and dictionary.
  size_t ByteSize() const;

 private:
  struct Column {
    std::string name;
    AttrType type;
    std::vector<uint8_t> valid;  // rows bytes once some row is null; empty before
    std::vector<int64_t> ints;   // kInt64
    std::vector<double> floats;  // kFloat64
    std::vector<uint8_t> bools;  // kBool
    std::vector<uint32_t> codes;        // kString: one per row; kTags: one per tag
    std::vector<uint64_t> tag_offsets;  // kTags: rows + 1 offsets into codes
    StringDict dict;                    // kString, kTags
  };
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };

  Column* Find(std::string_view name) const;
  // Appends n null rows to `c`, which holds `have` rows.
  static void AppendNullRows(Column* c, size_t have, size_t n);
  // Appends the rows of `b` (n rows, c's type) to `c`, which holds rows_ rows.
  void AppendRows(Column* c, const AttrColumn& b, size_t n) const;

  size_t rows_ = 0;
  std::vector<std::unique_ptr<Column>> columns_;
  std::unordered_map<std::string, size_t, NameHash, std::equal_to<>> by_name_;  // -> index in columns_
};

}  // namespace pomai::memtable
