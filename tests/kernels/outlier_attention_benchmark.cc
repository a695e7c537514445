// Cache-resident microbenchmark of decode attention over 2-bit blocks with
// and without format 2's 2% outliers (the `kivi2+outliers0.02` row of `kvq
// bench kernels`: one sequence, 32 query / 8 KV heads, head_dim 128, B 32,
// G 32, 82 key and 82 value outliers per head section, 1024 tokens), per
// fp32 variant: for iterating on the outliers' compute cost without the
// memory noise of the full benchmark. Compare BM_Attention/<variant>/kivi2
// with .../outliers in one run; .../koutliers has the 82 key outliers alone
// (`koutliers=0.02`, the mode docs/performance.md recommends adding).
#include <string>

#include "benchmark/benchmark.h"
#include "kernels/block_format.h"
#include "kernels/kernel_set.h"
#include "kernels/kernels.h"
#include "tests/kernels/attention_benchmark_util.h"

namespace kvq::kernels {
namespace {

void BM_Attention(benchmark::State& state, const KernelSet* k, int k_outliers,
                  int v_outliers) {
  testing::BenchOneSequence(
      state, *k,
      BlockEncoding::Mixed(2, 2, 32, 32, k_outliers, v_outliers, ScaleFormat::kFp16));
}

struct Row {
  const char* name;
  int k_outliers, v_outliers;
};

}  // namespace

int Register() {
  for (const KernelSet* k : Available()) {
    if (k->name != "avx2" && k->name != "avx512") continue;
    for (const Row& row : {Row{"kivi2", 0, 0}, Row{"outliers1", 1, 1},
                           Row{"outliers", 82, 82}, Row{"koutliers", 82, 0}}) {
      benchmark::RegisterBenchmark(("BM_Attention/" + k->name + "/" + row.name).c_str(),
                                   &BM_Attention, k, row.k_outliers, row.v_outliers);
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
