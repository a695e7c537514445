// Smoke test of the `kvq bench kernels` workloads (kernels/bench/): a tiny
// run must produce one row per (context, threads, kv) with consistent
// figures. Nothing here asserts a speed.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "kernels/bench/kernels_bench.h"
#include "kernels/kernels.h"

namespace kvq::kernels::bench {
namespace {

TEST(KernelsBenchTest, QuickRunProducesConsistentRows) {
  KernelsBenchOptions o = KernelsBenchOptions::Quick();
  o.contexts = {150, 700};  // partial blocks; 150 < R + B quantizes nothing
  o.working_set_bytes = size_t{8} << 20;
  o.reps = 1;
  const absl::StatusOr<KernelsBenchResult> r = RunKernelsBench(o, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->variant, Best().name);
  ASSERT_EQ(r->bandwidth.size(), 2u);
  for (const BandwidthRow& b : r->bandwidth) EXPECT_GT(b.gbps, 0.0);
  // 2 contexts x 2 thread counts x 3 kv (fp16, kivi2, kivi2 with 2% outliers).
  ASSERT_EQ(r->attention.size(), 12u);
  for (size_t i = 0; i < r->attention.size(); i += 3) {
    const AttentionRow& f = r->attention[i];
    const AttentionRow& q = r->attention[i + 1];
    const AttentionRow& x = r->attention[i + 2];
    EXPECT_EQ(f.kv, "fp16");
    EXPECT_EQ(q.kv, "kivi2");
    EXPECT_EQ(x.kv, "kivi2+outliers0.02");
    EXPECT_EQ(f.ctx, q.ctx);
    EXPECT_EQ(f.threads, q.threads);
    EXPECT_EQ(x.ctx, q.ctx);
    EXPECT_EQ(x.threads, q.threads);
    EXPECT_GT(f.us_per_call, 0.0);
    EXPECT_GT(q.us_per_call, 0.0);
    EXPECT_GT(x.us_per_call, 0.0);
    EXPECT_DOUBLE_EQ(q.speedup_vs_fp16, f.us_per_call / q.us_per_call);
    EXPECT_DOUBLE_EQ(x.slowdown_vs_no_outliers, x.us_per_call / q.us_per_call);
    EXPECT_EQ(q.slowdown_vs_no_outliers, 0.0);
    EXPECT_GE(f.sequences * f.bytes_read, o.working_set_bytes);
    // fp16: 2 bytes per K and V value of every (padded) token.
    EXPECT_EQ(f.bytes_read,
              static_cast<size_t>((f.ctx + 31) / 32 * 32) * 8 * 128 * 2 * 2);
    EXPECT_LE(q.bytes_read, f.bytes_read);
    EXPECT_GE(x.bytes_read, q.bytes_read);  // outliers cost bytes too
  }
  // ctx 150 < R + B: nothing is quantized yet, the caches are the same size;
  // at 700, (700 - 128) / 32 = 17 blocks are quantized, each head section
  // 82 + 82 outliers (fp16 + u16 position: 4 bytes each) larger with outliers.
  EXPECT_EQ(r->attention[0].bytes_read, r->attention[1].bytes_read);
  EXPECT_EQ(r->attention[1].bytes_read, r->attention[2].bytes_read);
  EXPECT_LT(r->attention[4].bytes_read, r->attention[3].bytes_read);
  EXPECT_EQ(r->attention[5].bytes_read,
            r->attention[4].bytes_read + size_t{17} * 8 * (82 + 82) * 4);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    ASSERT_EQ(r->compute.size(), 2u);
    for (const ComputeRow& c : r->compute) {
      EXPECT_GT(c.fma_per_s, 0.0);
      // The same multiply-adds over fewer bytes: a lower byte ceiling.
      EXPECT_LT(c.quant_ceiling_gbps, c.fp16_ceiling_gbps);
    }
  }
  ASSERT_EQ(r->quantize.size(), 1u);
  EXPECT_GT(r->quantize[0].gbps, 0.0);
}

// One run's result with a single context and thread count: the fp16, kivi2
// and outlier rows at the given times (us), bandwidth `bw` GB/s.
KernelsBenchResult FakeRun(double fp16_us, double kivi_us, double outlier_us, double bw) {
  KernelsBenchResult r;
  r.variant = "avx2";
  r.bandwidth.push_back({1, 1 << 20, bw});
  r.compute.push_back({1, 1e9, 10.0, 2.0});
  const auto row = [bw](const char* kv, double us) {
    AttentionRow a;
    a.ctx = 4096;
    a.threads = 1;
    a.kv = kv;
    a.us_per_call = us;
    a.bytes_read = 1000;
    a.gbps = 1000 / us / 1e3;
    a.bw_gbps = bw;
    a.bw_fraction = a.gbps / bw;
    return a;
  };
  r.attention = {row("fp16", fp16_us), row("kivi2", kivi_us),
                 row("kivi2+outliers0.02", outlier_us)};
  r.attention[1].speedup_vs_fp16 = fp16_us / kivi_us;
  r.attention[2].speedup_vs_fp16 = fp16_us / outlier_us;
  r.attention[2].slowdown_vs_no_outliers = outlier_us / kivi_us;
  r.quantize.push_back({2, bw, 1.0, 3.0});
  return r;
}

TEST(KernelsBenchTest, MedianOfRoundsTakesEachFiguresAndRatiosMedian) {
  // The ratios' medians are of each round's ratios: round 3 is slow on every
  // row, so its ratios are ordinary while its times are the largest.
  const std::vector<KernelsBenchResult> runs = {
      FakeRun(100, 50, 70, 20), FakeRun(120, 40, 60, 30), FakeRun(400, 300, 330, 10)};
  const absl::StatusOr<KernelsBenchResult> m = MedianOfRounds(runs);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rounds, 3);
  EXPECT_EQ(m->variant, "avx2");
  EXPECT_DOUBLE_EQ(m->bandwidth[0].gbps, 20);
  ASSERT_EQ(m->attention.size(), 3u);
  const AttentionRow &f = m->attention[0], &q = m->attention[1], &x = m->attention[2];
  EXPECT_DOUBLE_EQ(f.us_per_call, 120);
  EXPECT_DOUBLE_EQ(q.us_per_call, 50);
  EXPECT_DOUBLE_EQ(q.speedup_vs_fp16, 2.0);          // of 2.0, 3.0, 1.33
  EXPECT_DOUBLE_EQ(x.slowdown_vs_no_outliers, 1.4);  // of 1.4, 1.5, 1.1
  EXPECT_EQ(x.slowdown_vs_no_outliers_runs, (std::vector<double>{1.4, 1.5, 1.1}));
  EXPECT_EQ(q.us_per_call_runs, (std::vector<double>{50, 40, 300}));
  EXPECT_DOUBLE_EQ(m->quantize[0].gbps, 20);
  // One run: itself.
  const absl::StatusOr<KernelsBenchResult> one = MedianOfRounds({runs[1]});
  ASSERT_TRUE(one.ok());
  EXPECT_DOUBLE_EQ(one->attention[2].slowdown_vs_no_outliers, 1.5);
}

TEST(KernelsBenchTest, MedianOfRoundsRejectsMismatchedRuns) {
  EXPECT_EQ(MedianOfRounds({}).status().code(), absl::StatusCode::kInvalidArgument);
  KernelsBenchResult other = FakeRun(1, 1, 1, 1);
  other.attention[1].ctx = 1024;
  EXPECT_EQ(MedianOfRounds({FakeRun(1, 1, 1, 1), other}).status().code(),
            absl::StatusCode::kInvalidArgument);
  other = FakeRun(1, 1, 1, 1);
  other.variant = "avx512";
  EXPECT_EQ(MedianOfRounds({FakeRun(1, 1, 1, 1), other}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(KernelsBenchTest, RejectsBadOptions) {
  KernelsBenchOptions o = KernelsBenchOptions::Quick();
  o.contexts = {0};
  EXPECT_EQ(RunKernelsBench(o, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MeasureReadBandwidth(0, 1 << 20, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvq::kernels::bench
