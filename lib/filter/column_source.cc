#include "filter/column_source.h"

#include <vector>

namespace pomai::filter {

namespace {
std::string_view DictEntry(const ColumnRef& ref, uint32_t code) {
  return std::string_view(ref.dict_bytes + ref.dict_offsets[code], ref.dict_offsets[code + 1] - ref.dict_offsets[code]);
}
}  // namespace

void AppendRow(const ColumnRef& ref, bool present, uint64_t row, AttrColumn* out) {
  if (!present || (ref.valid != nullptr && ref.valid[row] == 0)) {
    out->AppendNull();
    return;
  }
  switch (ref.type) {
    case AttrType::kInt64: out->AppendInt(ref.ints[row]); return;
    case AttrType::kFloat64: out->AppendFloat(ref.floats[row]); return;
    case AttrType::kBool: out->AppendBool(ref.bools[row] != 0); return;
    case AttrType::kString: out->AppendString(DictEntry(ref, ref.codes[row])); return;
    case AttrType::kTags: {
      thread_local std::vector<std::string_view> tags;
      tags.clear();
      for (uint64_t j = ref.tag_offsets[row]; j < ref.tag_offsets[row + 1]; ++j) tags.push_back(DictEntry(ref, ref.codes[j]));
      out->AppendTags(tags.data(), tags.size());
      return;
    }
  }
}

}  // namespace pomai::filter
