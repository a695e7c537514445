// `kvq bench model`'s workloads: prefill and batched decode throughput of a
// synthetic model with production-like attention, fp16 vs kivi2 caches
// measured in the same run.
//
//   ModelBenchmarkOptions opts;  // the default ~120M-parameter shape
//   KVQ_ASSIGN_OR_RETURN(std::vector<BenchResult> rows, RunModelBenchmark(opts));
#ifndef KVQ_MODEL_MODEL_BENCHMARK_H_
#define KVQ_MODEL_MODEL_BENCHMARK_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/synthetic_model.h"
#include "model/weights_mode.h"

namespace kvq::model {

struct ModelBenchmarkOptions {
  ModelConfig config = BenchModelConfig();
  std::vector<int> prefill_tokens = {512, 2048};
  std::vector<int> decode_batches = {1, 8, 32};
  std::vector<int> decode_contexts = {2048, 8192};
  std::vector<std::string> decode_modes = {"fp16", "kivi2"};
  // Every workload runs once per weights mode, in this order.
  std::vector<WeightsMode> weights = {WeightsMode::kFp32};
  int decode_steps = 8;  // timed steps per run
  int runs = 3;          // the median run is reported
  uint64_t seed = 1;
};

struct BenchResult {
  std::string workload;        // "prefill" or "decode"
  std::string kv;              // cache mode
  std::string weights;         // weights mode (WeightsModeName)
  std::string weights_kernel;  // the matrix products' variant (WeightsKernelName)
  double weight_bytes = 0;     // the packed matrices' bytes
  int batch = 1;
  int context = 0;                 // prompt length (prefill) or cached tokens (decode)
  double tokens_per_s = 0;         // median over runs
  double seconds = 0;              // median run's wall time
  double ratio_vs_fp16 = 0;        // decode: tokens_per_s / the fp16 row's; else 0
  double cache_bytes_per_seq = 0;  // decode: KV bytes one sequence holds
  // tokens_per_s / the same row's with fp32 weights (0 when fp32 weights
  // did not run first).
  double ratio_vs_fp32_weights = 0;
};

// Runs every workload; `progress` (optional) gets a line per finished row.
absl::StatusOr<std::vector<BenchResult>> RunModelBenchmark(
    const ModelBenchmarkOptions& options,
    const std::function<void(const BenchResult&)>& progress = nullptr);

}  // namespace kvq::model

#endif  // KVQ_MODEL_MODEL_BENCHMARK_H_
