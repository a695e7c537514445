// Smoke test of the `kvq bench kernels` workloads (kernels/bench/): a tiny
// run must produce one row per (context, threads, kv) with consistent
// figures. Nothing here asserts a speed.
#include <string>

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
