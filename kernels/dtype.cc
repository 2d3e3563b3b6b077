#include "kernels/dtype.h"

#include <cstring>
#include <initializer_list>

namespace kvt {

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kFp16: return "fp16";
    case DType::kBf16: return "bf16";
    case DType::kFp8E4M3: return "fp8_e4m3";
    case DType::kInt8: return "int8";
    case DType::kFp32: return "fp32";
  }
  return "unknown";
}

bool ParseDType(const char* name, DType* out) {
  if (name == nullptr) return false;
  for (DType t : {DType::kFp16, DType::kBf16, DType::kFp8E4M3, DType::kInt8, DType::kFp32}) {
    if (std::strcmp(name, DTypeName(t)) == 0) {
      *out = t;
      return true;
    }
  }
  return false;
}

}  // namespace kvt
