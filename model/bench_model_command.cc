// `kvq bench model`: prefill and decode throughput of a synthetic
// production-shaped model, fp16 vs kivi2 caches in one run.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "kernels/kernels.h"
#include "model/model_benchmark.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, workload, "",
          "kvq bench model: only `prefill` or only `decode`; empty: both.");
ABSL_FLAG(
    std::string, decode_contexts, "2048,8192",
    "kvq bench model: cached tokens per sequence of the decode rows, comma-separated.");

namespace kvq::model {
namespace {

// --weights as a comma-separated list; every mode while the flag holds its
// default (this Abseil does not say whether a flag was given).
absl::StatusOr<std::vector<WeightsMode>> WeightsModes() {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag("weights");
  if (flag == nullptr || flag->CurrentValue() == flag->DefaultValue()) {
    return std::vector<WeightsMode>{WeightsMode::kFp32, WeightsMode::kBf16,
                                    WeightsMode::kInt8};
  }
  std::vector<WeightsMode> modes;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_weights), ',')) {
    absl::StatusOr<WeightsMode> m = ParseWeightsMode(part);
    if (!m.ok())
      return absl::InvalidArgumentError("--weights: " +
                                        std::string(m.status().message()));
    modes.push_back(*m);
  }
  return modes;
}

int RunBenchModel(const std::vector<std::string>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "kvq bench model: unexpected argument %s\n", args[0].c_str());
    return 2;
  }
  ModelBenchmarkOptions opts;
  const std::string workload = absl::GetFlag(FLAGS_workload);
  if (workload == "prefill") {
    opts.decode_contexts.clear();
  } else if (workload == "decode") {
    opts.prefill_tokens.clear();
  } else if (!workload.empty()) {
    std::fprintf(stderr, "kvq bench model: --workload must be prefill or decode\n");
    return 2;
  }
  opts.decode_contexts.clear();
  for (absl::string_view part :
       absl::StrSplit(absl::GetFlag(FLAGS_decode_contexts), ',')) {
    int context = 0;
    if (!absl::SimpleAtoi(part, &context) || context <= 0) {
      std::fprintf(stderr, "kvq bench model: --decode_contexts: bad value \"%s\"\n",
                   std::string(part).c_str());
      return 2;
    }
    opts.decode_contexts.push_back(context);
  }
  if (workload == "prefill") opts.decode_contexts.clear();
  absl::StatusOr<std::vector<WeightsMode>> weights = WeightsModes();
  if (!weights.ok()) {
    std::fprintf(stderr, "kvq bench model: %s\n", weights.status().ToString().c_str());
    return 2;
  }
  opts.weights = *weights;
  const bool json = absl::GetFlag(FLAGS_json);
  const std::string cpu = kernels::CpuModelName();
  const std::string variant = kernels::Best().name;
  const ModelConfig& c = opts.config;
  if (!json) {
    std::printf(
        "synthetic model: dim %d, %d layers, %d heads, %d KV heads, head_dim %d, hidden "
        "%d, vocab %d; median of %d runs\n",
        c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.HeadDim(), c.hidden_dim,
        c.vocab_size, opts.runs);
    std::printf("cpu: %s; KV-cache kernel variant: %s\n", cpu.c_str(), variant.c_str());
    std::printf("%-8s %-5s %-10s %8s %-40s %5s %7s %12s %9s %9s %14s\n", "workload",
                "wts", "kernel", "wts MiB", "kv", "batch", "context", "tokens/s",
                "vs fp16", "vs fp32w", "KV MiB/seq");
  }
  auto print = [json, &cpu, &variant](const BenchResult& r) {
    if (json) {
      nlohmann::json j = {{"workload", r.workload},
                          {"weights", r.weights},
                          {"weights_kernel", r.weights_kernel},
                          {"weight_bytes", r.weight_bytes},
                          {"ratio_vs_fp32_weights", r.ratio_vs_fp32_weights},
                          {"cpu", cpu},
                          {"kernel_variant", variant},
                          {"kv", r.kv},
                          {"batch", r.batch},
                          {"context", r.context},
                          {"tokens_per_s", r.tokens_per_s},
                          {"seconds", r.seconds}};
      if (r.workload == "decode") {
        j["ratio_vs_fp16"] = r.ratio_vs_fp16;
        j["cache_bytes_per_seq"] = r.cache_bytes_per_seq;
      }
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf(
          "%-8s %-5s %-10s %8.1f %-40s %5d %7d %12.1f %9s %9.3f %14.2f\n",
          r.workload.c_str(), r.weights.c_str(), r.weights_kernel.c_str(),
          r.weight_bytes / (1 << 20), r.kv.c_str(), r.batch, r.context, r.tokens_per_s,
          r.workload == "decode" ? std::to_string(r.ratio_vs_fp16).substr(0, 5).c_str()
                                 : "",
          r.ratio_vs_fp32_weights, r.cache_bytes_per_seq / (1 << 20));
    }
    std::fflush(stdout);
  };
  absl::StatusOr<std::vector<BenchResult>> rows = RunModelBenchmark(opts, print);
  if (!rows.ok()) {
    std::fprintf(stderr, "kvq bench model: %s\n", rows.status().ToString().c_str());
    return 1;
  }
  return 0;
}

const cli::CommandRegistrar kBenchModel({
    .path = "bench model",
    .summary = "Prefill and decode throughput, fp16 vs kivi2 KV caches.",
    .description =
        "A synthetic model (dim 1024, 8 layers, 16 heads, 4 KV heads, head_dim 64, "
        "hidden 2816, vocab 32000; ~120M parameters): prefill tokens/s at 512 and 2048 "
        "tokens; decode tokens/s at batch 1, 8, 32 over contexts of 2048 and 8192 "
        "cached tokens (synthetic K/V), fp16 and kivi2 caches, with the ratio; every "
        "row once per weights mode (--weights: a comma-separated list such as int8 or "
        "fp32,int8; left at its default: fp32,bf16,int8), with the ratio to fp32 "
        "weights. JSON rows name the CPU and "
        "the matrix products' kernel variant.",
    .flags = {"json", "workload", "weights", "decode_contexts"},
    .run = RunBenchModel,
});

}  // namespace
}  // namespace kvq::model
