// KVT_HD: marks small functions callable from both host and device code.
//
// The layout structs and scalar conversions are shared by the CUDA kernels and by the CPU
// references, so the same accessor computes the same offset on both sides. Under nvcc the macro
// expands to `__host__ __device__`; in plain C++ (no CUDA toolkit at all) it is just `inline`, so
// these headers compile everywhere.
#pragma once

#if defined(__CUDACC__)
#define KVT_HD __host__ __device__ __forceinline__
#else
#define KVT_HD inline
#endif
