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

}  // namespace
}  // namespace kvt
