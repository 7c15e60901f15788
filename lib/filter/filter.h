// The filter expression language (docs/FILTERS.md): a Filter is an expression
// parsed and type-checked once against a collection's columns, ANDed with an
// optional id allow-list, then evaluated into a Bitmap per layer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "filter/column_source.h"
#include "util/attributes.h"
#include "util/bitmap.h"
#include "util/status.h"

namespace pomai::filter {

// The columns a collection has, by name (its schema).
using Schema = std::vector<std::pair<std::string, AttrType>>;

// Limits of an expression (docs/FILTERS.md, "Errors").
constexpr size_t kMaxExpressionBytes = size_t{1} << 20;
constexpr int kMaxDepth = 64;  // parentheses and NOTs open at once

// A compiled filter: immutable, cheap to copy, safe to evaluate from many
// threads at once.
class Filter {
 public:
  // The filter that passes every row.
  Filter();

  // Parses `expression` and checks it against `schema`, ANDed with the ids
  // [ids, ids + id_count) when ids is not null (duplicates and any order are
  // fine; the array is copied). INVALID_ARGUMENT "filter: at <byte>: ..." for
  // a parse error, an unknown column, a type mismatch, a bad literal and the
  // depth limit, "filter: the expression is <n> bytes, ..." past the size
  // limit (docs/FILTERS.md, "Errors").
  static Result<Filter> Compile(std::string_view expression, const Schema& schema, const uint64_t* ids = nullptr,
                                size_t id_count = 0);

  // No expression and no allow-list: every row passes.
  bool passes_all() const;
  // The columns the expression reads (not `id`), each once, in order of first use.
  const std::vector<std::string>& columns() const;
  // Whether evaluating it reads the rows' ids (an `id` predicate or an allow-list).
  bool reads_ids() const;
  // Sets *out to src.rows() bits, bit r set when row r passes. Reads only
  // columns(); a column the layer lacks is null in every row. Returns the
  // error of src.Column() (Corruption) as it is, and Internal when the
  // layer's column has another type than the schema's.
  Status Evaluate(const ColumnSource& src, Bitmap* out) const;
  // The compiled filter as text, NOT pushed down to the predicates, ranges
  // and sets normalized, e.g. `("year" in int [2000, 2010] AND NOT "genre" = 'x')`.
  std::string ToString() const;

  struct Compiled;

 private:
  friend class RowTest;
  explicit Filter(std::shared_ptr<const Compiled> c) : c_(std::move(c)) {}
  std::shared_ptr<const Compiled> c_;
};

// A filter bound to one layer's columns, asked about single rows: for a
// graph walk, which reads a few thousand of a layer's rows, where Evaluate
// would read every row (0.5-1 ms per million rows, per query when each
// query has its own filter). Passes(r) is bit r of Evaluate(src), by the
// same compiled predicates and SQL null rules, a row at a time; EvaluateAll
// is Evaluate over the bound columns. Thread-safe (both are const). Holds
// the filter and src's buffers (ColumnRef, ids()), not src itself: what src
// points into must stay mapped and unchanged while the RowTest is used (a
// segment's mapping, a cached column set; not a memtable, whose table may
// move).
class RowTest {
 public:
  // Reads src's columns as Evaluate does (the same errors: Corruption from
  // src.Column, Internal for a column of another type).
  static Result<std::unique_ptr<RowTest>> Bind(const Filter& f, const ColumnSource& src);
  ~RowTest();
  RowTest(const RowTest&) = delete;
  RowTest& operator=(const RowTest&) = delete;

  uint64_t rows() const;
  // Whether row `row` < rows() passes.
  bool Passes(uint64_t row) const;
  // Every row's bit into *out, as Filter::Evaluate.
  void EvaluateAll(Bitmap* out) const;

  class Bound;

 private:
  explicit RowTest(std::unique_ptr<Bound> b);
  std::unique_ptr<Bound> b_;
};

}  // namespace pomai::filter
