// A filter::ColumnSource over AttrColumns, for the filter's tests, fuzz
// target and benchmark: strings and tags dictionary-encoded the way a layer
// holds them (a sorted dictionary like a segment's, or one in an arbitrary
// order with unused entries, like a memtable's), columns absent from the
// layer, and a record of the columns read. Safe to read from many threads.
#pragma once

#include <algorithm>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "filter/column_source.h"

namespace pomai::filter {

class TableSource : public ColumnSource {
 public:
  enum class Dict { kSorted, kShuffled };

  TableSource(std::vector<uint64_t> ids) : ids_(std::move(ids)) {}

  // Adds `col` (ids().size() rows). kShuffled: the dictionary's entries in a
  // random order of `seed`, with `extra` unused entries among them.
  // `drop_valid`: no validity buffer (the column must have no null).
  void Add(const AttrColumn& col, Dict dict = Dict::kSorted, uint32_t seed = 0,
           const std::vector<std::string>& extra = {}, bool drop_valid = false) {
    Col& c = cols_[col.name];
    c.ref.type = col.type;
    const size_t rows = col.rows();
    c.valid = col.valid.empty() ? std::vector<uint8_t>(rows, 1) : col.valid;
    c.ref.valid = drop_valid ? nullptr : c.valid.data();
    switch (col.type) {
      case AttrType::kInt64: c.ints = col.ints; break;
      case AttrType::kFloat64: c.floats = col.floats; break;
      case AttrType::kBool: c.bools = col.bools; break;
      case AttrType::kString:
      case AttrType::kTags: {
        std::set<std::string> distinct(extra.begin(), extra.end());
        for (size_t r = 0; r < rows; ++r) {
          if (!col.has_value(r)) continue;
          if (col.type == AttrType::kString) {
            distinct.emplace(col.str(r));
          } else {
            for (size_t i = 0; i < col.tag_count(r); ++i) distinct.emplace(col.tag(r, i));
          }
        }
        std::vector<std::string> entries(distinct.begin(), distinct.end());
        if (dict == Dict::kShuffled) {
          std::mt19937 rng(seed);
          std::shuffle(entries.begin(), entries.end(), rng);
        }
        c.ref.dict_sorted = dict == Dict::kSorted;
        std::map<std::string, uint32_t, std::less<>> code;
        c.dict_offsets.push_back(0);
        for (const std::string& e : entries) {
          code.emplace(e, static_cast<uint32_t>(code.size()));
          c.dict_bytes += e;
          c.dict_offsets.push_back(c.dict_bytes.size());
        }
        c.ref.dict_size = entries.size();
        c.tag_offsets.push_back(0);
        for (size_t r = 0; r < rows; ++r) {
          if (col.type == AttrType::kString) {
            c.codes.push_back(col.has_value(r) ? code.find(col.str(r))->second : 0);
          } else {
            if (col.has_value(r))
              for (size_t i = 0; i < col.tag_count(r); ++i) c.codes.push_back(code.find(col.tag(r, i))->second);
            c.tag_offsets.push_back(c.codes.size());
          }
        }
        break;
      }
    }
    c.ref.ints = c.ints.data();
    c.ref.floats = c.floats.data();
    c.ref.bools = c.bools.data();
    c.ref.codes = c.codes.data();
    c.ref.tag_offsets = col.type == AttrType::kTags ? c.tag_offsets.data() : nullptr;
    c.ref.dict_offsets = c.dict_offsets.data();
    c.ref.dict_bytes = c.dict_bytes.data();
  }
  // Column() of `name` fails with Corruption.
  void FailColumn(std::string name) { failing_ = std::move(name); }

  uint64_t rows() const override { return ids_.size(); }
  const uint64_t* ids() const override { return ids_.data(); }
  Status Column(std::string_view name, ColumnRef* out, bool* present) const override {
    {
      std::lock_guard<std::mutex> lock(read_mu_);
      read_.emplace_back(name);
    }
    if (name == failing_) return Status::Corruption("seg-000001.seg", 4096, "attribute section CRC mismatch");
    const auto it = cols_.find(name);
    *present = it != cols_.end();
    if (*present) *out = it->second.ref;
    return Status::OK();
  }
  // The names Column() was asked for, in order (not while evaluations run).
  const std::vector<std::string>& read() const { return read_; }

 private:
  struct Col {
    ColumnRef ref;
    std::vector<uint8_t> valid;
    std::vector<int64_t> ints;
    std::vector<double> floats;
    std::vector<uint8_t> bools;
    std::vector<uint32_t> codes;
    std::vector<uint64_t> tag_offsets;
    std::vector<uint64_t> dict_offsets;
    std::string dict_bytes;
  };
  std::vector<uint64_t> ids_;
  std::map<std::string, Col, std::less<>> cols_;
  std::string failing_;
  mutable std::mutex read_mu_;
  mutable std::vector<std::string> read_;
};

}  // namespace pomai::filter
