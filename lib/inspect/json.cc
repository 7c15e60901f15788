#include "inspect/json.h"

#include <cmath>
#include <cstdio>

namespace pomai::inspect {

Json Json::Object(std::initializer_list<std::pair<std::string, Json>> members) {
  Json j;
  j.type_ = Type::kObject;
  j.members_.assign(members.begin(), members.end());
  return j;
}

Json& Json::Set(const std::string& key, Json value) {
  for (auto& [k, v] : members_) {
    if (k == key) {
      v = std::move(value);
      return v;
    }
  }
  members_.emplace_back(key, std::move(value));
  return members_.back().second;
}

const Json& Json::operator[](const std::string& key) const {
  static const Json kNull;
  for (const auto& [k, v] : members_) {
    if (k == key) return v;
  }
  return kNull;
}

bool Json::Has(const std::string& key) const {
  for (const auto& [k, v] : members_) {
    if (k == key) return true;
  }
  return false;
}

Json& Json::Push(Json value) {
  items_.push_back(std::move(value));
  return items_.back();
}

uint64_t Json::AsUint() const {
  switch (type_) {
    case Type::kUint: return u_;
    case Type::kInt: return static_cast<uint64_t>(i_);
    case Type::kDouble: return static_cast<uint64_t>(d_);
    default: return 0;
  }
}

double Json::AsDouble() const {
  switch (type_) {
    case Type::kUint: return static_cast<double>(u_);
    case Type::kInt: return static_cast<double>(i_);
    case Type::kDouble: return d_;
    default: return 0;
  }
}

namespace {

// `s` quoted and escaped as a JSON string.
std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {  // keep the output ASCII: paths may hold any byte
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += "\"";
  return out;
}

std::string Number(double d) {
  if (!std::isfinite(d)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", d);
  return buf;
}

}  // namespace

std::string Json::Text() const {
  switch (type_) {
    case Type::kNull: return "-";
    case Type::kString: return s_;
    case Type::kDouble: return std::isfinite(d_) ? Number(d_) : std::to_string(d_);
    default: return Dump();
  }
}

std::string Json::Dump() const {
  std::string out;
  DumpTo(&out, 0);
  return out;
}

void Json::DumpTo(std::string* out, int indent) const {
  const std::string pad(static_cast<size_t>(indent + 2), ' ');
  const std::string close_pad(static_cast<size_t>(indent), ' ');
  switch (type_) {
    case Type::kNull: *out += "null"; break;
    case Type::kBool: *out += b_ ? "true" : "false"; break;
    case Type::kInt: *out += std::to_string(i_); break;
    case Type::kUint: *out += std::to_string(u_); break;
    case Type::kDouble: *out += Number(d_); break;
    case Type::kString: *out += JsonQuote(s_); break;
    case Type::kArray: {
      if (items_.empty()) {
        *out += "[]";
        break;
      }
      // Arrays of scalars stay on one line (vector prefixes, level counts).
      bool scalars = true;
      for (const Json& j : items_) scalars = scalars && j.type_ != Type::kArray && j.type_ != Type::kObject;
      *out += "[";
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i > 0) *out += scalars ? ", " : ",";
        if (!scalars) *out += "\n" + pad;
        items_[i].DumpTo(out, indent + 2);
      }
      if (!scalars) *out += "\n" + close_pad;
      *out += "]";
      break;
    }
    case Type::kObject: {
      if (members_.empty()) {
        *out += "{}";
        break;
      }
      *out += "{";
      for (size_t i = 0; i < members_.size(); ++i) {
        if (i > 0) *out += ",";
        *out += "\n" + pad + JsonQuote(members_[i].first) + ": ";
        members_[i].second.DumpTo(out, indent + 2);
      }
      *out += "\n" + close_pad + "}";
      break;
    }
  }
}

}  // namespace pomai::inspect
