// libFuzzer target: the filter language (lib/filter, docs/FILTERS.md).
//
// Input: the expression text, compiled against a fixed schema of every
// column type (names that need quoting among them). Checks: Compile never
// crashes and fails only with INVALID_ARGUMENT "filter: ..."; a compiled
// filter evaluates on a 70-row layer (nulls, a column the layer lacks) to the
// same rows whether its dictionaries are sorted or shuffled with unused
// entries; ToString works; and NOT (expression), when within the limits,
// passes no row the expression passes (a row is never both true and false),
// and a row that passes neither has a null in a column the expression reads.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "filter/filter.h"
#include "filter/table_source.h"
#include "fuzz_util.h"

namespace {

using namespace pomai;
using filter::TableSource;

const filter::Schema& FuzzSchema() {
  static const filter::Schema schema = {{"n", AttrType::kInt64},   {"x", AttrType::kFloat64}, {"b", AttrType::kBool},
                                        {"s", AttrType::kString},  {"t", AttrType::kTags},    {"and", AttrType::kInt64},
                                        {"é \"q\"", AttrType::kString}, {"gone", AttrType::kFloat64}};
  return schema;
}

constexpr size_t kRows = 70;

// The layer: every schema column but "gone"; row r has nulls where r % 5 == 3.
std::vector<AttrColumn> Columns() {
  const char* kStrs[] = {"", "a", "ab", "b", "é", "it's", "zz"};
  std::vector<AttrColumn> cols;
  for (const auto& [name, type] : FuzzSchema()) {
    if (name == "gone") continue;
    AttrColumn c = AttrColumn::Make(name, type);
    for (size_t r = 0; r < kRows; ++r) {
      if (r % 5 == 3 && name != "and") {
        c.AppendNull();
        continue;
      }
      const int64_t v = static_cast<int64_t>(r % 11) - 5;
      switch (type) {
        case AttrType::kInt64: c.AppendInt(r == 69 ? INT64_MAX : r == 68 ? INT64_MIN : v); break;
        case AttrType::kFloat64: c.AppendFloat(static_cast<double>(v) / 2); break;
        case AttrType::kBool: c.AppendBool(r % 3 == 0); break;
        case AttrType::kString: c.AppendString(kStrs[r % 7]); break;
        case AttrType::kTags: {
          std::vector<std::string_view> tags;
          for (size_t k = 0; k < r % 4; ++k) tags.push_back(kStrs[(r + 2 * k) % 7]);
          c.AppendTags(tags.data(), tags.size());
          break;
        }
      }
    }
    cols.push_back(std::move(c));
  }
  return cols;
}

struct Layers {
  Layers() : sorted(Ids()), shuffled(Ids()) {
    for (const AttrColumn& c : Columns()) {
      sorted.Add(c);
      shuffled.Add(c, TableSource::Dict::kShuffled, 5, {"c", "ac", "\xc3\xa9t\xc3\xa9"});
    }
  }
  static std::vector<uint64_t> Ids() {
    std::vector<uint64_t> ids;
    for (uint64_t r = 0; r < kRows; ++r) ids.push_back(r * r);
    ids.back() = ~uint64_t{0};
    return ids;
  }
  TableSource sorted, shuffled;
};

Bitmap Eval(const filter::Filter& f, const TableSource& src) {
  Bitmap b;
  const Status s = f.Evaluate(src, &b);
  FUZZ_CHECK(s.ok(), s.ToString());
  FUZZ_CHECK(b.size() == kRows, "one bit per row");
  return b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Layers* layers = new Layers();
  static const std::vector<AttrColumn>* cols = new std::vector<AttrColumn>(Columns());
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto f = filter::Filter::Compile(text, FuzzSchema());
  if (!f.ok()) {
    FUZZ_CHECK(f.status().IsInvalidArgument(), f.status().ToString());
    FUZZ_CHECK(f.status().message().rfind("filter: ", 0) == 0, f.status().message());
    return 0;
  }
  FUZZ_CHECK(!f->ToString().empty(), "ToString");
  const Bitmap yes = Eval(*f, layers->sorted);
  const Bitmap same = Eval(*f, layers->shuffled);
  FUZZ_CHECK(std::equal(yes.words(), yes.words() + yes.word_count(), same.words()),
             "the dictionaries' order changes no result: " + text);
  // The row-at-a-time test (a deferred filter's) answers every row as the bitmap.
  for (const TableSource* src : {&layers->sorted, &layers->shuffled}) {
    auto test = filter::RowTest::Bind(*f, *src);
    FUZZ_CHECK(test.ok(), test.status().ToString());
    for (size_t r = 0; r < kRows; ++r)
      FUZZ_CHECK((*test)->Passes(r) == yes.Get(r), "RowTest::Passes differs from Evaluate at a row: " + text);
  }
  auto negated = filter::Filter::Compile("NOT (" + text + ")", FuzzSchema());
  if (!negated.ok()) return 0;  // deeper or longer than the limits
  const Bitmap no = Eval(*negated, layers->sorted);
  for (size_t r = 0; r < kRows; ++r) {
    FUZZ_CHECK(!(yes.Get(r) && no.Get(r)), "a row both passes and fails: " + text);
    if (yes.Get(r) || no.Get(r)) continue;
    // Unknown: some column read must be null in this row.
    bool has_null = false;
    for (const std::string& name : f->columns()) {
      bool found = false;
      for (const AttrColumn& c : *cols) {
        if (c.name != name) continue;
        found = true;
        has_null = has_null || !c.has_value(r);
      }
      has_null = has_null || !found;
    }
    FUZZ_CHECK(has_null, "a row without nulls is neither true nor false: " + text);
  }
  return 0;
}
