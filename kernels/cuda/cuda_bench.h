// `cuda_bench`: decode-attention speed of the CUDA kernels on the issue-3
// shape (head_dim 128, 32 query heads, 8 KV heads, B 32, G 32, R 128, one
// query token per sequence), fp16 cache vs 2-bit (kivi2) cache, against the
// GPU's measured read bandwidth; plus quantize throughput. Working sets are
// >= 1 GiB (several sequences' caches visited in turn), so the figures are
// HBM figures, not L2 ones.
//
//   kvq::kernels::CudaBenchOptions options;
//   absl::StatusOr<std::vector<kvq::kernels::CudaBenchRow>> rows =
//       kvq::kernels::RunCudaBench(options);
#ifndef KVQ_KERNELS_CUDA_CUDA_BENCH_H_
#define KVQ_KERNELS_CUDA_CUDA_BENCH_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvq::kernels {

struct CudaBenchOptions {
  std::vector<int> contexts = {1024, 4096, 16384, 65536};
  int head_dim = 128;
  int n_heads = 32;
  int n_kv_heads = 8;
  int block_tokens = 32;
  int group = 32;
  int residual = 128;  // R: newest tokens kept fp16 in the kivi cache
  int bits = 2;
  int reps = 30;                         // timed calls per row (median reported)
  size_t working_set = size_t{1} << 30;  // bytes of caches visited in turn
};

struct CudaBenchRow {
  std::string op;  // "attention" or "quantize"
  int ctx = 0;
  std::string kv;  // "fp16" or "kivi<bits>"
  double us_per_call = 0;
  double bytes_read = 0;       // cache bytes one call reads
  double bw_fraction = 0;      // bytes_read / us over the measured read bandwidth
  double speedup_vs_fp16 = 0;  // kivi rows: fp16 time / this time
  double gb_per_s = 0;
};

// Measures the read bandwidth (a read kernel over the working set), then each
// row. FAILED_PRECONDITION without a GPU.
absl::StatusOr<std::vector<CudaBenchRow>> RunCudaBench(const CudaBenchOptions& options,
                                                       double* read_gb_per_s);

// The rows as a text table or as JSON (one object with the device name, the
// read bandwidth and the rows).
std::string FormatCudaBench(const std::vector<CudaBenchRow>& rows, double read_gb_per_s,
                            bool json);

}  // namespace kvq::kernels

#endif  // KVQ_KERNELS_CUDA_CUDA_BENCH_H_
