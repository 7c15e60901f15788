// Filter::Compile: the lexer, a recursive-descent parser whose depth is
// checked before each level it opens (at most kMaxDepth parentheses and NOTs,
// so the stack is bounded whatever the input), and the type checker, which
// turns each predicate's literals into its column's representation. NOT is
// pushed down while parsing: a subtree is parsed with the parity of the NOTs
// above it, AND and OR swap under an odd parity (De Morgan) and a predicate
// takes the parity as its `negated` flag.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "filter/compiled.h"

namespace pomai::filter {

// ---- IdSet ----

namespace {
constexpr uint64_t kEmptySlot = ~uint64_t{0};
constexpr size_t kHashFrom = 32;  // smaller sets are searched by binary search
inline size_t SlotOf(uint64_t id, int shift) { return static_cast<size_t>((id * 0x9E3779B97F4A7C15ull) >> shift); }
}  // namespace

IdSet::IdSet(std::vector<uint64_t> ids) : sorted_(std::move(ids)) {
  std::sort(sorted_.begin(), sorted_.end());
  sorted_.erase(std::unique(sorted_.begin(), sorted_.end()), sorted_.end());
  if (sorted_.size() < kHashFrom) return;
  int bits = 1;
  while ((size_t{1} << bits) < 2 * sorted_.size()) ++bits;
  shift_ = 64 - bits;
  bit_shift_ = shift_ - 3;
  slots_.assign(size_t{1} << bits, kEmptySlot);
  bits_.assign(slots_.size() * 8 / 64, 0);
  const size_t mask = slots_.size() - 1;
  for (uint64_t id : sorted_) {
    const size_t bit = SlotOf(id, bit_shift_);
    bits_[bit / 64] |= uint64_t{1} << (bit % 64);
    if (id == kEmptySlot) {
      has_empty_value_ = true;
      continue;
    }
    size_t s = SlotOf(id, shift_);
    while (slots_[s] != kEmptySlot) s = (s + 1) & mask;
    slots_[s] = id;
  }
}

bool IdSet::Contains(uint64_t id) const {
  if (slots_.empty()) return std::binary_search(sorted_.begin(), sorted_.end(), id);
  const size_t bit = SlotOf(id, bit_shift_);
  if ((bits_[bit / 64] >> (bit % 64) & 1) == 0) return false;
  if (id == kEmptySlot) return has_empty_value_;
  const size_t mask = slots_.size() - 1;
  for (size_t s = SlotOf(id, shift_);; s = (s + 1) & mask) {
    if (slots_[s] == id) return true;
    if (slots_[s] == kEmptySlot) return false;
  }
}

namespace {

// ---- Lexer ----

enum class Kw : uint8_t { kNone, kAnd, kOr, kNot, kIn, kBetween, kIs, kNull, kContains, kAny, kAll, kTrue, kFalse, kId };
enum class Op : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };

struct Token {
  enum Type : uint8_t { kEnd, kIdent, kQuoted, kString, kNumber, kKeyword, kLParen, kRParen, kComma, kCmp } type = kEnd;
  size_t pos = 0;
  std::string_view text;  // the source bytes of the token
  std::string value;      // kQuoted, kString: unescaped; kIdent: the name
  Kw kw = Kw::kNone;
  Op op = Op::kEq;
};

Status Error(size_t pos, const std::string& what) {
  return Status::InvalidArgument("filter: at " + std::to_string(pos) + ": " + what);
}

// At most 48 bytes of `s` (cut at a UTF-8 character boundary), quoted.
std::string Quote(std::string_view s) {
  constexpr size_t kMax = 48;
  if (s.size() <= kMax) return "'" + std::string(s) + "'";
  size_t n = kMax;
  while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;
  return "'" + std::string(s.substr(0, n)) + "...'";
}

std::string Describe(const Token& t) { return t.type == Token::kEnd ? "the end of the expression" : Quote(t.text); }

Kw KeywordOf(std::string_view word) {
  static constexpr std::pair<std::string_view, Kw> kKeywords[] = {
      {"and", Kw::kAnd},   {"or", Kw::kOr},     {"not", Kw::kNot},   {"in", Kw::kIn},       {"between", Kw::kBetween},
      {"is", Kw::kIs},     {"null", Kw::kNull}, {"contains", Kw::kContains}, {"any", Kw::kAny}, {"all", Kw::kAll},
      {"true", Kw::kTrue}, {"false", Kw::kFalse}, {"id", Kw::kId}};
  if (word.size() > 8) return Kw::kNone;
  char lower[8];
  for (size_t i = 0; i < word.size(); ++i) {
    const char c = word[i];
    lower[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  const std::string_view w(lower, word.size());
  for (const auto& [name, kw] : kKeywords)
    if (name == w) return kw;
  return Kw::kNone;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsIdentStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c); }

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  // The next token into *t.
  Status Next(Token* t) {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n')) ++i_;
    t->pos = i_;
    t->value.clear();
    t->kw = Kw::kNone;
    if (i_ == s_.size()) {
      t->type = Token::kEnd;
      t->text = {};
      return Status::OK();
    }
    const size_t start = i_;
    const char c = s_[i_];
    auto one = [&](Token::Type type, size_t len) {
      t->type = type;
      i_ += len;
      t->text = s_.substr(start, len);
      return Status::OK();
    };
    auto cmp = [&](Op op, size_t len) {
      t->op = op;
      return one(Token::kCmp, len);
    };
    const char next = i_ + 1 < s_.size() ? s_[i_ + 1] : '\0';
    switch (c) {
      case '(': return one(Token::kLParen, 1);
      case ')': return one(Token::kRParen, 1);
      case ',': return one(Token::kComma, 1);
      case '=': return cmp(Op::kEq, next == '=' ? 2 : 1);
      case '!':
        if (next == '=') return cmp(Op::kNe, 2);
        return Error(start, "unexpected '!' (not equal is '!=' or '<>')");
      case '<':
        if (next == '=') return cmp(Op::kLe, 2);
        if (next == '>') return cmp(Op::kNe, 2);
        return cmp(Op::kLt, 1);
      case '>': return cmp(next == '=' ? Op::kGe : Op::kGt, next == '=' ? 2 : 1);
      case '\'':
      case '"': return Quoted(t, c);
      default: break;
    }
    if (IsDigit(c) || c == '-' || c == '.') return Number(t);
    if (IsIdentStart(c)) {
      while (i_ < s_.size() && IsIdentChar(s_[i_])) ++i_;
      t->text = s_.substr(start, i_ - start);
      t->kw = KeywordOf(t->text);
      t->type = t->kw == Kw::kNone ? Token::kIdent : Token::kKeyword;
      if (t->type == Token::kIdent) t->value = std::string(t->text);
      return Status::OK();
    }
    if (c == '\0') return Error(start, "a NUL byte");
    if (static_cast<uint8_t>(c) < 0x80 && c >= 0x20) return Error(start, "unexpected character '" + std::string(1, c) + "'");
    char hex[8];
    std::snprintf(hex, sizeof(hex), "0x%02x", static_cast<unsigned>(static_cast<uint8_t>(c)));
    return Error(start, std::string("unexpected byte ") + hex + " (outside a string or quoted name)");
  }

 private:
  // A string ('...', '' for ') or a quoted identifier ("...", "" for ").
  Status Quoted(Token* t, char quote) {
    const size_t start = i_++;
    const char* what = quote == '\'' ? "string" : "quoted name";
    for (;;) {
      const size_t close = s_.find(quote, i_);
      if (close == std::string_view::npos) return Error(start, std::string("unterminated ") + what);
      t->value.append(s_.substr(i_, close - i_));
      i_ = close + 1;
      if (i_ < s_.size() && s_[i_] == quote) {  // a doubled quote stands for one
        t->value.push_back(quote);
        ++i_;
        continue;
      }
      break;
    }
    t->type = quote == '\'' ? Token::kString : Token::kQuoted;
    t->text = s_.substr(start, i_ - start);
    if (t->value.find('\0') != std::string::npos) return Error(start + t->text.find('\0'), "a NUL byte");
    if (!IsValidUtf8(t->value)) return Error(start, std::string("invalid UTF-8 in a ") + what);
    return Status::OK();
  }

  Status Number(Token* t) {
    const size_t start = i_;
    if (s_[i_] == '-') ++i_;
    auto digits = [&]() {
      const size_t from = i_;
      while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
      return i_ - from;
    };
    const size_t int_digits = digits();
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (digits() == 0) return Error(i_, "expected a digit after '.' in the number " + Quote(s_.substr(start, i_ - start)));
    } else if (int_digits == 0) {
      return Error(start, "expected a digit after '-'");
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (digits() == 0)
        return Error(i_, "expected a digit in the exponent of the number " + Quote(s_.substr(start, i_ - start)));
    }
    t->type = Token::kNumber;
    t->text = s_.substr(start, i_ - start);
    return Status::OK();
  }

  std::string_view s_;
  size_t i_ = 0;
};

// ---- Numbers ----

using i128 = __int128;
constexpr i128 kBig = static_cast<i128>(1) << 100;  // magnitudes saturate here

// A number literal's exact value, as far as the column types need it.
struct Num {
  bool neg = false;
  i128 mag = 0;       // the integer part of |value|, at most kBig
  bool frac = false;  // |value| has a nonzero fractional part
  double value = 0;   // the nearest double (finite)
  i128 Floor() const { return neg ? -(mag + (frac ? 1 : 0)) : mag; }
  i128 Ceil() const { return neg ? -mag : mag + (frac ? 1 : 0); }
};

// The lexer checked the token's form; this takes its value (std::from_chars:
// correctly rounded, and independent of the C locale's decimal point).
Status ParseNum(const Token& t, Num* out) {
  std::string_view s = t.text;
  out->neg = !s.empty() && s[0] == '-';
  if (out->neg) s.remove_prefix(1);
  std::string_view mantissa = s, exponent;
  if (const size_t e = s.find_first_of("eE"); e != std::string_view::npos) {
    mantissa = s.substr(0, e);
    exponent = s.substr(e + 1);
  }
  int64_t exp = 0;  // saturates at +-2^40: beyond any 1 MiB mantissa
  bool exp_neg = false;
  if (!exponent.empty() && (exponent[0] == '+' || exponent[0] == '-')) {
    exp_neg = exponent[0] == '-';
    exponent.remove_prefix(1);
  }
  for (char c : exponent) exp = std::min<int64_t>(exp * 10 + (c - '0'), int64_t{1} << 40);
  if (exp_neg) exp = -exp;
  const size_t dot = mantissa.find('.');
  const std::string_view int_part = mantissa.substr(0, dot);
  const std::string_view frac_part = dot == std::string_view::npos ? std::string_view() : mantissa.substr(dot + 1);
  // Digit k of int_part + frac_part has the place value 10^(point - 1 - k).
  const int64_t point = static_cast<int64_t>(int_part.size()) + exp;
  const int64_t count = static_cast<int64_t>(int_part.size() + frac_part.size());
  auto digit = [&](int64_t k) {
    return k < static_cast<int64_t>(int_part.size()) ? int_part[k] - '0' : frac_part[k - int_part.size()] - '0';
  };
  out->mag = 0;
  out->frac = false;
  for (int64_t k = 0; k < count; ++k) {
    const int d = digit(k);
    if (k < point) {
      out->mag = std::min<i128>(out->mag * 10 + d, kBig);
    } else if (d != 0) {
      out->frac = true;
    }
  }
  for (int64_t k = count; k < point && out->mag != 0 && out->mag < kBig; ++k) out->mag = std::min<i128>(out->mag * 10, kBig);
  if (out->mag == 0 && !out->frac) out->neg = false;
  double v = 0;
  const char* end = t.text.data() + t.text.size();
  const auto [ptr, ec] = std::from_chars(t.text.data(), end, v);
  if (ec == std::errc::result_out_of_range) {
    // Beyond a double when at least 1 in magnitude; else it rounds to zero.
    if (out->mag > 0) return Error(t.pos, "the number " + Quote(t.text) + " is out of range (beyond a double)");
    v = 0;
  } else if (ec != std::errc() || ptr != end || !std::isfinite(v)) {
    return Error(t.pos, "the number " + Quote(t.text) + " is out of range (beyond a double)");
  }
  out->value = v == 0 ? 0.0 : v;  // no -0.0
  return Status::OK();
}

int64_t ClampI64(i128 v) {
  return static_cast<int64_t>(std::clamp<i128>(v, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
}

// ---- Parser ----

struct Literal {
  enum Kind : uint8_t { kNumber, kString, kBool } kind = kNumber;
  size_t pos = 0;
  std::string_view text;
  Num num;
  std::string str;
  bool b = false;
};

const char* KindName(Literal::Kind k) {
  switch (k) {
    case Literal::kNumber: return "a number";
    case Literal::kString: return "a string";
    case Literal::kBool: return "a bool";
  }
  return "";
}

struct Operand {
  bool is_id = false;
  int column = -1;
  AttrType type = AttrType::kInt64;
  std::string name;
  size_t pos = 0;
};

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

class Parser {
 public:
  Parser(std::string_view text, const Schema& schema, Filter::Compiled* out) : lex_(text), schema_(schema), out_(out) {
    for (size_t i = 0; i < schema.size(); ++i) by_name_.emplace(schema[i].first, i);
  }

  // The whole expression into *root (false when it is empty).
  Status Parse(Node* root, bool* empty) {
    POMAI_RETURN_IF_ERROR(Advance());
    *empty = tok_.type == Token::kEnd;
    if (*empty) return Status::OK();
    POMAI_RETURN_IF_ERROR(ParseOr(0, false, root));
    if (tok_.type == Token::kRParen) return Error(tok_.pos, "unmatched ')'");
    if (tok_.type != Token::kEnd) return Error(tok_.pos, "expected AND, OR or the end, found " + Describe(tok_));
    return Status::OK();
  }

 private:
  Status Advance() { return lex_.Next(&tok_); }
  bool AtKeyword(Kw kw) const { return tok_.type == Token::kKeyword && tok_.kw == kw; }

  // Appends `child` to the n-ary `kind` node *node, splicing a child of the same kind.
  static void Append(Node::Kind kind, Node child, std::vector<Node>* children) {
    if (child.kind == kind) {
      for (Node& c : child.children) children->push_back(std::move(c));
    } else {
      children->push_back(std::move(child));
    }
  }

  // or := and (OR and)*. Under `neg` the node is an AND of the negated terms.
  Status ParseOr(int depth, bool neg, Node* out) { return ParseChain(Kw::kOr, depth, neg, out); }

  // One level of the chain, parsed straight into the tree (the tree is on
  // the heap, each level of recursion holds only a few words of stack).
  Status ParseChain(Kw sep, int depth, bool neg, Node* out) {
    auto operand = [&](Node* n) { return sep == Kw::kOr ? ParseChain(Kw::kAnd, depth, neg, n) : ParseNot(depth, neg, n); };
    POMAI_RETURN_IF_ERROR(operand(out));
    if (!AtKeyword(sep)) return Status::OK();
    const Node::Kind kind = (sep == Kw::kOr) != neg ? Node::kOr : Node::kAnd;
    std::vector<Node> children;
    Append(kind, std::move(*out), &children);
    while (AtKeyword(sep)) {
      POMAI_RETURN_IF_ERROR(Advance());
      children.emplace_back();
      POMAI_RETURN_IF_ERROR(operand(&children.back()));
      if (children.back().kind == kind) {  // splice a nested chain of the same kind
        std::vector<Node> nested = std::move(children.back().children);
        children.pop_back();
        for (Node& c : nested) children.push_back(std::move(c));
      }
    }
    *out = Node();
    out->kind = kind;
    out->children = std::move(children);
    return Status::OK();
  }

  // not := NOT not | primary, the NOTs counted in a loop.
  Status ParseNot(int depth, bool neg, Node* out) {
    while (AtKeyword(Kw::kNot)) {
      if (++depth > kMaxDepth) return DepthError();
      neg = !neg;
      POMAI_RETURN_IF_ERROR(Advance());
    }
    if (tok_.type == Token::kLParen) {
      if (++depth > kMaxDepth) return DepthError();
      POMAI_RETURN_IF_ERROR(Advance());
      POMAI_RETURN_IF_ERROR(ParseOr(depth, neg, out));
      if (tok_.type != Token::kRParen)
        return Error(tok_.pos, "expected AND, OR or ')', found " + Describe(tok_));
      return Advance();
    }
    out->kind = Node::kPred;
    return ParsePredicate(neg, &out->pred);
  }

  Status DepthError() const {
    return Error(tok_.pos, "nesting deeper than " + std::to_string(kMaxDepth) + " parentheses and NOTs");
  }

  Status ParseOperand(Operand* op) {
    op->pos = tok_.pos;
    if (AtKeyword(Kw::kId)) {
      op->is_id = true;
      op->name = "id";
      return Advance();
    }
    if (tok_.type != Token::kIdent && tok_.type != Token::kQuoted)
      return Error(tok_.pos, "expected a column name, ID, NOT or '(', found " + Describe(tok_));
    op->name = tok_.value;
    const auto it = by_name_.find(op->name);
    if (it == by_name_.end()) return UnknownColumn(*op);
    op->type = schema_[it->second].second;
    const auto used = std::find(out_->columns.begin(), out_->columns.end(), op->name);
    op->column = static_cast<int>(used - out_->columns.begin());
    if (used == out_->columns.end()) {
      out_->columns.push_back(op->name);
      out_->types.push_back(op->type);
    }
    return Advance();
  }

  Status UnknownColumn(const Operand& op) const {
    std::vector<std::string_view> names;
    for (const auto& [name, type] : schema_) names.push_back(name);
    std::sort(names.begin(), names.end());
    std::string list;
    for (std::string_view n : names) list += (list.empty() ? "" : ", ") + std::string(n);
    return Error(op.pos, "no column " + Quote(op.name) +
                             (names.empty() ? " (the collection has no columns)" : " (columns: " + list + ")"));
  }

  std::string Subject(const Operand& op) const {
    return op.is_id ? std::string("'id'") : "column " + Quote(op.name) + " is " + AttrTypeName(op.type);
  }

  // An operator the operand's type does not take.
  Status NotApplicable(const Operand& op, size_t pos, std::string_view what) const {
    if (op.is_id) return Error(pos, "'id' does not take " + Quote(what) + " (it takes =, !=, <, <=, >, >=, IN, BETWEEN)");
    return Error(pos, Subject(op) + "; " + Quote(what) + " does not apply to it");
  }

  Status ParseLiteral(const std::string& after, Literal* lit) {
    lit->pos = tok_.pos;
    lit->text = tok_.text;
    if (tok_.type == Token::kNumber) {
      lit->kind = Literal::kNumber;
      POMAI_RETURN_IF_ERROR(ParseNum(tok_, &lit->num));
    } else if (tok_.type == Token::kString) {
      lit->kind = Literal::kString;
      lit->str = std::move(tok_.value);
    } else if (AtKeyword(Kw::kTrue) || AtKeyword(Kw::kFalse)) {
      lit->kind = Literal::kBool;
      lit->b = AtKeyword(Kw::kTrue);
    } else {
      return Error(tok_.pos, "expected a literal " + after + ", found " + Describe(tok_));
    }
    return Advance();
  }

  // A literal as the messages show it: a string as written (it carries its quotes).
  static std::string Shown(const Literal& lit) {
    if (lit.kind != Literal::kString) return Quote(lit.text);
    if (lit.text.size() <= 50) return std::string(lit.text);
    const std::string q = Quote(lit.text.substr(0, lit.text.size() - 1));  // 'x...'' without the closing quote
    return q.substr(1, q.size() - 2) + "'";
  }

  // The literal's kind must be the operand's.
  Status Check(const Operand& op, const Literal& lit) const {
    Literal::Kind want = Literal::kNumber;
    if (!op.is_id) {
      switch (op.type) {
        case AttrType::kInt64:
        case AttrType::kFloat64: want = Literal::kNumber; break;
        case AttrType::kBool: want = Literal::kBool; break;
        case AttrType::kString:
        case AttrType::kTags: want = Literal::kString; break;
      }
    }
    if (lit.kind != want) {
      if (op.is_id)
        return Error(lit.pos, "'id' takes integers 0 .. 18446744073709551615; " + Shown(lit) + " is " + KindName(lit.kind));
      return Error(lit.pos, Subject(op) + "; " + Shown(lit) + " is " + KindName(lit.kind));
    }
    if (op.is_id && (lit.num.frac || lit.num.neg || lit.num.mag > static_cast<i128>(kU64Max)))
      return Error(lit.pos, "'id' takes integers 0 .. 18446744073709551615; " + Shown(lit) + " is not one");
    return Status::OK();
  }

  Status ParseList(const Operand& op, const std::string& what, std::vector<Literal>* out) {
    if (tok_.type != Token::kLParen) return Error(tok_.pos, "expected '(' after " + what + ", found " + Describe(tok_));
    POMAI_RETURN_IF_ERROR(Advance());
    const std::string in_list = "in the " + what + " list";
    for (;;) {
      Literal lit;
      POMAI_RETURN_IF_ERROR(ParseLiteral(in_list, &lit));
      POMAI_RETURN_IF_ERROR(Check(op, lit));
      out->push_back(std::move(lit));
      if (tok_.type == Token::kRParen) return Advance();
      if (tok_.type != Token::kComma)
        return Error(tok_.pos, "expected ',' or ')' in the " + what + " list, found " + Describe(tok_));
      POMAI_RETURN_IF_ERROR(Advance());
    }
  }

  Status ParsePredicate(bool neg, Pred* p) {
    Operand op;
    POMAI_RETURN_IF_ERROR(ParseOperand(&op));
    p->column = op.column;
    p->index = out_->preds++;
    const size_t op_pos = tok_.pos;
    const std::string op_text(tok_.text);
    if (tok_.type == Token::kCmp) {
      const Op cmp = tok_.op;
      POMAI_RETURN_IF_ERROR(Advance());
      const bool ordered = cmp != Op::kEq && cmp != Op::kNe;
      if ((!op.is_id && op.type == AttrType::kTags) || (ordered && !op.is_id && op.type == AttrType::kBool))
        return NotApplicable(op, op_pos, op_text);
      Literal lit;
      POMAI_RETURN_IF_ERROR(ParseLiteral("after " + Quote(op_text), &lit));
      POMAI_RETURN_IF_ERROR(Check(op, lit));
      p->negated = neg != (cmp == Op::kNe);
      Compare(op, cmp == Op::kNe ? Op::kEq : cmp, lit, p);
      return Status::OK();
    }
    bool not_kw = false;
    if (AtKeyword(Kw::kNot)) {
      not_kw = true;
      POMAI_RETURN_IF_ERROR(Advance());
      if (!AtKeyword(Kw::kIn) && !AtKeyword(Kw::kBetween))
        return Error(tok_.pos, "expected IN or BETWEEN after NOT, found " + Describe(tok_));
    }
    p->negated = neg != not_kw;
    if (AtKeyword(Kw::kIn)) {
      if (!op.is_id && op.type == AttrType::kTags) return NotApplicable(op, tok_.pos, tok_.text);
      POMAI_RETURN_IF_ERROR(Advance());
      std::vector<Literal> list;
      POMAI_RETURN_IF_ERROR(ParseList(op, "IN", &list));
      In(op, list, p);
      return Status::OK();
    }
    if (AtKeyword(Kw::kBetween)) {
      if (!op.is_id && (op.type == AttrType::kTags || op.type == AttrType::kBool))
        return NotApplicable(op, tok_.pos, tok_.text);
      POMAI_RETURN_IF_ERROR(Advance());
      Literal lo, hi;
      POMAI_RETURN_IF_ERROR(ParseLiteral("after BETWEEN", &lo));
      POMAI_RETURN_IF_ERROR(Check(op, lo));
      if (!AtKeyword(Kw::kAnd)) return Error(tok_.pos, "expected AND after BETWEEN's first literal, found " + Describe(tok_));
      POMAI_RETURN_IF_ERROR(Advance());
      POMAI_RETURN_IF_ERROR(ParseLiteral("after BETWEEN ... AND", &hi));
      POMAI_RETURN_IF_ERROR(Check(op, hi));
      Between(op, lo, hi, p);
      return Status::OK();
    }
    if (AtKeyword(Kw::kIs)) {
      if (op.is_id) return NotApplicable(op, tok_.pos, tok_.text);
      POMAI_RETURN_IF_ERROR(Advance());
      bool is_not = false;
      if (AtKeyword(Kw::kNot)) {
        is_not = true;
        POMAI_RETURN_IF_ERROR(Advance());
      }
      if (!AtKeyword(Kw::kNull)) return Error(tok_.pos, "expected NULL after IS" + std::string(is_not ? " NOT" : "") + ", found " + Describe(tok_));
      p->kind = PredKind::kIsNull;
      p->negated = neg != is_not;
      return Advance();
    }
    if (AtKeyword(Kw::kContains)) {
      if (op.is_id || op.type != AttrType::kTags) return NotApplicable(op, tok_.pos, tok_.text);
      POMAI_RETURN_IF_ERROR(Advance());
      std::vector<Literal> list;
      p->kind = PredKind::kTagsAny;
      if (AtKeyword(Kw::kAny) || AtKeyword(Kw::kAll)) {
        if (AtKeyword(Kw::kAll)) p->kind = PredKind::kTagsAll;
        const std::string what = AtKeyword(Kw::kAll) ? "CONTAINS ALL" : "CONTAINS ANY";
        POMAI_RETURN_IF_ERROR(Advance());
        POMAI_RETURN_IF_ERROR(ParseList(op, what, &list));
      } else {
        list.emplace_back();
        POMAI_RETURN_IF_ERROR(ParseLiteral("after CONTAINS", &list.back()));
        POMAI_RETURN_IF_ERROR(Check(op, list.back()));
      }
      for (Literal& l : list) p->strs.push_back(std::move(l.str));
      SortUnique(&p->strs);
      return Status::OK();
    }
    // An operand alone: a bool column, meaning `= true`.
    if (op.is_id || op.type != AttrType::kBool)
      return Error(op.pos, (op.is_id ? std::string("'id'") : Subject(op)) +
                               ", not bool: it needs a comparison, IN, BETWEEN, IS or CONTAINS after it (found " +
                               Describe(tok_) + ")");
    p->kind = PredKind::kBool;
    p->pass_true = true;
    return Status::OK();
  }

  template <class T>
  static void SortUnique(std::vector<T>* v) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }

  // op = / < / <= / > / >= lit (!= is = negated by the caller).
  static void Compare(const Operand& op, Op cmp, const Literal& lit, Pred* p) {
    if (op.is_id) {
      const uint64_t v = static_cast<uint64_t>(lit.num.mag);
      p->kind = PredKind::kIdRange;
      p->ulo = 0;
      p->uhi = kU64Max;
      switch (cmp) {
        case Op::kEq: p->ulo = p->uhi = v; break;
        case Op::kLt: v == 0 ? (p->ulo = 1, p->uhi = 0) : (p->uhi = v - 1); break;
        case Op::kLe: p->uhi = v; break;
        case Op::kGt: v == kU64Max ? (p->ulo = 1, p->uhi = 0) : (p->ulo = v + 1); break;
        case Op::kGe: p->ulo = v; break;
        case Op::kNe: break;
      }
      return;
    }
    switch (op.type) {
      case AttrType::kInt64: {
        // Exact: n < x <=> n <= ceil(x) - 1, n <= x <=> n <= floor(x), and so on.
        const Num& x = lit.num;
        i128 lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
        switch (cmp) {
          case Op::kEq:
            if (x.frac) {
              lo = 1, hi = 0;
            } else {
              lo = hi = x.Floor();
            }
            break;
          case Op::kLt: hi = x.Ceil() - 1; break;
          case Op::kLe: hi = x.Floor(); break;
          case Op::kGt: lo = x.Floor() + 1; break;
          case Op::kGe: lo = x.Ceil(); break;
          case Op::kNe: break;
        }
        SetIntRange(lo, hi, p);
        return;
      }
      case AttrType::kFloat64: {
        const double v = lit.num.value;
        constexpr double kInf = std::numeric_limits<double>::infinity();
        p->kind = PredKind::kFloatRange;
        p->flo = -kInf;
        p->fhi = kInf;
        switch (cmp) {
          case Op::kEq: p->flo = p->fhi = v; break;
          case Op::kLt: p->fhi = std::nextafter(v, -kInf); break;
          case Op::kLe: p->fhi = v; break;
          case Op::kGt: p->flo = std::nextafter(v, kInf); break;
          case Op::kGe: p->flo = v; break;
          case Op::kNe: break;
        }
        return;
      }
      case AttrType::kBool:
        p->kind = PredKind::kBool;
        p->pass_true = lit.b;
        p->pass_false = !lit.b;
        return;
      case AttrType::kString:
        p->kind = PredKind::kStrRange;
        if (cmp == Op::kEq || cmp == Op::kGt || cmp == Op::kGe) {
          p->has_lo = true;
          p->lo_incl = cmp != Op::kGt;
          p->lo = lit.str;
        }
        if (cmp == Op::kEq || cmp == Op::kLt || cmp == Op::kLe) {
          p->has_hi = true;
          p->hi_incl = cmp != Op::kLt;
          p->hi = lit.str;
        }
        return;
      case AttrType::kTags: return;  // refused by the caller
    }
  }

  static void SetIntRange(i128 lo, i128 hi, Pred* p) {
    p->kind = PredKind::kIntRange;
    if (lo > hi || lo > std::numeric_limits<int64_t>::max() || hi < std::numeric_limits<int64_t>::min()) {
      p->ilo = 1, p->ihi = 0;
      return;
    }
    p->ilo = ClampI64(lo);
    p->ihi = ClampI64(hi);
  }

  static void Between(const Operand& op, const Literal& a, const Literal& b, Pred* p) {
    if (op.is_id) {
      p->kind = PredKind::kIdRange;
      p->ulo = static_cast<uint64_t>(a.num.mag);
      p->uhi = static_cast<uint64_t>(b.num.mag);
      return;
    }
    switch (op.type) {
      case AttrType::kInt64: SetIntRange(a.num.Ceil(), b.num.Floor(), p); return;
      case AttrType::kFloat64:
        p->kind = PredKind::kFloatRange;
        p->flo = a.num.value;
        p->fhi = b.num.value;
        return;
      case AttrType::kString:
        p->kind = PredKind::kStrRange;
        p->has_lo = p->has_hi = p->lo_incl = p->hi_incl = true;
        p->lo = a.str;
        p->hi = b.str;
        return;
      case AttrType::kBool:
      case AttrType::kTags: return;  // refused by the caller
    }
  }

  static void In(const Operand& op, const std::vector<Literal>& list, Pred* p) {
    if (op.is_id) {
      std::vector<uint64_t> ids;
      for (const Literal& l : list) ids.push_back(static_cast<uint64_t>(l.num.mag));
      p->kind = PredKind::kIdSet;
      p->ids = IdSet(std::move(ids));
      return;
    }
    switch (op.type) {
      case AttrType::kInt64:
        p->kind = PredKind::kIntSet;
        for (const Literal& l : list) {
          const i128 v = l.num.Floor();
          if (!l.num.frac && v >= std::numeric_limits<int64_t>::min() && v <= std::numeric_limits<int64_t>::max())
            p->ints.push_back(static_cast<int64_t>(v));
        }
        SortUnique(&p->ints);
        if (!p->ints.empty() &&
            static_cast<uint64_t>(p->ints.back()) - static_cast<uint64_t>(p->ints.front()) < kDenseSpan) {
          const uint64_t span = static_cast<uint64_t>(p->ints.back()) - static_cast<uint64_t>(p->ints.front()) + 1;
          p->dense.assign((span + 63) / 64, 0);
          for (int64_t x : p->ints) {
            const uint64_t b = static_cast<uint64_t>(x) - static_cast<uint64_t>(p->ints.front());
            p->dense[b / 64] |= uint64_t{1} << (b % 64);
          }
        }
        return;
      case AttrType::kFloat64:
        p->kind = PredKind::kFloatSet;
        for (const Literal& l : list) p->floats.push_back(l.num.value);
        SortUnique(&p->floats);
        return;
      case AttrType::kBool:
        p->kind = PredKind::kBool;
        for (const Literal& l : list) (l.b ? p->pass_true : p->pass_false) = true;
        return;
      case AttrType::kString:
        p->kind = PredKind::kStrSet;
        for (const Literal& l : list) p->strs.push_back(l.str);
        SortUnique(&p->strs);
        return;
      case AttrType::kTags: return;  // refused by the caller
    }
  }

  Lexer lex_;
  Token tok_;
  const Schema& schema_;
  std::map<std::string, size_t, std::less<>> by_name_;
  Filter::Compiled* out_;
};

int Height(const Node& n) {
  int h = 0;
  for (const Node& c : n.children) h = std::max(h, Height(c));
  return h + 1;
}

// ---- ToString ----

std::string QuoteWith(std::string_view s, char q) {
  std::string out(1, q);
  for (char c : s) {
    out.push_back(c);
    if (c == q) out.push_back(q);
  }
  out.push_back(q);
  return out;
}

std::string NumText(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

template <class T, class F>
std::string List(const std::vector<T>& v, F f) {
  std::string out = "(";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + f(v[i]);
  return out + ")";
}

void Print(const Node& n, const std::vector<std::string>& columns, std::string* out) {
  if (n.kind != Node::kPred) {
    *out += "(";
    for (size_t i = 0; i < n.children.size(); ++i) {
      if (i) *out += n.kind == Node::kAnd ? " AND " : " OR ";
      Print(n.children[i], columns, out);
    }
    *out += ")";
    return;
  }
  const Pred& p = n.pred;
  if (p.negated && p.kind != PredKind::kIsNull) *out += "NOT ";
  *out += p.column < 0 ? std::string("id") : QuoteWith(columns[p.column], '"');
  auto str = [](const std::string& s) { return QuoteWith(s, '\''); };
  switch (p.kind) {
    case PredKind::kIsNull: *out += p.negated ? " IS NOT NULL" : " IS NULL"; return;
    case PredKind::kIntRange: *out += " in int [" + std::to_string(p.ilo) + ", " + std::to_string(p.ihi) + "]"; return;
    case PredKind::kIntSet: *out += " IN " + List(p.ints, [](int64_t v) { return std::to_string(v); }); return;
    case PredKind::kFloatRange: *out += " in float [" + NumText(p.flo) + ", " + NumText(p.fhi) + "]"; return;
    case PredKind::kFloatSet: *out += " IN " + List(p.floats, NumText); return;
    case PredKind::kBool:
      *out += std::string(" IN (") + (p.pass_false ? "FALSE" : "") + (p.pass_false && p.pass_true ? ", " : "") +
              (p.pass_true ? "TRUE" : "") + ")";
      return;
    case PredKind::kStrRange:
      if (p.has_lo && p.has_hi && p.lo_incl && p.hi_incl && p.lo == p.hi) {
        *out += " = " + str(p.lo);
        return;
      }
      *out += " in string " + (p.has_lo ? (p.lo_incl ? "[" : "(") + str(p.lo) : std::string("(-")) + ", " +
              (p.has_hi ? str(p.hi) + (p.hi_incl ? "]" : ")") : std::string("+)"));
      return;
    case PredKind::kStrSet: *out += " IN " + List(p.strs, str); return;
    case PredKind::kTagsAny: *out += " CONTAINS ANY " + List(p.strs, str); return;
    case PredKind::kTagsAll: *out += " CONTAINS ALL " + List(p.strs, str); return;
    case PredKind::kIdRange: *out += " in [" + std::to_string(p.ulo) + ", " + std::to_string(p.uhi) + "]"; return;
    case PredKind::kIdSet:
      if (p.ids.sorted().size() > 8) {
        *out += " IN (" + std::to_string(p.ids.sorted().size()) + " ids)";
      } else {
        *out += " IN " + List(p.ids.sorted(), [](uint64_t v) { return std::to_string(v); });
      }
      return;
  }
}

}  // namespace

Filter::Filter() : c_(std::make_shared<const Compiled>()) {}

Result<Filter> Filter::Compile(std::string_view expression, const Schema& schema, const uint64_t* ids, size_t id_count) {
  if (expression.size() > kMaxExpressionBytes)
    return Status::InvalidArgument("filter: the expression is " + std::to_string(expression.size()) +
                                   " bytes, more than the limit of " + std::to_string(kMaxExpressionBytes));
  auto c = std::make_shared<Compiled>();
  Node expr;
  bool empty = true;
  POMAI_RETURN_IF_ERROR(Parser(expression, schema, c.get()).Parse(&expr, &empty));
  if (ids != nullptr) {
    Node allow;
    allow.pred.kind = PredKind::kIdSet;
    allow.pred.index = c->preds++;
    allow.pred.ids = IdSet(std::vector<uint64_t>(ids, ids + id_count));
    if (empty) {
      c->root = std::move(allow);
    } else {
      c->root.kind = Node::kAnd;
      if (expr.kind == Node::kAnd) {
        c->root.children = std::move(expr.children);
      } else {
        c->root.children.push_back(std::move(expr));
      }
      c->root.children.push_back(std::move(allow));
    }
    c->has_root = true;
  } else if (!empty) {
    c->root = std::move(expr);
    c->has_root = true;
  }
  c->height = Height(c->root);
  return Filter(std::move(c));
}

bool Filter::passes_all() const { return !c_->has_root; }

const std::vector<std::string>& Filter::columns() const { return c_->columns; }

namespace {
bool ReadsIds(const Node& n) {
  if (n.kind == Node::kPred) return n.pred.column < 0;
  return std::any_of(n.children.begin(), n.children.end(), ReadsIds);
}
}  // namespace

bool Filter::reads_ids() const { return c_->has_root && ReadsIds(c_->root); }

std::string Filter::ToString() const {
  if (!c_->has_root) return "TRUE";
  std::string out;
  Print(c_->root, c_->columns, &out);
  return out;
}

}  // namespace pomai::filter
