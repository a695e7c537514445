// `kvq version` (also `kvq --version`): the release, the block format it
// speaks, the CPU, the KV-cache kernel variant in use and the weight
// products' kernel for each --weights mode.
#include "common/version.h"

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/command.h"
#include "kernels/block_format.h"
#include "kernels/kernels.h"
#include "model/internal/weight_matrix.h"
#include "model/weights_mode.h"

namespace kvq::cli {
namespace {

int PrintVersion(const std::vector<std::string>&) {
  std::vector<std::string> available;
  for (const kernels::KernelSet* k : kernels::Available()) available.push_back(k->name);
  std::printf("kvq %s\n", kVersion);
  std::printf("block format: %d\n", kernels::kFormatVersion);
  std::printf("cpu: %s\n", kernels::CpuModelName().c_str());
  std::printf("kernel variant: %s\n", kernels::Best().name.c_str());
  std::printf("variants this cpu runs: %s\n", absl::StrJoin(available, ", ").c_str());
  std::vector<std::string> weights;
  for (model::WeightsMode m : {model::WeightsMode::kFp32, model::WeightsMode::kBf16,
                               model::WeightsMode::kInt8}) {
    weights.push_back(absl::StrCat(model::WeightsModeName(m), " ",
                                   model_internal::WeightsKernelName(m)));
  }
  std::printf("weights kernels: %s\n", absl::StrJoin(weights, ", ").c_str());
  return 0;
}

const CommandRegistrar kVersionCommand({
    .path = "version",
    .summary = "Print kvq's version, the CPU and the kernel variants in use.",
    .description = "Also `kvq --version`. --kernel_variant shows what forcing one picks.",
    .flags = {},
    .run = PrintVersion,
});

}  // namespace
}  // namespace kvq::cli
