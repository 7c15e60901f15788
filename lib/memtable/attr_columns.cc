#include "memtable/attr_columns.h"

#include <algorithm>

#include "util/limits.h"

namespace pomai::memtable {

uint32_t StringDict::Intern(std::string_view s) {
  const uint64_t h = std::hash<std::string_view>()(s);
  if ((size() + 1) * 2 > slots_.size()) Rehash(slots_.empty() ? 64 : slots_.size() * 2);
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const uint32_t slot = slots_[i];
    if (slot == 0) {
      const auto code = static_cast<uint32_t>(size());
      bytes_.append(s);
      offsets_.push_back(bytes_.size());
      hashes_.push_back(h);
      slots_[i] = code + 1;
      return code;
    }
    if (hashes_[slot - 1] == h && entry(slot - 1) == s) return slot - 1;
  }
}

void StringDict::Rehash(size_t slots) {
  slots_.assign(slots, 0);
  const size_t mask = slots - 1;
  for (size_t code = 0; code < hashes_.size(); ++code) {
    size_t i = hashes_[code] & mask;
    while (slots_[i] != 0) i = (i + 1) & mask;
    slots_[i] = static_cast<uint32_t>(code + 1);
  }
}

size_t StringDict::ByteSize() const {
  return bytes_.capacity() + offsets_.capacity() * 8 + hashes_.capacity() * 8 + slots_.capacity() * 4;
}

AttrColumns::Column* AttrColumns::Find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : columns_[it->second].get();
}

Status AttrColumns::CheckTypes(const std::vector<AttrColumn>& batch) const {
  for (const AttrColumn& b : batch) {
    const Column* c = Find(b.name);
    if (c != nullptr && c->type != b.type)
      return Status::InvalidArgument("attribute column '" + Printable(b.name) + "' is " + AttrTypeName(c->type) +
                                     "; the batch gives it as " + AttrTypeName(b.type));
  }
  return Status::OK();
}

void AttrColumns::AppendNullRows(Column* c, size_t have, size_t n) {
  if (n == 0) return;
  if (c->valid.empty()) c->valid.assign(have, 1);
  c->valid.resize(have + n, 0);
  switch (c->type) {
    case AttrType::kInt64: c->ints.resize(have + n, 0); break;
    case AttrType::kFloat64: c->floats.resize(have + n, 0); break;
    case AttrType::kBool: c->bools.resize(have + n, 0); break;
    case AttrType::kString: c->codes.resize(have + n, 0); break;
    case AttrType::kTags: c->tag_offsets.resize(have + n + 1, c->tag_offsets.back()); break;
  }
}

void AttrColumns::AppendRows(Column* c, const AttrColumn& b, size_t n) const {
  const bool some_null = !b.valid.empty() && std::find(b.valid.begin(), b.valid.end(), 0) != b.valid.end();
  if (some_null || !c->valid.empty()) {
    if (c->valid.empty()) c->valid.assign(rows_, 1);
    if (b.valid.empty()) {
      c->valid.resize(rows_ + n, 1);
    } else {
      c->valid.insert(c->valid.end(), b.valid.begin(), b.valid.end());
    }
  }
  // A null row's slot in `b` holds 0, "" or no tags (CheckAttrColumns), as ours must.
  switch (c->type) {
    case AttrType::kInt64: c->ints.insert(c->ints.end(), b.ints.begin(), b.ints.end()); break;
    case AttrType::kFloat64: c->floats.insert(c->floats.end(), b.floats.begin(), b.floats.end()); break;
    case AttrType::kBool: c->bools.insert(c->bools.end(), b.bools.begin(), b.bools.end()); break;
    case AttrType::kString:
      c->codes.reserve(rows_ + n);
      for (size_t r = 0; r < n; ++r) c->codes.push_back(b.has_value(r) ? c->dict.Intern(b.str(r)) : 0);
      break;
    case AttrType::kTags:
      c->codes.reserve(c->codes.size() + b.tag_offsets.size() - 1);
      c->tag_offsets.reserve(rows_ + n + 1);
      for (size_t r = 0; r < n; ++r) {
        for (size_t i = 0; i < b.tag_count(r); ++i) c->codes.push_back(c->dict.Intern(b.tag(r, i)));
        c->tag_offsets.push_back(c->codes.size());
      }
      break;
  }
}

void AttrColumns::Append(const std::vector<AttrColumn>& batch, size_t n) {
  for (const AttrColumn& b : batch) {
    if (Find(b.name) != nullptr) continue;
    auto c = std::make_unique<Column>();
    c->name = b.name;
    c->type = b.type;
    if (c->type == AttrType::kTags) c->tag_offsets.push_back(0);
    AppendNullRows(c.get(), 0, rows_);  // the rows before it
    by_name_.emplace(c->name, columns_.size());
    columns_.push_back(std::move(c));
  }
  // Which batch column feeds each of ours (most batches name few columns).
  std::vector<const AttrColumn*> source(columns_.size(), nullptr);
  for (const AttrColumn& b : batch) source[by_name_.find(b.name)->second] = &b;
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (source[i] != nullptr) {
      AppendRows(columns_[i].get(), *source[i], n);
    } else {
      AppendNullRows(columns_[i].get(), rows_, n);
    }
  }
  rows_ += n;
}

void AttrColumns::AppendNulls(size_t n) {
  for (auto& c : columns_) AppendNullRows(c.get(), rows_, n);
  rows_ += n;
}

bool AttrColumns::Get(std::string_view name, filter::ColumnRef* out) const {
  const Column* c = Find(name);
  if (c == nullptr) return false;
  filter::ColumnRef ref;
  ref.type = c->type;
  ref.valid = c->valid.empty() ? nullptr : c->valid.data();
  ref.ints = c->ints.data();
  ref.floats = c->floats.data();
  ref.bools = c->bools.data();
  ref.codes = c->codes.data();
  ref.tag_offsets = c->tag_offsets.data();
  if (c->type == AttrType::kString || c->type == AttrType::kTags) {
    ref.dict_size = c->dict.size();
    ref.dict_offsets = c->dict.offsets();
    ref.dict_bytes = c->dict.bytes();
  }
  ref.dict_sorted = false;
  *out = ref;
  return true;
}

std::vector<std::pair<std::string, AttrType>> AttrColumns::columns() const {
  std::vector<std::pair<std::string, AttrType>> out;
  out.reserve(columns_.size());
  for (const auto& c : columns_) out.emplace_back(c->name, c->type);
  return out;
}

size_t AttrColumns::ByteSize() const {
  size_t bytes = by_name_.size() * 64;  // the name map's nodes, roughly
  for (const auto& c : columns_) {
    bytes += sizeof(Column) + c->name.capacity() + c->valid.capacity() + c->ints.capacity() * 8 +
             c->floats.capacity() * 8 + c->bools.capacity() + c->codes.capacity() * 4 + c->tag_offsets.capacity() * 8 +
             c->dict.ByteSize();
  }
  return bytes;
}

}  // namespace pomai::memtable
