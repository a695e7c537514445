// What a process says about its build (issue 16, item 5), through the real
// kvq binary: `kvq --version` names the CPU and the kernel variant in use;
// --kernel_variant forces one in any command and refuses a name that is
// unknown or that this CPU cannot run; every role's /metrics exports
// kvq_build_info with the variant as a label, a forced one included.
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/version.h"
#include "gtest/gtest.h"
#include "kernels/kernels.h"
#include "model/internal/bf16_matmul.h"
#include "model/internal/int8_matmul.h"
#include "model/internal/weight_matrix.h"
#include "model/weights_mode.h"
#include "services/launcher/launcher.h"
#include "tests/common/run_command.h"
#include "tests/integration/serving_test_util.h"

namespace kvq {
namespace {

struct KvqRun {
  int status;
  std::string output;  // stdout and stderr
};

KvqRun Kvq(const std::string& args) {
  const testing::CommandResult r =
      testing::RunCommand(launcher::FindKvqBinary() + " " + args + " 2>&1");
  return {r.exit_code, r.out};
}

// The value of "KEY: value" in `text`.
std::string Field(const std::string& text, const std::string& key) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, key + ": ")) return std::string(line);
  }
  return "";
}

TEST(VersionTest, NamesVersionCpuAndTheVariantInUse) {
  const KvqRun r = Kvq("--version");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(absl::StartsWith(r.output, absl::StrCat("kvq ", kVersion, "\n")))
      << r.output;
  EXPECT_EQ(Field(r.output, "cpu"), kernels::CpuModelName());
  EXPECT_EQ(Field(r.output, "kernel variant"), kernels::Best().name);
  EXPECT_EQ(
      Field(r.output, "weights kernels"),
      absl::StrCat(
          "fp32 ", model_internal::WeightsKernelName(model::WeightsMode::kFp32),
          ", bf16 ", model_internal::Bf16KernelName(model_internal::BestBf16Kernel()),
          ", int8 ", model_internal::Int8KernelName(model_internal::BestInt8Kernel())));
  EXPECT_EQ(Kvq("version").output, r.output);
}

TEST(KernelVariantTest, ForcesEveryVariantThisCpuRuns) {
  for (const kernels::KernelSet* k : kernels::Available()) {
    const KvqRun r = Kvq("version --kernel_variant=" + k->name);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(Field(r.output, "kernel variant"), k->name);
  }
}

TEST(KernelVariantTest, UnknownNameIsAnErrorListingTheVariants) {
  const KvqRun r = Kvq("version --kernel_variant=avx9000");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "--kernel_variant")) << r.output;
  for (const std::string& name : kernels::VariantNames()) {
    EXPECT_TRUE(absl::StrContains(r.output, name)) << name << " in " << r.output;
  }
  // The command does not run.
  EXPECT_FALSE(absl::StrContains(r.output, "kernel variant:")) << r.output;
}

TEST(KernelVariantTest, VariantTheCpuLacksIsAnErrorNamingTheCpu) {
  std::vector<std::string> lacking;
  for (const std::string& name : kernels::VariantNames()) {
    if (kernels::FindKernels(name) == nullptr) lacking.push_back(name);
  }
  if (lacking.empty()) {
    GTEST_SKIP() << "this CPU (" << kernels::CpuModelName() << ") runs every variant";
  }
  for (const std::string& name : lacking) {
    const KvqRun r = Kvq("generate --kernel_variant=" + name);
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_TRUE(absl::StrContains(r.output, kernels::CpuModelName())) << r.output;
  }
}

// The kvq_build_info sample of a /metrics page ("" when absent).
std::string BuildInfoLine(ChildProcess* child) {
  absl::StatusOr<std::string> page = testing::MetricsPage(child);
  if (!page.ok()) return page.status().ToString();
  for (absl::string_view line : absl::StrSplit(*page, '\n')) {
    if (absl::StartsWith(line, "kvq_build_info{")) return std::string(line);
  }
  return "";
}

TEST(BuildInfoMetricTest, EveryRoleExportsItsVariant) {
  launcher::ClusterOptions o = testing::TestClusterOptions();
  o.store_flags = {"--metrics_port=0"};
  o.decode_flags.push_back("--kernel_variant=int_portable");
  o.prefill_flags.push_back("--weights=bf16");
  o.decode_flags.push_back("--weights=bf16");
  auto cluster = launcher::Cluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  struct Expect {
    ChildProcess* child;
    std::string variant;
  };
  const std::string best = kernels::Best().name;
  for (const Expect& e :
       {Expect{(*cluster)->store(), best}, Expect{(*cluster)->prefill(0), best},
        Expect{(*cluster)->decode(0), "int_portable"},
        Expect{(*cluster)->router(), best}}) {
    const std::string line = BuildInfoLine(e.child);
    EXPECT_TRUE(
        absl::StrContains(line, absl::StrCat("kernel_variant=\"", e.variant, "\"")))
        << e.child->name() << ": " << line;
    EXPECT_TRUE(absl::StrContains(line, absl::StrCat("version=\"", kVersion, "\"")))
        << line;
    EXPECT_TRUE(absl::StrContains(line, "cpu=\"" + kernels::CpuModelName() + "\""))
        << line;
    EXPECT_TRUE(absl::EndsWith(line, " 1")) << line;
    // Workers holding a model name their weights and the kernel multiplying them.
    const bool worker =
        e.child == (*cluster)->prefill(0) || e.child == (*cluster)->decode(0);
    EXPECT_EQ(absl::StrContains(line, "weights=\"bf16\""), worker) << line;
    EXPECT_EQ(absl::StrContains(line, absl::StrCat("weights_kernel=\"",
                                                   model_internal::Bf16KernelName(
                                                       model_internal::BestBf16Kernel()),
                                                   "\"")),
              worker)
        << line;
    // The launcher's short OpenMP spin reaches every service (launcher.h,
    // kServiceSpinCount), unless this environment sets its own.
    if (std::getenv("GOMP_SPINCOUNT") == nullptr &&
        std::getenv("OMP_WAIT_POLICY") == nullptr) {
      std::ifstream in("/proc/" + std::to_string(e.child->pid()) + "/environ");
      const std::string env((std::istreambuf_iterator<char>(in)),
                            std::istreambuf_iterator<char>());
      EXPECT_TRUE(absl::StrContains(
          env, std::string("GOMP_SPINCOUNT=") + launcher::kServiceSpinCount + '\0'))
          << e.child->name();
    }
  }
  // The forced variant serves.
  testing::StreamResult r =
      testing::RouterGenerate((*cluster)->router_address(),
                              testing::GreedyRequest(testing::Prompt(40, 1), "kivi2", 8));
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.tokens.size(), 8u);
}

}  // namespace
}  // namespace kvq
