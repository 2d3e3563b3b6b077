// Codec tests: byte shuffle, zstd round trip, and the ratio on fp16-like data.
#include "tiers/nvme/codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "tests/nvme/nvme_test_util.h"

namespace kvt {
namespace {

TEST(CodecTest, ShuffleRoundTripsEveryLength) {
  for (size_t n : {0, 1, 2, 3, 7, 8, 17, 4096, 4097}) {
    std::vector<uint8_t> in(n), mid(n), out(n);
    for (size_t i = 0; i < n; ++i) in[i] = static_cast<uint8_t>(i * 31 + 7);
    ShuffleBytes16(in.data(), n, mid.data());
    UnshuffleBytes16(mid.data(), n, out.data());
    EXPECT_EQ(in, out) << "n=" << n;
    if (n >= 4) {
      EXPECT_EQ(mid[0], in[0]);
      EXPECT_EQ(mid[1], in[2]);
      EXPECT_EQ(mid[n / 2], in[1]);
    }
  }
}

TEST(CodecTest, ParseNames) {
  EXPECT_EQ(*ParseCodec("zstd"), Codec::kZstd);
  EXPECT_EQ(*ParseCodec("none"), Codec::kNone);
  EXPECT_FALSE(ParseCodec("lz4").ok());
}

TEST(CodecTest, ZstdRoundTripAndFp16Ratio) {
  const size_t n = 256 << 10;
  std::vector<uint8_t> in(n), out(n);
  testing::FillFp16(in.data(), n, 11);
  std::vector<uint8_t> z(ZstdBound(n));
  auto c = ZstdShuffleCompress(in.data(), n, z.data(), z.size(), 1);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(ZstdShuffleDecompress(z.data(), *c, out.data(), n).ok());
  EXPECT_EQ(in, out);
  double ratio = static_cast<double>(n) / static_cast<double>(*c);
  std::printf("fp16 normal(0,1), shuffle + zstd-1: %zu -> %zu bytes, ratio %.3f\n", n, *c, ratio);
  EXPECT_GT(ratio, 1.05);  // the shuffle exposes the exponent bytes' redundancy

  // Without the shuffle the same data barely compresses: the transform is what pays.
  std::vector<uint8_t> plain(ZstdBound(n));
  size_t pc = 0;
  {
    std::vector<uint8_t> unshuffled(n);
    UnshuffleBytes16(in.data(), n, unshuffled.data());  // so that the codec's shuffle undoes it
    auto c2 = ZstdShuffleCompress(unshuffled.data(), n, plain.data(), plain.size(), 1);
    ASSERT_TRUE(c2.ok());
    pc = *c2;
  }
  std::printf("same data without the shuffle: ratio %.3f\n",
              static_cast<double>(n) / static_cast<double>(pc));
  EXPECT_LT(*c, pc) << "the byte shuffle no longer helps zstd on fp16 data";
}

TEST(CodecTest, CorruptInputIsCorruptionNotACrash) {
  const size_t n = 64 << 10;
  std::vector<uint8_t> in(n), out(n);
  testing::FillFp16(in.data(), n, 3);
  std::vector<uint8_t> z(ZstdBound(n));
  auto c = ZstdShuffleCompress(in.data(), n, z.data(), z.size(), 1);
  ASSERT_TRUE(c.ok());
  for (size_t pos : {size_t{0}, size_t{5}, *c / 2, *c - 1}) {
    auto bad = z;
    bad[pos] ^= 0x5a;
    Status s = ZstdShuffleDecompress(bad.data(), *c, out.data(), n);
    if (s.ok()) continue;  // a flip in a literal can decode; the tier's checksum catches it
    EXPECT_EQ(s.code(), Code::kCorruption);
  }
  EXPECT_EQ(ZstdShuffleDecompress(z.data(), *c, out.data(), n - 1).code(), Code::kCorruption);
}

}  // namespace
}  // namespace kvt
