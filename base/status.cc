#include "base/status.h"

#include <cstring>

namespace kvt {

const char* CodeName(Code c) {
  switch (c) {
    case Code::kOk: return "OK";
    case Code::kNotFound: return "NOT_FOUND";
    case Code::kInvalidArgument: return "INVALID_ARGUMENT";
    case Code::kIoError: return "IO_ERROR";
    case Code::kCorruption: return "CORRUPTION";
    case Code::kNoSpace: return "NO_SPACE";
    case Code::kBusy: return "BUSY";
    case Code::kTimeout: return "TIMEOUT";
    case Code::kUnavailable: return "UNAVAILABLE";
    case Code::kPermissionDenied: return "PERMISSION_DENIED";
    case Code::kInternal: return "INTERNAL";
  }
  return "UNKNOWN";
}

Status Status::FromErrno(int err, const std::string& what) {
  std::string m = what + ": " + std::strerror(err) + " (errno " + std::to_string(err) + ")";
  switch (err) {
    case ENOSPC:
    case EDQUOT: return NoSpace(std::move(m));
    case EACCES:
    case EPERM: return PermissionDenied(std::move(m));
    case EAGAIN:
    case EBUSY: return Busy(std::move(m));
    case ETIMEDOUT: return Timeout(std::move(m));
    case EINVAL: return InvalidArgument(std::move(m));
    case ENOENT: return NotFound(std::move(m));
    default: return IoError(std::move(m));
  }
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code_)) + ": " + message_;
}

}  // namespace kvt
