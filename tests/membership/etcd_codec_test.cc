// The etcd gateway's encodings as pure functions: base64, int64 fields, prefix ranges, node
// values, watch messages, URLs. Every malformed input is a Status, never an exception.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "membership/etcd_client.h"
#include "membership/etcd_codec.h"

namespace kvt::etcd {
namespace {

TEST(EtcdCodec, Base64RoundTripsEveryLengthAndRejectsMalformedText) {
  std::string bytes;
  for (int n = 0; n < 40; ++n) {
    const std::string enc = Base64Encode(bytes);
    auto dec = Base64Decode(enc);
    ASSERT_TRUE(dec.ok()) << enc;
    EXPECT_EQ(*dec, bytes);
    bytes += static_cast<char>(n * 37 + 200);
  }
  EXPECT_EQ(Base64Encode("/foo1"), "L2ZvbzE=");  // as etcd's gateway writes it
  EXPECT_EQ(*Base64Decode("L2ZvbzE="), "/foo1");
  for (const char* bad : {"L2Zvb", "L2Zv!zE=", "L2==ZzE=", "=2ZvbzE=", "L2ZvbzE=AAAA", "L2Z=bzE="}) {
    EXPECT_FALSE(Base64Decode(bad).ok()) << bad;
  }
}

TEST(EtcdCodec, PrefixEndCoversExactlyThePrefix) {
  EXPECT_EQ(PrefixEnd("/kvtier/a/"), "/kvtier/a0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixEnd(std::string("\xff\xff", 2)), std::string(1, '\0'));
}

TEST(EtcdCodec, Int64FieldsAreStringsOrNumbersAndNothingElse) {
  auto j = nlohmann::json::parse(R"({"a":"123","b":45,"c":"12x","d":true,"e":"-7"})");
  EXPECT_EQ(*Int64Field(j, "a"), 123);
  EXPECT_EQ(*Int64Field(j, "b"), 45);
  EXPECT_EQ(*Int64Field(j, "e"), -7);
  EXPECT_EQ(*Int64Field(j, "absent", 9), 9);
  EXPECT_FALSE(Int64Field(j, "c").ok());
  EXPECT_FALSE(Int64Field(j, "d").ok());
  EXPECT_FALSE(Int64Field(nlohmann::json::array(), "a").ok());
}

TEST(EtcdCodec, NodeValuesRoundTripAndMalformedOnesAreRejected) {
  NodeInfo n;
  n.address = "10.0.0.5:7420";
  n.host_bytes = 1ull << 36;
  n.nvme_bytes = 1ull << 40;
  n.tls_subject = "/CN=node-a";
  n.tls_sha256 = "AB:CD";
  auto back = ParseNodeInfo(EncodeNodeInfo(n));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->address, n.address);
  EXPECT_EQ(back->host_bytes, n.host_bytes);
  EXPECT_EQ(back->nvme_bytes, n.nvme_bytes);
  EXPECT_EQ(back->tls_subject, n.tls_subject);
  EXPECT_EQ(back->tls_sha256, n.tls_sha256);
  EXPECT_TRUE(ParseNodeInfo(R"({"address":"[::1]:7420","future":{"x":1}})").ok());
  for (const char* bad : {"", "not json", "[1,2]", "{}", R"({"address":5})",
                          R"({"address":"nohost"})", R"({"address":":7420"})",
                          R"({"address":"h:0"})", R"({"address":"h:70000"})",
                          R"({"address":"a b:1"})", R"({"address":"h:12x"})"}) {
    EXPECT_FALSE(ParseNodeInfo(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseNodeInfo(std::string(kMaxNodeValueBytes + 1, ' ')).ok());
}

TEST(EtcdCodec, UrlsAndPrefixes) {
  auto u = ParseHttpUrl("http://127.0.0.1:2379/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 2379);
  EXPECT_FALSE(ParseHttpUrl("https://h:1").ok());
  EXPECT_FALSE(ParseHttpUrl("http://h").ok());
  std::string prefix;
  auto e = ParseEtcdUrl("etcd://etcd.local:2379/kvtier/prod/", &prefix);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "etcd.local");
  EXPECT_EQ(prefix, "/kvtier/prod");
  EXPECT_FALSE(ParseEtcdUrl("etcd://h:2379", &prefix).ok());
  EXPECT_FALSE(ParseEtcdUrl("etcd://h:2379/", &prefix).ok());
  EXPECT_FALSE(ParseEtcdUrl("etcd://h/x", &prefix).ok());
  EXPECT_FALSE(NormalizePrefix("kvtier").ok());
  EXPECT_FALSE(NormalizePrefix("/a b").ok());
}

TEST(EtcdCodec, WatchMessagesParseAndMalformedOnesAreCorruption) {
  // As etcd 3.4's gateway sends them (PUT is proto3's zero value and left out).
  auto w = ParseWatchResponse(
      R"({"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"L2ZvbzI=","mod_revision":"3","value":"YmF6"}},)"
      R"({"type":"DELETE","kv":{"key":"L2ZvbzI=","mod_revision":"4"}}]}})");
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->header_revision, 4);
  ASSERT_EQ(w->events.size(), 2u);
  EXPECT_FALSE(w->events[0].deleted);
  EXPECT_EQ(w->events[0].kv.key, "/foo2");
  EXPECT_EQ(w->events[0].kv.value, "baz");
  EXPECT_EQ(w->events[0].kv.mod_revision, 3);
  EXPECT_TRUE(w->events[1].deleted);
  auto c = ParseWatchResponse(R"({"result":{"header":{},"canceled":true,"compact_revision":"2"}})");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->canceled);
  EXPECT_EQ(c->compact_revision, 2);
  EXPECT_FALSE(ParseWatchResponse(R"({"error":{"grpc_code":14,"message":"down"}})").ok());
  for (const char* bad : {"", "{", "[]", R"({"result":5})", R"({"result":{"events":{}}})",
                          R"({"result":{"events":[{"type":"EXPLODE","kv":{}}]}})",
                          R"({"result":{"events":[{"kv":{"key":"!!!!"}}]}})",
                          R"({"result":{"events":[{"kv":{"key":"YQ==","mod_revision":"x"}}]}})",
                          R"({"result":{"events":[{"type":"PUT"}]}})"}) {
    EXPECT_FALSE(ParseWatchResponse(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace kvt::etcd
