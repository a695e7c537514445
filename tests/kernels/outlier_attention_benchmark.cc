// Cache-resident microbenchmark of decode attention over 2-bit blocks with
// and without format 2's 2% outliers (the `kivi2+outliers0.02` row of `kvq
// bench kernels`: one sequence, 32 query / 8 KV heads, head_dim 128, B 32,
// G 32, 82 key and 82 value outliers per head section, 1024 tokens), per
// fp32 variant: for iterating on the outliers' compute cost without the
// memory noise of the full benchmark. Compare BM_Attention/<variant>/kivi2
// with .../outliers in one run.
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "kernels/block_format.h"
#include "kernels/kernel_set.h"
#include "kernels/kernels.h"
#include "tests/kernels/test_util.h"

namespace kvq::kernels {
namespace {

void BM_Attention(benchmark::State& state, const KernelSet* k, int outliers) {
  std::mt19937 rng(1);
  const BlockEncoding enc =
      BlockEncoding::Mixed(2, 2, 32, 32, outliers, outliers, ScaleFormat::kFp16);
  const int n_kv = 8, n_heads = 32, D = 128, n = 1024;
  testing::TestCache c = testing::BuildCache(rng, enc, n_kv, D, n, n / 32);
  std::vector<float> q = testing::RandomKv(rng, n_heads, D, false);
  std::vector<float> out(static_cast<size_t>(n_heads) * D);
  AttentionParams p = testing::Params(enc, n_heads, n_kv, D);
  const AttentionTask task{q.data(), &c.cache, out.data()};
  for (auto _ : state) {
    benchmark::DoNotOptimize(k->decode_attention(p, {&task, 1}));
  }
  state.SetItemsProcessed(state.iterations() * n / 32 * n_kv);  // block-heads
}

}  // namespace

int Register() {
  for (const KernelSet* k : Available()) {
    if (k->name != "avx2" && k->name != "avx512") continue;
    for (const auto& [name, outliers] : std::vector<std::pair<std::string, int>>{
             {"kivi2", 0}, {"outliers1", 1}, {"outliers", 82}}) {
      benchmark::RegisterBenchmark(("BM_Attention/" + k->name + "/" + name).c_str(),
                                   &BM_Attention, k, outliers);
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
