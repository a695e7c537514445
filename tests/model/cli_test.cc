// Runs the model subcommands as a user does (a kvq binary holding only them)
// and checks what they print.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/paths.h"
#include "gtest/gtest.h"
#include "model/internal/read_file.h"
#include "nlohmann/json.hpp"
#include "tests/common/run_command.h"

namespace kvq::model {
namespace {

using Output = kvq::testing::CommandResult;

std::string Binary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return std::string(srcdir ? srcdir : ".") + "/kvq/tests/model/kvq_model_cli";
}

// Runs `kvq_model_cli ARGS`, stdout captured; stderr goes to `err_file`.
Output RunKvq(const std::string& args, const std::string& err_file = "/dev/null") {
  return kvq::testing::RunCommand(Binary() + " " + args + " 2>" + err_file);
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

// `kvq eval pareto` end to end on stories260K: a short text, three modes.
TEST(CliTest, EvalParetoJsonLines) {
  const std::string dir = ::testing::TempDir();
  std::ofstream(dir + "/short.txt")
      << "Once upon a time, there was a little girl named Lily. She loved to play "
         "outside in the sun with her big red ball.\n\nTom had a toy car. He liked to "
         "race "
         "it across the kitchen floor every day after lunch.\n";
  const Output o = RunKvq("eval pareto --json --text " + dir +
                          "/short.txt --threads 2 --modes "
                          "'fp16;kivi:bits=2,block=16,group=8,residual=0;kivi8'");
  ASSERT_EQ(o.exit_code, 0) << o.out;
  std::istringstream lines(o.out);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(lines, line);) {
    rows.push_back(nlohmann::json::parse(line, nullptr, false));
    ASSERT_FALSE(rows.back().is_discarded()) << line;
  }
  ASSERT_EQ(rows.size(), 3u) << o.out;
  std::set<std::string> kvs;
  for (size_t i = 0; i < rows.size(); ++i) {
    const nlohmann::json& j = rows[i];
    for (const char* key : {"kv", "effective_bits", "ppl", "kivi", "pareto"}) {
      ASSERT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
    }
    EXPECT_TRUE(j["effective_bits"].is_number_float());
    EXPECT_TRUE(j["kivi"].is_boolean());
    EXPECT_TRUE(j["pareto"].is_boolean());
    EXPECT_EQ(j["kivi"], j["kv"] != "fp16") << j.dump();
    EXPECT_GT(j["ppl"].get<double>(), 1.0);
    EXPECT_NEAR(j["ppl"].get<double>(), std::exp(j["mean_nll"].get<double>()), 1e-9);
    if (i > 0) {  // sorted by effective bits
      EXPECT_LE(rows[i - 1]["effective_bits"].get<double>(),
                j["effective_bits"].get<double>());
    }
    kvs.insert(j["kv"].get<std::string>());
  }
  // Canonical forms; kivi8 is kivi:bits=8 at the defaults (R=128 keeps these
  // short lines fp16: 16 bits, like fp16 itself).
  EXPECT_EQ(kvs, (std::set<std::string>{"fp16", "kivi:bits=2,block=16,group=8,residual=0",
                                        "kivi:bits=8,block=32,group=8,residual=128"}));
  EXPECT_EQ(rows[0]["kv"], "kivi:bits=2,block=16,group=8,residual=0");
  EXPECT_LT(rows[0]["effective_bits"].get<double>(), 16.0);
  EXPECT_TRUE(rows[0]["pareto"]);  // the cheapest row is always on the front
  EXPECT_EQ(rows[1]["effective_bits"], 16.0);
  EXPECT_EQ(rows[2]["effective_bits"], 16.0);
  // Same bits and same ppl (nothing quantized): neither dominates the other.
  EXPECT_EQ(rows[1]["ppl"], rows[2]["ppl"]);
  EXPECT_EQ(rows[1]["pareto"], rows[2]["pareto"]);
  // One arithmetic for every mode: never an integer variant (which would hand
  // non-KIVI modes to its fp32 variant) unless --kernel_variant names one.
  for (const nlohmann::json& j : rows) {
    EXPECT_EQ(j["kernels"].get<std::string>().rfind("int_", 0), std::string::npos)
        << j.dump();
  }
  const Output forced =
      RunKvq("eval pareto --json --kernel_variant int_portable --text " + dir +
             "/short.txt --modes kivi2");
  ASSERT_EQ(forced.exit_code, 0) << forced.out;
  EXPECT_EQ(nlohmann::json::parse(forced.out)["kernels"], "int_portable") << forced.out;

  // The table: a header, a column line and one line a mode, the front starred.
  const Output table =
      RunKvq("eval pareto --text " + dir + "/short.txt --modes 'fp16;kivi2'");
  ASSERT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("eff.bits"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("kivi:bits=2,block=32,group=8,residual=128"),
            std::string::npos)
      << table.out;
}

TEST(CliTest, EvalParetoErrors) {
  const std::string dir = ::testing::TempDir();
  const std::string err = dir + "/pareto_stderr.txt";
  auto stderr_text = [&] { return *model_internal::ReadFile(err); };
  std::ofstream(dir + "/one_line.txt") << "Once upon a time.\n";
  const std::string text = " --text " + dir + "/one_line.txt";

  EXPECT_EQ(RunKvq("eval pareto --modes 'fp16;kivi:bits=3'" + text, err).exit_code, 1);
  EXPECT_NE(stderr_text().find("mode \"kivi:bits=3\" rejected"), std::string::npos)
      << stderr_text();
  EXPECT_EQ(RunKvq("eval pareto --modes 'kivi:bits=2,group=3'" + text, err).exit_code, 1);
  EXPECT_NE(stderr_text().find("group 3 does not divide head_dim 8"), std::string::npos)
      << stderr_text();
  EXPECT_EQ(RunKvq("eval pareto --text /nonexistent/dev.txt", err).exit_code, 1);
  EXPECT_NE(stderr_text().find("/nonexistent/dev.txt"), std::string::npos)
      << stderr_text();
  EXPECT_EQ(RunKvq("eval pareto --quick --modes fp16" + text, err).exit_code, 1);
  EXPECT_NE(stderr_text().find("not both"), std::string::npos) << stderr_text();
  EXPECT_EQ(RunKvq("eval pareto --threads 1,2" + text, err).exit_code, 1);
  EXPECT_NE(stderr_text().find("--threads"), std::string::npos) << stderr_text();
  std::ofstream(dir + "/blank.txt") << "\n\n";
  EXPECT_EQ(RunKvq("eval pareto --quick --text " + dir + "/blank.txt", err).exit_code, 1);
  EXPECT_NE(stderr_text().find("no token to predict"), std::string::npos)
      << stderr_text();
  EXPECT_EQ(RunKvq("eval pareto --kv fp16" + text, err).exit_code, 2);
}

}  // namespace
}  // namespace kvq::model
