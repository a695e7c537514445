// Runs the model subcommands as a user does (a kvq binary holding only them)
// and checks what they print.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "common/paths.h"
#include "gtest/gtest.h"
#include "model/internal/read_file.h"
#include "nlohmann/json.hpp"

namespace kvq::model {
namespace {

struct Output {
  int exit_code = -1;
  std::string out;
};

std::string Binary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return std::string(srcdir ? srcdir : ".") + "/kvq/tests/model/kvq_model_cli";
}

// Runs `kvq_model_cli ARGS`, stdout captured; stderr goes to `err_file`.
Output RunKvq(const std::string& args, const std::string& err_file = "/dev/null") {
  Output o;
  const std::string cmd = Binary() + " " + args + " 2>" + err_file;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) o.out.append(buf, n);
  const int status = pclose(p);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

TEST(CliTest, GenerateGreedyFromEmptyPromptPrintsLlama2cOutput) {
  absl::StatusOr<std::string> want =
      model_internal::ReadFile(DefaultModelDir() + "/greedy_empty_200.txt");
  ASSERT_TRUE(want.ok()) << want.status();
  const Output o = RunKvq("generate --steps 200");
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.out, *want);
  const Output file = RunKvq("generate --steps 200 --kv fp32 --model " +
                             DefaultModelDir() + "/stories260K.bin");
  EXPECT_EQ(file.out, *want);
}

TEST(CliTest, GeneratePrintsThePromptFirst) {
  const Output o = RunKvq("generate --prompt 'Once upon a time' --steps 5 --kv kivi2");
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.out.rfind("Once upon a time", 0), 0u) << o.out;
}

TEST(CliTest, EvalPplJson) {
  const Output o = RunKvq("eval ppl --kv fp32 --json");
  ASSERT_EQ(o.exit_code, 0);
  const nlohmann::json j = nlohmann::json::parse(o.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << o.out;
  EXPECT_EQ(j["tokens"], 847);
  EXPECT_NEAR(j["ppl"].get<double>(), 3.5049, 3.5049e-3);
  EXPECT_NEAR(j["mean_nll"].get<double>(), std::log(j["ppl"].get<double>()), 1e-9);
  EXPECT_EQ(j["kv"], "fp32");
  EXPECT_EQ(j["bits_per_element"], 32.0);
  EXPECT_EQ(j["effective_bits"], 32.0);
  EXPECT_EQ(j["compression_vs_fp16"], 0.5);
}

TEST(CliTest, EvalPplWithInt8Weights) {
  const Output o = RunKvq("eval ppl --kv fp32 --weights int8 --json");
  ASSERT_EQ(o.exit_code, 0);
  const nlohmann::json j = nlohmann::json::parse(o.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << o.out;
  EXPECT_EQ(j["weights"], "int8");
  EXPECT_FALSE(j["weights_kernel"].get<std::string>().empty());
  // int8 weights cost stories260K less than 0.5% (weights_mode_test).
  EXPECT_NEAR(j["ppl"].get<double>(), 3.5049, 3.5049 * 0.005);
  const Output g = RunKvq("generate --steps 20 --weights bf16");
  EXPECT_EQ(g.exit_code, 0);
  EXPECT_FALSE(g.out.empty());
}

TEST(CliTest, BadInputIsAClearError) {
  const std::string dir = ::testing::TempDir();
  const std::string err = dir + "/stderr.txt";
  auto stderr_text = [&] { return *model_internal::ReadFile(err); };
  std::ofstream(dir + "/empty.txt").close();

  EXPECT_EQ(RunKvq("eval ppl --text " + dir + "/empty.txt", err).exit_code, 1);
  EXPECT_NE(stderr_text().find("no token to predict"), std::string::npos)
      << stderr_text();
  EXPECT_EQ(RunKvq("generate --kv kivi3", err).exit_code, 1);
  EXPECT_NE(stderr_text().find("bad --kv mode"), std::string::npos) << stderr_text();
  EXPECT_EQ(RunKvq("generate --model " + dir + "/empty.txt", err).exit_code, 1);
  EXPECT_NE(stderr_text().find("truncated"), std::string::npos) << stderr_text();
  EXPECT_EQ(RunKvq("generate --model /nonexistent", err).exit_code, 1);
  EXPECT_NE(stderr_text().find("does not exist"), std::string::npos) << stderr_text();
  EXPECT_EQ(RunKvq("eval ppl --weights int4", err).exit_code, 1);
  EXPECT_NE(stderr_text().find("--weights: unknown weights mode \"int4\": expected fp32, "
                               "bf16 or int8"),
            std::string::npos)
      << stderr_text();
}

}  // namespace
}  // namespace kvq::model
