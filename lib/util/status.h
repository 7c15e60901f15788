// Status and Result<T>: errors as values inside the engine. No exception
// crosses a layer boundary in lib/, and none crosses the C ABI.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace pomai {

// The codes are the C ABI's POMAI_STATUS_* values, so lib/capi passes them through.
enum class Code : int {
  kOk = 0,
  kInvalidArgument = 1,
  kNotFound = 2,
  kAlreadyExists = 3,
  kIOError = 4,
  kCorruption = 5,
  kResourceExhausted = 6,
  kDeadlineExceeded = 7,
  kInternal = 8,
  kUnimplemented = 9,
  kPartialFailure = 10,
  kConflict = 11,
  kClosed = 12,
  kReadOnly = 13,
};

// A success, or a code with a message. Cheap to copy when OK.
class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string msg) { return Status(Code::kInvalidArgument, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status AlreadyExists(std::string msg) { return Status(Code::kAlreadyExists, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }
  // A damaged file: the message should name the file and the byte offset.
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status Corruption(const std::string& file, uint64_t offset, const std::string& what) {
    return Status(Code::kCorruption, file + " at offset " + std::to_string(offset) + ": " + what);
  }
  static Status ResourceExhausted(std::string msg) { return Status(Code::kResourceExhausted, std::move(msg)); }
  static Status DeadlineExceeded(std::string msg) { return Status(Code::kDeadlineExceeded, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }
  static Status Unimplemented(std::string msg) { return Status(Code::kUnimplemented, std::move(msg)); }
  static Status Closed(std::string msg) { return Status(Code::kClosed, std::move(msg)); }
  static Status ReadOnly(std::string msg) { return Status(Code::kReadOnly, std::move(msg)); }
  // An I/O failure described by errno `err` while doing `what` on `path`.
  static Status FromErrno(const std::string& what, const std::string& path, int err);

  Status(Code code, std::string msg) : code_(code), msg_(std::move(msg)) {}

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return msg_; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsIOError() const { return code_ == Code::kIOError; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string msg_;
};

// A value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}    // NOLINT: must not be OK
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  // value() of an error Result is a programming error: it aborts with the status.
  T& value() & {
    CheckHasValue();
    return *value_;
  }
  const T& value() const& {
    CheckHasValue();
    return *value_;
  }
  T value() && {  // by value: safe in a range-for over a temporary
    CheckHasValue();
    return std::move(*value_);
  }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }

 private:
  void CheckHasValue() const {
    if (!value_) {
      std::fprintf(stderr, "pomai: value() of an error Result: %s\n", status_.ToString().c_str());
      std::abort();
    }
  }

  Status status_;
  std::optional<T> value_;
};

}  // namespace pomai

#define POMAI_CONCAT_INNER_(a, b) a##b
#define POMAI_CONCAT_(a, b) POMAI_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the enclosing function when it is not OK.
#define POMAI_RETURN_IF_ERROR(expr)            \
  do {                                         \
    ::pomai::Status _st = (expr);              \
    if (!_st.ok()) return _st;                 \
  } while (0)

// `lhs = value of Result expr`, or return its status.
#define POMAI_ASSIGN_OR_RETURN(lhs, expr) POMAI_ASSIGN_OR_RETURN_IMPL_(POMAI_CONCAT_(_res_, __LINE__), lhs, expr)
#define POMAI_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
