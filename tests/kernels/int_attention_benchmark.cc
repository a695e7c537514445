// Cache-resident microbenchmark of decode attention over 2-bit blocks (one
// sequence, 32 query / 8 KV heads, head_dim 128, B 32, G 32, 1024 tokens of
// quantized blocks: 1.5 MiB of cache), per variant: for iterating on the
// integer kernels' compute cost without the memory noise of
// `kvq bench kernels`. BM_ModelShape: the serving benchmark's synthetic
// model's layer (16 query / 4 KV heads, head_dim 64; and 128, Llama's), 8 sequences of
// 2048 tokens, the last 128 of each in fp16 blocks (kivi2's residual): what a `kvq bench
// model` / `kvq bench serve` decode step calls per layer.
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "kernels/kernel_set.h"
#include "kernels/kernels.h"
#include "tests/kernels/attention_benchmark_util.h"
#include "tests/kernels/test_util.h"

namespace kvq::kernels {
namespace {

void BM_Kivi2Attention(benchmark::State& state, const KernelSet* k) {
  testing::BenchOneSequence(state, *k, BlockEncoding::Quantized(2, 32, 32));
}

void BM_ModelShape(benchmark::State& state, const KernelSet* k, int D) {
  std::mt19937 rng(1);
  const BlockEncoding enc = BlockEncoding::Quantized(2, 32, 32);
  const int n_kv = 4, n_heads = 16, n = 2048, n_seqs = 8;
  std::vector<testing::TestCache> caches;
  std::vector<std::vector<float>> q, out;
  for (int s = 0; s < n_seqs; ++s) {
    caches.push_back(testing::BuildCache(rng, enc, n_kv, D, n, (n - 128) / 32));
    q.push_back(testing::RandomKv(rng, n_heads, D, false));
    out.emplace_back(static_cast<size_t>(n_heads) * D);
  }
  std::vector<AttentionTask> batch;
  for (int s = 0; s < n_seqs; ++s)
    batch.push_back({q[s].data(), &caches[s].cache, out[s].data()});
  AttentionParams p = testing::Params(enc, n_heads, n_kv, D);
  for (auto _ : state) {
    benchmark::DoNotOptimize(k->decode_attention(p, batch));
  }
  state.SetItemsProcessed(state.iterations() * n_seqs * n / 32 * n_kv);  // block-heads
}

}  // namespace

int Register() {
  for (const KernelSet* k : Available()) {
    if (k->name == "reference" || k->name == "int_portable") continue;
    benchmark::RegisterBenchmark(("BM_Kivi2Attention/" + k->name).c_str(),
                                 &BM_Kivi2Attention, k);
    for (int D : {64, 128}) {
      benchmark::RegisterBenchmark(
          ("BM_ModelShape/D" + std::to_string(D) + "/" + k->name).c_str(), &BM_ModelShape,
          k, D);
    }
  }
  return 0;
}

}  // namespace kvq::kernels

int main(int argc, char** argv) {
  kvq::kernels::Register();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
