// `kvq bench model`: prefill and decode throughput of a synthetic
// production-shaped model, fp16 vs kivi2 caches in one run.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "model/model_benchmark.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, workload, "",
          "kvq bench model: only `prefill` or only `decode`; empty: both.");

namespace kvq::model {
namespace {

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
  const bool json = absl::GetFlag(FLAGS_json);
  const ModelConfig& c = opts.config;
  if (!json) {
    std::printf(
        "synthetic model: dim %d, %d layers, %d heads, %d KV heads, head_dim %d, hidden "
        "%d, vocab %d; median of %d runs\n",
        c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.HeadDim(), c.hidden_dim,
        c.vocab_size, opts.runs);
    std::printf("%-8s %-40s %5s %7s %12s %9s %14s\n", "workload", "kv", "batch",
                "context", "tokens/s", "vs fp16", "KV MiB/seq");
  }
  auto print = [json](const BenchResult& r) {
    if (json) {
      nlohmann::json j = {{"workload", r.workload},
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
      std::printf("%-8s %-40s %5d %7d %12.1f %9s %14.2f\n", r.workload.c_str(),
                  r.kv.c_str(), r.batch, r.context, r.tokens_per_s,
                  r.workload == "decode"
                      ? std::to_string(r.ratio_vs_fp16).substr(0, 5).c_str()
                      : "",
                  r.cache_bytes_per_seq / (1 << 20));
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
        "cached tokens (synthetic K/V), fp16 and kivi2 caches, with the ratio.",
    .flags = {"json", "workload"},
    .run = RunBenchModel,
});

}  // namespace
}  // namespace kvq::model
