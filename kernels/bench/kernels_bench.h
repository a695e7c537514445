// The `kvq bench kernels` workloads (issue 3): decode attention over fp16 and
// 2-bit (kivi2) caches at several context lengths and thread counts, the
// machine's read bandwidth for the same thread counts, and quantize
// throughput. Every attention figure is a memory figure: each measured pass
// visits several sequences' caches in turn, >= 1 GiB in all, so nothing is
// served from the last-level cache; each row is reported as a fraction of the
// bandwidth measured in the same run, and kivi2 against fp16 in the same run.
//
//   kvq::kernels::bench::KernelsBenchOptions options;  // the shape
//   KVQ_ASSIGN_OR_RETURN(KernelsBenchResult r, RunKernelsBench(options, nullptr));
//   for (const AttentionRow& row : r.attention) ...
#ifndef KVQ_KERNELS_BENCH_KERNELS_BENCH_H_
#define KVQ_KERNELS_BENCH_KERNELS_BENCH_H_

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/kernel_set.h"

namespace kvq::kernels::bench {

struct KernelsBenchOptions {
  std::vector<int> contexts = {1024, 4096, 16384, 65536};
  std::vector<int> threads = {1, 2};
  int head_dim = 128;
  int n_heads = 32;
  int n_kv_heads = 8;
  int block_tokens = 32;  // B
  int group = 32;         // G
  int residual = 128;     // R: the newest tokens stay fp16 (design 3.3)
  int bits = 2;
  // Bytes of caches visited per measured pass (and of the read loop).
  size_t working_set_bytes = size_t{1} << 30;
  int reps = 5;  // measured passes; the median is reported
  // Variant to measure; nullptr: kvq::kernels::Best().
  const KernelSet* kernels = nullptr;

  // Small contexts, a 64 MiB working set and 2 reps: seconds, for smoke
  // tests. Its figures are cache figures, not memory figures.
  static KernelsBenchOptions Quick();
};

struct BandwidthRow {
  int threads = 0;
  size_t bytes = 0;   // bytes read per pass
  double gbps = 0.0;  // median over every pass of the run, 1e9 bytes/s
};

struct AttentionRow {
  int ctx = 0;
  int threads = 0;
  std::string kv;              // "fp16", "kivi<bits>" or "kivi<bits>+outliers0.02"
  double us_per_call = 0.0;    // one sequence, all heads, one layer; median
  size_t bytes_read = 0;       // cache bytes one call reads
  double gbps = 0.0;           // bytes_read / us_per_call
  double bw_gbps = 0.0;        // read bandwidth measured alongside (median)
  double bw_fraction = 0.0;    // gbps / bw_gbps
  double speedup_vs_fp16 = 0;  // fp16 us_per_call / this one (quantized rows)
  int sequences = 0;           // distinct caches visited per pass
  // Outlier rows (format 2, 2% of keys and values exact): us_per_call over
  // the same mode's without outliers, measured in the same rounds.
  double slowdown_vs_no_outliers = 0;
  // Of a MedianOfRounds result: each round's figures, in round order (the
  // fields above are their medians); empty for a single run.
  std::vector<double> us_per_call_runs, bw_fraction_runs, speedup_vs_fp16_runs,
      slowdown_vs_no_outliers_runs;
};

struct QuantizeRow {
  int bits = 0;
  double gbps = 0.0;            // fp32 K and V input bytes per second
  double mvalues_per_s = 0.0;   // millions of K and V values per second
  double speedup_vs_reference;  // same work with the scalar reference
};

// What the machine's fp32 FMA rate allows: attention over one block of one
// KV head costs 2 * (n_heads / n_kv_heads) * B * head_dim multiply-adds
// (scores and values), whatever the cache encoding, so at 8 lanes per FMA the
// cache bytes `threads` threads can consume per second are bounded by
// fma_per_s * 8 * head_bytes / that (the kernels do their math in fp32 FMAs).
struct ComputeRow {
  int threads = 0;
  double fma_per_s = 0.0;           // 256-bit fp32 FMAs per second, all threads
  double fp16_ceiling_gbps = 0.0;   // 1e9 cache bytes per second at that rate
  double quant_ceiling_gbps = 0.0;  // same for the quantized encoding
};

struct KernelsBenchResult {
  std::string variant;  // KernelSet name
  std::string cpu;      // /proc/cpuinfo model name
  int rounds = 1;       // whole runs this result is the median of
  KernelsBenchOptions options;
  std::vector<BandwidthRow> bandwidth;
  std::vector<ComputeRow> compute;  // per thread count
  std::vector<AttentionRow> attention;
  std::vector<QuantizeRow> quantize;
};

// Runs every workload of `options`. `progress` (may be null) receives a line
// per finished step. INVALID_ARGUMENT for a shape the kernels reject;
// RESOURCE_EXHAUSTED when the working set cannot be allocated.
absl::StatusOr<KernelsBenchResult> RunKernelsBench(
    const KernelsBenchOptions& options,
    const std::function<void(const std::string&)>& progress);

// The median of several runs of the same options and variant (the machines
// are noisy: a figure of one run can be off by tens of percent): every figure
// is the median of its per-run values, each ratio (bw_fraction,
// speedup_vs_fp16, slowdown_vs_no_outliers) the median of the ratios taken
// within each run, and the attention rows keep each run's figures.
// INVALID_ARGUMENT if `runs` is empty or their rows differ.
absl::StatusOr<KernelsBenchResult> MedianOfRounds(
    const std::vector<KernelsBenchResult>& runs);

// Median rate of independent 256-bit fp32 FMAs of `threads` threads running
// at once, summed (0 without AVX2/FMA), over `reps` runs of about 0.05 s.
double MeasureFmaRate(int threads, int reps);

// Median read bandwidth (1e9 bytes/s) of `threads` threads streaming through
// a `bytes` buffer (each thread its own contiguous slice), over `reps` passes.
absl::StatusOr<double> MeasureReadBandwidth(int threads, size_t bytes, int reps);

}  // namespace kvq::kernels::bench

#endif  // KVQ_KERNELS_BENCH_KERNELS_BENCH_H_
