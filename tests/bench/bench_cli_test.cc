// kvtier-bench's command line: the JSON of the quick CI run has every required field, and bad
// flags are refused with a message naming the flag and a nonzero exit. No figure is asserted.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/common/test_dir.h"

namespace {

struct BenchRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

BenchRun RunBench(const std::string& args) {
  BenchRun r;
  const std::string cmd = std::string(KVT_BENCH_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Written by the kvtier_bench_quick test (a ctest fixture this test requires).
TEST(BenchJson, QuickRunHasRequiredFields) {
  std::ifstream in(KVT_BENCH_JSON);
  ASSERT_TRUE(in) << "missing " << KVT_BENCH_JSON << " (run ctest, which runs kvtier_bench_quick first)";
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << "not JSON: " << KVT_BENCH_JSON;
  ASSERT_TRUE(j.contains("machine") && j["machine"].is_object());
  EXPECT_TRUE(j["machine"].contains("cpus_online"));
  ASSERT_TRUE(j.contains("results") && j["results"].is_array());
  ASSERT_TRUE(j.contains("baselines") && j["baselines"].is_array());
  ASSERT_FALSE(j["results"].empty());
  ASSERT_FALSE(j["baselines"].empty());
  bool saw_nvme_read = false;
  for (const auto& r : j["results"]) {
    for (const char* k : {"path", "block_bytes", "gbps", "ratio_to_limit"}) {
      EXPECT_TRUE(r.contains(k)) << "result without " << k << ": " << r.dump();
    }
    if (r["path"] == "nvme_read") {
      saw_nvme_read = true;
      // A throughput path: a positive figure and a ratio to its limit (raw io_uring).
      EXPECT_TRUE(r["gbps"].is_number() && r["gbps"].get<double>() > 0) << r.dump();
      EXPECT_TRUE(r["ratio_to_limit"].is_number()) << r.dump();
      EXPECT_EQ(r["limit"], "raw_rand_read");
      EXPECT_TRUE(r["ratio_to_baseline"].contains("file_per_block_read")) << r.dump();
      EXPECT_TRUE(r["ratio_to_baseline"].contains("rocksdb_blob_read")) << r.dump();
    }
  }
  EXPECT_TRUE(saw_nvme_read);
  for (const auto& b : j["baselines"]) {
    for (const char* k : {"name", "path", "block_bytes", "gbps"}) {
      EXPECT_TRUE(b.contains(k)) << "baseline without " << k << ": " << b.dump();
    }
  }
}

TEST(BenchFlags, BadSizeIsRefused) {
  BenchRun r = RunBench("--sizes 12XB");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--sizes: '12XB'"), std::string::npos) << r.output;
}

TEST(BenchFlags, UnalignedSizeIsRefused) {
  BenchRun r = RunBench("--sizes 1000");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("multiple of 4 KiB"), std::string::npos) << r.output;
}

TEST(BenchFlags, BadRoundsIsRefused) {
  BenchRun r = RunBench("--rounds 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--rounds"), std::string::npos) << r.output;
}

TEST(BenchFlags, UnknownFlagIsRefused) {
  BenchRun r = RunBench("--fast");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown flag '--fast'"), std::string::npos) << r.output;
}

TEST(BenchFlags, MissingValueIsRefused) {
  BenchRun r = RunBench("--json");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--json needs a value"), std::string::npos) << r.output;
}

TEST(BenchFlags, MissingDirIsRefused) {
  kvt::testing::TestDir dir;
  BenchRun r = RunBench("--quick --dir " + dir.file("absent"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("is not a directory"), std::string::npos) << r.output;
}

// --only naming network rows alone sets up nothing else: no disk files, no trace, no link.
TEST(BenchFlags, OnlyNetRowsSetUpOnlyTheNetwork) {
  kvt::testing::TestDir dir;
  BenchRun r = RunBench("--quick --sizes 64K --rounds 1 --only net/remote_get --dir " + dir.path() +
                        " --json " + dir.file("out.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("setting up net"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("disk and memory"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("trace replay"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("wan"), std::string::npos) << r.output;
  std::ifstream in(dir.file("out.json"));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded());
  ASSERT_FALSE(j["results"].empty());
  for (const auto& row : j["results"]) {
    EXPECT_EQ(row["path"].get<std::string>().rfind("net/", 0), 0u) << row.dump();
  }
}

TEST(BenchFlags, HelpExitsZero) {
  BenchRun r = RunBench("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--quick"), std::string::npos);
}

}  // namespace
