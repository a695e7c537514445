#include "model/model_benchmark.h"

#include "gtest/gtest.h"

namespace kvq::model {
namespace {

// The benchmark's code paths on a tiny shape (no timing is checked).
TEST(ModelBenchmarkTest, RunsEveryWorkload) {
  ModelBenchmarkOptions o;
  o.config = ModelConfig{.dim = 64,
                         .hidden_dim = 96,
                         .n_layers = 2,
                         .n_heads = 4,
                         .n_kv_heads = 2,
                         .vocab_size = 128,
                         .seq_len = 512};
  o.prefill_tokens = {16};
  o.decode_batches = {1, 3};
  o.decode_contexts = {200};
  o.decode_steps = 2;
  o.runs = 1;
  absl::StatusOr<std::vector<BenchResult>> rows = RunModelBenchmark(o);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 1u + 2 * 2);
  EXPECT_EQ((*rows)[0].workload, "prefill");
  for (const BenchResult& r : *rows) EXPECT_GT(r.tokens_per_s, 0) << r.kv;
  EXPECT_EQ((*rows)[1].kv, "fp16");
  EXPECT_DOUBLE_EQ((*rows)[1].ratio_vs_fp16, 1.0);
  EXPECT_EQ((*rows)[2].kv, "kivi:bits=2,block=32,group=16,residual=128");
  EXPECT_LT((*rows)[2].cache_bytes_per_seq, (*rows)[1].cache_bytes_per_seq);
  EXPECT_EQ((*rows)[1].weights, "fp32");
}

TEST(ModelBenchmarkTest, RowsPerWeightsMode) {
  ModelBenchmarkOptions o;
  o.config = ModelConfig{.dim = 64,
                         .hidden_dim = 96,
                         .n_layers = 2,
                         .n_heads = 4,
                         .n_kv_heads = 2,
                         .vocab_size = 128,
                         .seq_len = 512};
  o.prefill_tokens = {};
  o.decode_batches = {2};
  o.decode_contexts = {40};
  o.decode_modes = {"fp16"};
  o.decode_steps = 1;
  o.runs = 1;
  o.weights = {WeightsMode::kFp32, WeightsMode::kBf16, WeightsMode::kInt8};
  absl::StatusOr<std::vector<BenchResult>> rows = RunModelBenchmark(o);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].weights, "fp32");
  EXPECT_EQ((*rows)[1].weights, "bf16");
  EXPECT_EQ((*rows)[2].weights, "int8");
  EXPECT_DOUBLE_EQ((*rows)[0].ratio_vs_fp32_weights, 1.0);
  EXPECT_GT((*rows)[2].ratio_vs_fp32_weights, 0);
  EXPECT_DOUBLE_EQ((*rows)[1].weight_bytes * 2, (*rows)[0].weight_bytes);
  EXPECT_LT((*rows)[2].weight_bytes, (*rows)[0].weight_bytes / 3);
  EXPECT_FALSE((*rows)[2].weights_kernel.empty());
}

}  // namespace
}  // namespace kvq::model
