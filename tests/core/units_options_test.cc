#include <gtest/gtest.h>

#include <fstream>

#include "base/units.h"
#include "src/options.h"
#include "test_util.h"

namespace kvt {
namespace {

TEST(Units, ParseBytes) {
  EXPECT_EQ(*ParseBytes("4096"), 4096u);
  EXPECT_EQ(*ParseBytes("64KiB"), 65536u);
  EXPECT_EQ(*ParseBytes("8GiB"), 8ull << 30);
  EXPECT_EQ(*ParseBytes("8g"), 8ull << 30);
  EXPECT_EQ(*ParseBytes("1.5GB"), 1500000000u);
  EXPECT_EQ(*ParseBytes("2MB"), 2000000u);
  EXPECT_EQ(*ParseBytes("0"), 0u);
  for (const char* bad : {"", "12XB", "-1", "1.5.2GiB", "GiB", ".5G", "1.3B", "99999999999TiB",
                          "18446744073709551616", " 1", "1 "}) {
    auto r = ParseBytes(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseBytes("12XB").status().message().find("XB"), std::string::npos);
}

// Issue 14: a fraction with hundreds of digits made std::stod throw out_of_range, which the C API
// turned into KVT_INTERNAL and kvtierd into an abort.
TEST(Units, AbsurdSizesAreInvalidArgument) {
  const std::string zeros(400, '0');
  for (const std::string& bad :
       {"1" + zeros + ".0", "1" + zeros + ".5GiB", "0." + zeros + "1", "9" + zeros + ".0TB",
        "1" + zeros, "1" + zeros + "KiB"}) {
    StatusOr<uint64_t> r(uint64_t{0});
    ASSERT_NO_THROW(r = ParseBytes(bad)) << bad.size() << " chars";
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
  }
  EXPECT_EQ(*ParseBytes("0.5KiB"), 512u);  // fractions that fit still parse
  EXPECT_EQ(*ParseBytes("1000000.5TiB"), (1000000ull << 40) + (1ull << 39));
  Options o;
  EXPECT_EQ(o.Set("host_bytes", "1" + zeros + ".0").code(), Code::kInvalidArgument);
}

TEST(Options, SetValidatesAndLeavesUnchangedOnError) {
  Options o;
  EXPECT_TRUE(o.Set("host_bytes", "256MiB").ok());
  EXPECT_EQ(o.host_bytes, 256ull << 20);
  Status s = o.Set("host_bytes", "12XB");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("host_bytes"), std::string::npos);
  EXPECT_EQ(o.host_bytes, 256ull << 20);
  EXPECT_EQ(o.Set("no_such_option", "1").code(), Code::kInvalidArgument);
  EXPECT_EQ(o.Set("host_policy", "mru").code(), Code::kInvalidArgument);
  EXPECT_EQ(o.host_policy, "lru");
  EXPECT_TRUE(o.Set("host_policy", "s3fifo").ok());
  EXPECT_EQ(o.Set("io_depth", "0").code(), Code::kInvalidArgument);
  EXPECT_EQ(o.Set("io_depth", "5000").code(), Code::kInvalidArgument);
  EXPECT_EQ(o.Set("hash_secret", "abc").code(), Code::kInvalidArgument);
  EXPECT_EQ(o.Set("hash_secret", "zz").code(), Code::kInvalidArgument);
  EXPECT_TRUE(o.Set("hash_secret", "00ff10").ok());
  EXPECT_EQ(o.hash_secret, std::string("\x00\xff\x10", 3));
  EXPECT_EQ(o.Set("remote", "host").code(), Code::kInvalidArgument);
  EXPECT_EQ(o.Set("remote", "host:0").code(), Code::kInvalidArgument);
  EXPECT_EQ(o.Set("remote", "a:1,").code(), Code::kInvalidArgument);
  EXPECT_TRUE(o.Set("remote", "a:1,[::1]:2").ok());
  EXPECT_EQ(o.remote.size(), 2u);
  EXPECT_EQ(o.Set("host_slab_bytes", "5000").code(), Code::kInvalidArgument);
  EXPECT_EQ(o.Set("host_mlock", "maybe").code(), Code::kInvalidArgument);
}

TEST(Options, LoadFileIsAllOrNothing) {
  testing::TestDir dir;
  const std::string good = dir.path() + "/good.conf";
  std::ofstream(good) << "# comment\n\nhost_bytes = 32MiB\nhost_policy=chain_lru\n";
  Options o;
  ASSERT_TRUE(o.LoadFile(good).ok());
  EXPECT_EQ(o.host_bytes, 32ull << 20);
  EXPECT_EQ(o.host_policy, "chain_lru");
  const std::string bad = dir.path() + "/bad.conf";
  std::ofstream(bad) << "host_bytes = 64MiB\nhost_policy = nope\n";
  Status s = o.LoadFile(bad);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find(":2:"), std::string::npos) << s.message();
  EXPECT_EQ(o.host_bytes, 32ull << 20);  // unchanged
  EXPECT_FALSE(o.LoadFile(dir.path() + "/missing.conf").ok());
}

// Issue 14: LoadFile read /dev/zero until memory ran out. Files past the limit are rejected with
// a message naming it; a file exactly at the limit still loads.
TEST(Options, LoadFileHasASizeLimit) {
  Options o;
  Status z = o.LoadFile("/dev/zero");
  EXPECT_EQ(z.code(), Code::kInvalidArgument) << z.ToString();
  EXPECT_NE(z.message().find("limit of 1.00 MiB"), std::string::npos) << z.message();
  testing::TestDir dir;
  const std::string at_limit = dir.path() + "/at_limit.conf";
  {
    std::string text = "host_bytes = 48MiB\n";
    text.resize(Options::kMaxConfigFileBytes - 1, '#');
    text.push_back('\n');
    std::ofstream(at_limit, std::ios::binary) << text;
  }
  Status ok = o.LoadFile(at_limit);
  ASSERT_TRUE(ok.ok()) << ok.ToString();
  EXPECT_EQ(o.host_bytes, 48ull << 20);
  const std::string huge = dir.path() + "/huge.conf";
  {
    std::ofstream f(huge, std::ios::binary);
    f << "host_bytes = 64MiB\n" << std::string(Options::kMaxConfigFileBytes, '#') << "\n";
  }
  Status h = o.LoadFile(huge);
  EXPECT_EQ(h.code(), Code::kInvalidArgument) << h.ToString();
  EXPECT_NE(h.message().find("larger than the limit"), std::string::npos) << h.message();
  EXPECT_EQ(o.host_bytes, 48ull << 20);  // unchanged
}

}  // namespace
}  // namespace kvt
