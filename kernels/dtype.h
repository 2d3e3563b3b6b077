// DType: the element types kvtier stores and computes with.
//
// KV payloads use fp16, bf16, fp8-e4m3 (OCP "E4M3FN": no infinities, max 448) or int8. fp32 only
// appears as an attention output type. The names match the C API's kv_dtype strings.
//
// Thread safety: plain values and pure functions.
#pragma once

#include <cstdint>

#include "kernels/host_device.h"

namespace kvt {

enum class DType : uint8_t { kFp16 = 0, kBf16 = 1, kFp8E4M3 = 2, kInt8 = 3, kFp32 = 4 };

// Bytes per element; 0 for an unknown value.
KVT_HD int DTypeSize(DType t) {
  switch (t) {
    case DType::kFp16:
    case DType::kBf16:
      return 2;
    case DType::kFp8E4M3:
    case DType::kInt8:
      return 1;
    case DType::kFp32:
      return 4;
  }
  return 0;
}

// Types a KV payload may hold (everything but fp32).
KVT_HD bool IsKvDType(DType t) {
  return t == DType::kFp16 || t == DType::kBf16 || t == DType::kFp8E4M3 || t == DType::kInt8;
}
// 16-bit floating types: the "full precision" KV types and the query types of attention.
KVT_HD bool IsHalfDType(DType t) { return t == DType::kFp16 || t == DType::kBf16; }
// 8-bit types produced by the quantizing codec; they need per-block, per-head scales.
KVT_HD bool IsQuantDType(DType t) { return t == DType::kFp8E4M3 || t == DType::kInt8; }

// "fp16" | "bf16" | "fp8_e4m3" | "int8" | "fp32" (the C API's spelling).
const char* DTypeName(DType t);
// Parses the C API's spelling; false for anything else.
bool ParseDType(const char* name, DType* out);

}  // namespace kvt
