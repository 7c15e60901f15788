// A small JSON value for pomai-inspect's reports: every command builds one
// Json object, printed either as JSON (--json) or as text. Objects keep their
// keys in insertion order so the output is stable.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace pomai::inspect {

class Json {
 public:
  enum class Type { kNull, kBool, kInt, kUint, kDouble, kString, kArray, kObject };

  Json() = default;  // null
  Json(std::nullptr_t) {}  // NOLINT: implicit by design
  Json(bool b) : type_(Type::kBool), b_(b) {}  // NOLINT
  Json(int v) : type_(Type::kInt), i_(v) {}  // NOLINT
  Json(int64_t v) : type_(Type::kInt), i_(v) {}  // NOLINT
  Json(uint32_t v) : type_(Type::kUint), u_(v) {}  // NOLINT
  Json(uint64_t v) : type_(Type::kUint), u_(v) {}  // NOLINT
  Json(double v) : type_(Type::kDouble), d_(v) {}  // NOLINT: non-finite values print as null
  Json(const char* s) : type_(Type::kString), s_(s) {}  // NOLINT
  Json(std::string s) : type_(Type::kString), s_(std::move(s)) {}  // NOLINT

  static Json Array() { Json j; j.type_ = Type::kArray; return j; }
  // An object with `members`, in that order: Json::Object({{"file", name}, {"bytes", n}}).
  static Json Object(std::initializer_list<std::pair<std::string, Json>> members = {});

  bool is_null() const { return type_ == Type::kNull; }

  // Object: sets `key` (replacing an existing value) and returns the value.
  Json& Set(const std::string& key, Json value);
  // Object: the value of `key`, or a shared null when absent.
  const Json& operator[](const std::string& key) const;
  bool Has(const std::string& key) const;
  // Array: appends and returns the new element.
  Json& Push(Json value);
  const std::vector<Json>& items() const { return items_; }
  const std::vector<std::pair<std::string, Json>>& members() const { return members_; }

  bool AsBool() const { return b_; }
  uint64_t AsUint() const;
  double AsDouble() const;
  const std::string& AsString() const { return s_; }

  // Pretty-printed JSON (two-space indent), no trailing newline.
  std::string Dump() const;
  // The value as text: strings unquoted, null as "-", numbers as JSON prints them.
  std::string Text() const;

 private:
  void DumpTo(std::string* out, int indent) const;

  Type type_ = Type::kNull;
  bool b_ = false;
  int64_t i_ = 0;
  uint64_t u_ = 0;
  double d_ = 0;
  std::string s_;
  std::vector<Json> items_;
  std::vector<std::pair<std::string, Json>> members_;
};

}  // namespace pomai::inspect
