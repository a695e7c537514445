// Runs `kvq bench kernels` as a user does (a kvq binary holding only it) on a
// tiny shape: --repeats rounds and what they print, and bad flags. Nothing
// here asserts a speed.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/run_command.h"

namespace kvq::kernels::bench {
namespace {

using kvq::testing::CommandResult;

// Runs `kvq_kernels_cli ARGS`, stdout captured, stderr to `err_file`.
CommandResult RunKvq(const std::string& args, const std::string& err_file = "/dev/null") {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return kvq::testing::RunCommand(std::string(srcdir ? srcdir : ".") +
                                  "/kvq/tests/kernels/kvq_kernels_cli " + args + " 2>" +
                                  err_file);
}

std::vector<nlohmann::json> Records(const std::string& out) {
  std::vector<nlohmann::json> records;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    records.push_back(nlohmann::json::parse(line));
  }
  return records;
}

TEST(BenchKernelsCliTest, RepeatsReportMediansAndEveryRound) {
  const CommandResult o =
      RunKvq("bench kernels --quick --contexts=700 --threads=1 --repeats=3 --json");
  ASSERT_EQ(o.exit_code, 0) << o.out;
  int attention = 0;
  for (const nlohmann::json& j : Records(o.out)) {
    if (j["record"] == "config") {
      EXPECT_EQ(j["rounds"], 3) << j;
    }
    if (j["record"] != "attention") continue;
    ++attention;
    const std::vector<double> us = j["us_per_call_runs"];
    ASSERT_EQ(us.size(), 3u) << j;
    std::vector<double> sorted = us;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_DOUBLE_EQ(j["us_per_call"].get<double>(), sorted[1]) << j;
    if (j["kv"] == "kivi2+outliers0.02") {
      std::vector<double> slow = j["slowdown_vs_no_outliers_runs"];
      ASSERT_EQ(slow.size(), 3u);
      std::sort(slow.begin(), slow.end());
      EXPECT_DOUBLE_EQ(j["slowdown_vs_no_outliers"].get<double>(), slow[1]) << j;
    }
  }
  EXPECT_EQ(attention, 3);  // fp16, kivi2, kivi2 with outliers

  // One round (the default): no per-round arrays.
  const CommandResult once =
      RunKvq("bench kernels --quick --contexts=700 --threads=1 --json");
  ASSERT_EQ(once.exit_code, 0);
  for (const nlohmann::json& j : Records(once.out)) {
    EXPECT_FALSE(j.contains("us_per_call_runs")) << j;
    if (j["record"] == "config") {
      EXPECT_EQ(j["rounds"], 1);
    }
  }
}

TEST(BenchKernelsCliTest, BadFlagsAreClearErrors) {
  const std::string err = ::testing::TempDir() + "/bench_kernels_stderr.txt";
  const auto stderr_text = [&err] {
    std::string text;
    if (FILE* f = std::fopen(err.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
      std::fclose(f);
    }
    return text;
  };
  EXPECT_EQ(RunKvq("bench kernels --repeats=0", err).exit_code, 2);
  EXPECT_NE(stderr_text().find("--repeats must be in [1, 100]"), std::string::npos)
      << stderr_text();
  EXPECT_EQ(RunKvq("bench kernels --contexts=0", err).exit_code, 2);
  EXPECT_NE(stderr_text().find("'0' is not a positive integer"), std::string::npos)
      << stderr_text();
  EXPECT_EQ(RunKvq("bench kernels --variant=nosuch", err).exit_code, 2);
  EXPECT_NE(stderr_text().find("no variant 'nosuch'"), std::string::npos)
      << stderr_text();
}

}  // namespace
}  // namespace kvq::kernels::bench
