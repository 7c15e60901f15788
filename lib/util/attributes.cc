#include "util/attributes.h"

#include <cmath>
#include <unordered_set>

#include "util/limits.h"

namespace pomai {

const char* AttrTypeName(AttrType type) {
  switch (type) {
    case AttrType::kInt64: return "int64";
    case AttrType::kFloat64: return "float64";
    case AttrType::kBool: return "bool";
    case AttrType::kString: return "string";
    case AttrType::kTags: return "tags";
  }
  return "unknown";
}

bool IsAttrType(uint8_t number) { return number >= 1 && number <= 5; }

AttrColumn AttrColumn::Make(std::string name, AttrType type) {
  AttrColumn c;
  c.name = std::move(name);
  c.type = type;
  if (type == AttrType::kString || type == AttrType::kTags) c.offsets.push_back(0);
  if (type == AttrType::kTags) c.tag_offsets.push_back(0);
  return c;
}

size_t AttrColumn::rows() const {
  switch (type) {
    case AttrType::kInt64: return ints.size();
    case AttrType::kFloat64: return floats.size();
    case AttrType::kBool: return bools.size();
    case AttrType::kString:
    case AttrType::kTags: return offsets.empty() ? 0 : offsets.size() - 1;
  }
  return 0;
}

void AttrColumn::AppendNull() {
  if (valid.empty()) valid.assign(rows(), 1);
  valid.push_back(0);
  switch (type) {
    case AttrType::kInt64: ints.push_back(0); break;
    case AttrType::kFloat64: floats.push_back(0); break;
    case AttrType::kBool: bools.push_back(0); break;
    case AttrType::kString: offsets.push_back(bytes.size()); break;
    case AttrType::kTags: offsets.push_back(offsets.back()); break;
  }
}

void AttrColumn::AppendInt(int64_t v) {
  if (!valid.empty()) valid.push_back(1);
  ints.push_back(v);
}
void AttrColumn::AppendFloat(double v) {
  if (!valid.empty()) valid.push_back(1);
  floats.push_back(v);
}
void AttrColumn::AppendBool(bool v) {
  if (!valid.empty()) valid.push_back(1);
  bools.push_back(v ? 1 : 0);
}
void AttrColumn::AppendString(std::string_view v) {
  if (!valid.empty()) valid.push_back(1);
  bytes.append(v);
  offsets.push_back(bytes.size());
}
void AttrColumn::AppendTags(const std::string_view* tags, size_t n) {
  if (!valid.empty()) valid.push_back(1);
  for (size_t i = 0; i < n; ++i) {
    bytes.append(tags[i]);
    tag_offsets.push_back(bytes.size());
  }
  offsets.push_back(tag_offsets.size() - 1);
}

std::string_view AttrColumn::str(size_t row) const {
  return std::string_view(bytes).substr(offsets[row], offsets[row + 1] - offsets[row]);
}

std::string_view AttrColumn::tag(size_t row, size_t i) const {
  const size_t j = offsets[row] + i;
  return std::string_view(bytes).substr(tag_offsets[j], tag_offsets[j + 1] - tag_offsets[j]);
}

size_t AttrColumn::ByteSize() const {
  return name.size() + valid.size() + ints.size() * 8 + floats.size() * 8 + bools.size() + offsets.size() * 8 +
         tag_offsets.size() * 8 + bytes.size();
}

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

Status CheckAttrName(std::string_view name, std::string_view what) {
  const std::string w(what);
  if (name.empty() || name.size() > kMaxAttrNameLen)
    return Status::InvalidArgument(w + " '" + Printable(name) + "' is " + std::to_string(name.size()) +
                                   " bytes (column names are 1 to 255 bytes)");
  if (name.find('\0') != std::string_view::npos)
    return Status::InvalidArgument(w + " '" + Printable(name) + "' contains a NUL byte");
  if (!IsValidUtf8(name)) return Status::InvalidArgument(w + " '" + Printable(name) + "' is not valid UTF-8");
  if (name == "id") return Status::InvalidArgument(w + " 'id' is reserved (it names the row id in filters)");
  return Status::OK();
}

namespace {

// Checks offsets: size `count + 1`, starting at 0, non-decreasing, ending at `end`.
Status CheckOffsets(const std::vector<uint64_t>& off, size_t count, uint64_t end, const std::string& what) {
  // Compared as size - 1 == count: `count` may come from a damaged buffer
  // (a tags column's last list offset), where count + 1 would wrap to 0.
  if (off.empty() || off.size() - 1 != count)
    return Status::InvalidArgument(what + " has " + std::to_string(off.size()) + " entries, not " +
                                   std::to_string(count) + " + 1");
  if (off[0] != 0) return Status::InvalidArgument(what + " start at " + std::to_string(off[0]) + ", not 0");
  for (size_t i = 0; i < count; ++i) {
    if (off[i + 1] < off[i])
      return Status::InvalidArgument(what + " decrease at entry " + std::to_string(i + 1) + " (" +
                                     std::to_string(off[i]) + " then " + std::to_string(off[i + 1]) + ")");
  }
  if (off[count] != end)
    return Status::InvalidArgument(what + " end at " + std::to_string(off[count]) + ", not at the data's " +
                                   std::to_string(end));
  return Status::OK();
}

Status CheckString(std::string_view s, const std::string& what) {
  if (s.size() > kMaxAttrStringLen)
    return Status::InvalidArgument(what + " is " + std::to_string(s.size()) + " bytes (at most 65535)");
  if (!IsValidUtf8(s)) return Status::InvalidArgument(what + " is not valid UTF-8");
  return Status::OK();
}

Status NullSlot(const std::string& col, size_t r) {
  return Status::InvalidArgument(col + " row " + std::to_string(r) +
                                 " is null but its slot holds a value (a null holds 0, \"\" or no tags)");
}

}  // namespace

Status CheckAttrColumns(const std::vector<AttrColumn>& columns, size_t rows) {
  if (columns.size() > kMaxAttrColumns)
    return Status::InvalidArgument("a batch names " + std::to_string(columns.size()) + " attribute columns (at most " +
                                   std::to_string(kMaxAttrColumns) + ")");
  std::unordered_set<std::string_view> names;
  for (const AttrColumn& c : columns) {
    POMAI_RETURN_IF_ERROR(CheckAttrName(c.name, "attribute column"));
    const std::string col = "attribute column '" + Printable(c.name) + "'";
    if (!names.insert(c.name).second) return Status::InvalidArgument(col + " appears twice in the batch");
    if (!IsAttrType(static_cast<uint8_t>(c.type)))
      return Status::InvalidArgument(col + " has unknown type " + std::to_string(static_cast<int>(c.type)));
    if (!c.valid.empty()) {
      if (c.valid.size() != rows)
        return Status::InvalidArgument(col + " has " + std::to_string(c.valid.size()) + " validity entries for " +
                                       std::to_string(rows) + " rows");
      for (size_t r = 0; r < rows; ++r) {
        if (c.valid[r] > 1)
          return Status::InvalidArgument(col + " row " + std::to_string(r) + " has validity byte " +
                                         std::to_string(c.valid[r]) + " (0 or 1)");
      }
    }
    auto count_is = [&](size_t have, const char* what) {
      return have == rows ? Status::OK()
                          : Status::InvalidArgument(col + " (" + AttrTypeName(c.type) + ") has " +
                                                    std::to_string(have) + " " + what + " for " +
                                                    std::to_string(rows) + " rows");
    };
    switch (c.type) {
      case AttrType::kInt64:
        POMAI_RETURN_IF_ERROR(count_is(c.ints.size(), "values"));
        for (size_t r = 0; r < rows; ++r) {
          if (!c.has_value(r) && c.ints[r] != 0) return NullSlot(col, r);
        }
        break;
      case AttrType::kFloat64:
        POMAI_RETURN_IF_ERROR(count_is(c.floats.size(), "values"));
        for (size_t r = 0; r < rows; ++r) {
          if (c.has_value(r) && std::isnan(c.floats[r]))
            return Status::InvalidArgument(col + " row " + std::to_string(r) + " is NaN (use a null instead)");
          if (!c.has_value(r) && c.floats[r] != 0) return NullSlot(col, r);
        }
        break;
      case AttrType::kBool:
        POMAI_RETURN_IF_ERROR(count_is(c.bools.size(), "values"));
        for (size_t r = 0; r < rows; ++r) {
          if (c.bools[r] > 1)
            return Status::InvalidArgument(col + " row " + std::to_string(r) + " has bool byte " +
                                           std::to_string(c.bools[r]) + " (0 or 1)");
          if (!c.has_value(r) && c.bools[r] != 0) return NullSlot(col, r);
        }
        break;
      case AttrType::kString:
        POMAI_RETURN_IF_ERROR(CheckOffsets(c.offsets, rows, c.bytes.size(), col + "'s offsets"));
        for (size_t r = 0; r < rows; ++r) {
          POMAI_RETURN_IF_ERROR(CheckString(c.str(r), col + " row " + std::to_string(r)));
          if (!c.has_value(r) && !c.str(r).empty()) return NullSlot(col, r);
        }
        break;
      case AttrType::kTags: {
        const uint64_t tags = c.offsets.empty() ? 0 : c.offsets.back();
        POMAI_RETURN_IF_ERROR(CheckOffsets(c.offsets, rows, tags, col + "'s list offsets"));
        POMAI_RETURN_IF_ERROR(CheckOffsets(c.tag_offsets, tags, c.bytes.size(), col + "'s tag offsets"));
        for (size_t r = 0; r < rows; ++r) {
          if (!c.has_value(r) && c.tag_count(r) != 0) return NullSlot(col, r);
          for (size_t i = 0; i < c.tag_count(r); ++i)
            POMAI_RETURN_IF_ERROR(
                CheckString(c.tag(r, i), col + " row " + std::to_string(r) + " tag " + std::to_string(i)));
        }
        break;
      }
    }
  }
  return Status::OK();
}

}  // namespace pomai
