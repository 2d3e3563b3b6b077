#include "tiers/nvme/codec.h"

#include <zstd.h>

#include <memory>
#include <vector>

namespace kvt {
namespace {

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

// Per-thread state: a context costs a few hundred KiB to set up, far more than a 4 KiB block's
// compression, so it is reused; the scratch holds the shuffled bytes.
struct ThreadState {
  std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx{ZSTD_createCCtx()};
  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx{ZSTD_createDCtx()};
  std::vector<uint8_t> scratch;
};

ThreadState& State() {
  thread_local ThreadState s;
  return s;
}

}  // namespace

const char* CodecName(Codec c) {
  switch (c) {
    case Codec::kNone:
      return "none";
    case Codec::kZstd:
      return "zstd";
  }
  return "unknown";
}

StatusOr<Codec> ParseCodec(std::string_view name) {
  if (name == "none") return Codec::kNone;
  if (name == "zstd") return Codec::kZstd;
  return Status::InvalidArgument("codec: expected none or zstd, got '" + std::string(name) + "'");
}

void ShuffleBytes16(const uint8_t* in, size_t n, uint8_t* out) {
  size_t half = n / 2;
  for (size_t i = 0; i < half; ++i) {
    out[i] = in[2 * i];
    out[half + i] = in[2 * i + 1];
  }
  if (n & 1) out[n - 1] = in[n - 1];
}

void UnshuffleBytes16(const uint8_t* in, size_t n, uint8_t* out) {
  size_t half = n / 2;
  for (size_t i = 0; i < half; ++i) {
    out[2 * i] = in[i];
    out[2 * i + 1] = in[half + i];
  }
  if (n & 1) out[n - 1] = in[n - 1];
}

size_t ZstdBound(size_t n) { return ZSTD_compressBound(n); }

StatusOr<size_t> ZstdShuffleCompress(const void* src, size_t n, void* dst, size_t cap, int level) {
  ThreadState& st = State();
  if (!st.cctx) return Status::Internal("ZSTD_createCCtx failed");
  st.scratch.resize(n);
  ShuffleBytes16(static_cast<const uint8_t*>(src), n, st.scratch.data());
  size_t r = ZSTD_compressCCtx(st.cctx.get(), dst, cap, st.scratch.data(), n, level);
  if (ZSTD_isError(r)) {
    return Status::Internal(std::string("zstd compress: ") + ZSTD_getErrorName(r));
  }
  return r;
}

Status ZstdShuffleDecompress(const void* src, size_t n, void* dst, size_t dst_bytes) {
  ThreadState& st = State();
  if (!st.dctx) return Status::Internal("ZSTD_createDCtx failed");
  st.scratch.resize(dst_bytes);
  size_t r = ZSTD_decompressDCtx(st.dctx.get(), st.scratch.data(), dst_bytes, src, n);
  if (ZSTD_isError(r)) {
    return Status::Corruption(std::string("zstd decompress: ") + ZSTD_getErrorName(r));
  }
  if (r != dst_bytes) {
    return Status::Corruption("zstd decompress: " + std::to_string(r) + " bytes, expected " +
                              std::to_string(dst_bytes));
  }
  UnshuffleBytes16(st.scratch.data(), dst_bytes, static_cast<uint8_t*>(dst));
  return Status::Ok();
}

}  // namespace kvt
