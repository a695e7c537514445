// The microbenchmarks' common workload: decode attention over one
// cache-resident sequence of quantized blocks (32 query / 8 KV heads,
// head_dim 128, 1024 tokens), timed per call; items are block-heads.
#ifndef KVQ_TESTS_KERNELS_ATTENTION_BENCHMARK_UTIL_H_
#define KVQ_TESTS_KERNELS_ATTENTION_BENCHMARK_UTIL_H_

#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "kernels/block_format.h"
#include "kernels/kernel_set.h"
#include "tests/kernels/test_util.h"

namespace kvq::kernels::testing {

inline void BenchOneSequence(benchmark::State& state, const KernelSet& k,
                             const BlockEncoding& enc) {
  std::mt19937 rng(1);
  const int n_kv = 8, n_heads = 32, D = 128, n = 1024;
  TestCache c = BuildCache(rng, enc, n_kv, D, n, n / enc.block_tokens);
  std::vector<float> q = RandomKv(rng, n_heads, D, false);
  std::vector<float> out(static_cast<size_t>(n_heads) * D);
  AttentionParams p = Params(enc, n_heads, n_kv, D);
  const AttentionTask task{q.data(), &c.cache, out.data()};
  for (auto _ : state) {
    benchmark::DoNotOptimize(k.decode_attention(p, {&task, 1}));
  }
  state.SetItemsProcessed(state.iterations() * n / enc.block_tokens * n_kv);
}

}  // namespace kvq::kernels::testing

#endif  // KVQ_TESTS_KERNELS_ATTENTION_BENCHMARK_UTIL_H_
