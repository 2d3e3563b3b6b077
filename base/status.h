// Status and StatusOr: the error type of every fallible call inside kvtier.
//
// A Status is cheap when OK (one byte code, empty message) and carries a message that names what
// went wrong (argument, file, offset, errno) otherwise. The C API converts Status codes one to one
// into kvt_status_t, so the codes here mirror that enum.
//
// Thread safety: a Status is a value; distinct objects may be used from distinct threads freely.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace kvt {

enum class Code : uint8_t {
  kOk = 0,
  kNotFound,
  kInvalidArgument,
  kIoError,
  kCorruption,
  kNoSpace,
  kBusy,
  kTimeout,
  kUnavailable,
  kPermissionDenied,
  kInternal,
};

const char* CodeName(Code c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
  static Status InvalidArgument(std::string m) {
    return Status(Code::kInvalidArgument, std::move(m));
  }
  static Status IoError(std::string m) { return Status(Code::kIoError, std::move(m)); }
  // An I/O error from errno: "op path at offset N: strerror (errno)".
  static Status FromErrno(int err, const std::string& what);
  static Status Corruption(std::string m) { return Status(Code::kCorruption, std::move(m)); }
  static Status NoSpace(std::string m) { return Status(Code::kNoSpace, std::move(m)); }
  static Status Busy(std::string m) { return Status(Code::kBusy, std::move(m)); }
  static Status Timeout(std::string m) { return Status(Code::kTimeout, std::move(m)); }
  static Status Unavailable(std::string m) { return Status(Code::kUnavailable, std::move(m)); }
  static Status PermissionDenied(std::string m) {
    return Status(Code::kPermissionDenied, std::move(m));
  }
  static Status Internal(std::string m) { return Status(Code::kInternal, std::move(m)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Prefixes the message with context ("open /x: " + message); the code is kept.
  Status WithContext(const std::string& ctx) const {
    return ok() ? *this : Status(code_, ctx + ": " + message_);
  }

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status that explains its absence.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T v) : value_(std::move(v)) {}  // NOLINT: implicit by design
  StatusOr(Status s) : status_(std::move(s)) {}  // NOLINT: implicit by design
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace kvt

#define KVT_RETURN_IF_ERROR(expr)      \
  do {                                 \
    ::kvt::Status _kvt_s = (expr);     \
    if (!_kvt_s.ok()) return _kvt_s;   \
  } while (0)

#define KVT_CONCAT_INNER(a, b) a##b
#define KVT_CONCAT(a, b) KVT_CONCAT_INNER(a, b)
#define KVT_ASSIGN_OR_RETURN(lhs, expr) \
  KVT_ASSIGN_OR_RETURN_IMPL(KVT_CONCAT(_kvt_or_, __LINE__), lhs, expr)
#define KVT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
