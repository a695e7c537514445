// How many 512-bit multiply-adds this core issues per second, by the number
// of independent accumulator chains: the ceiling docs/performance.md ("What
// bounds the rest") measures the attention kernels against. A chain is one
// register that each step's instruction both reads and writes, so with
// fewer chains than latency x pipes the rate is latency-bound.
//
//   bazel build -c opt //tests/kernels:issue_rate_benchmark
//   ./bazel-bin/tests/kernels/issue_rate_benchmark
//
// items_per_second is instructions per second (one instruction: 16 fp32
// multiply-adds for a 512-bit vfmadd231ps, 8 for a 256-bit one, 64 u8 x s8
// for vpdpbusd; a BM_Maddubsw256 item is a vpmaddubsw + vpaddw pair, 32).
// Rows for an instruction set the CPU lacks are not registered (stderr says
// so).
#include <immintrin.h>

#include <cstdio>
#include <string>

#include "benchmark/benchmark.h"

namespace kvq::kernels {
namespace {

constexpr int kSteps = 1024;  // instructions per chain per iteration

template <int kChains>
__attribute__((target("avx512f"))) void BM_Fma512(benchmark::State& state) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(0.5f);
  for (auto _ : state) {
    for (int s = 0; s < kSteps; ++s) {
#pragma GCC unroll 16
      for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(a, b, acc[i]);
    }
    for (int i = 0; i < kChains; ++i) benchmark::DoNotOptimize(acc[i]);
  }
  state.SetItemsProcessed(state.iterations() * kSteps * kChains);
}

template <int kChains>
__attribute__((target("avx512f,avx512vnni"))) void BM_Vpdpbusd512(
    benchmark::State& state) {
  __m512i acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_epi32(i);
  const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(2);
  for (auto _ : state) {
    for (int s = 0; s < kSteps; ++s) {
#pragma GCC unroll 16
      for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
    }
    for (int i = 0; i < kChains; ++i) benchmark::DoNotOptimize(acc[i]);
  }
  state.SetItemsProcessed(state.iterations() * kSteps * kChains);
}

template <int kChains>
__attribute__((target("avx2,fma"))) void BM_Fma256(benchmark::State& state) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(1.0f), b = _mm256_set1_ps(0.5f);
  for (auto _ : state) {
    for (int s = 0; s < kSteps; ++s) {
#pragma GCC unroll 16
      for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(a, b, acc[i]);
    }
    for (int i = 0; i < kChains; ++i) benchmark::DoNotOptimize(acc[i]);
  }
  state.SetItemsProcessed(state.iterations() * kSteps * kChains);
}

// AVX2's int8 product without VNNI: vpmaddubsw (u8 x s8 pair sums in int16)
// then vpaddw, the pair the int_avx2 tiles issue per step (a chain's latency
// is both instructions').
template <int kChains>
__attribute__((target("avx2"))) void BM_Maddubsw256(benchmark::State& state) {
  __m256i acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_epi16(static_cast<int16_t>(i));
  const __m256i b = _mm256_set1_epi8(2);
  for (auto _ : state) {
    for (int s = 0; s < kSteps; ++s) {
#pragma GCC unroll 16
      for (int i = 0; i < kChains; ++i) {  // the chain's own bytes as the u8 side
        acc[i] = _mm256_add_epi16(acc[i], _mm256_maddubs_epi16(acc[i], b));
      }
    }
    for (int i = 0; i < kChains; ++i) benchmark::DoNotOptimize(acc[i]);
  }
  state.SetItemsProcessed(state.iterations() * kSteps * kChains);
}

template <template <int> class Row>
void RegisterChains(const std::string& name) {
  benchmark::RegisterBenchmark((name + "/2").c_str(), &Row<2>::Run);
  benchmark::RegisterBenchmark((name + "/4").c_str(), &Row<4>::Run);
  benchmark::RegisterBenchmark((name + "/8").c_str(), &Row<8>::Run);
  benchmark::RegisterBenchmark((name + "/12").c_str(), &Row<12>::Run);
}
template <int kChains>
struct FmaRow {
  static void Run(benchmark::State& s) { BM_Fma512<kChains>(s); }
};
template <int kChains>
struct VnniRow {
  static void Run(benchmark::State& s) { BM_Vpdpbusd512<kChains>(s); }
};
template <int kChains>
struct Fma256Row {
  static void Run(benchmark::State& s) { BM_Fma256<kChains>(s); }
};
template <int kChains>
struct MaddubswRow {
  static void Run(benchmark::State& s) { BM_Maddubsw256<kChains>(s); }
};

}  // namespace

int Register() {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    std::fprintf(stderr, "issue_rate_benchmark: no AVX2 and FMA here, no rows\n");
    return 0;
  }
  RegisterChains<Fma256Row>("BM_Fma256");
  RegisterChains<MaddubswRow>("BM_Maddubsw256");  // items: vpmaddubsw + vpaddw pairs
  if (!__builtin_cpu_supports("avx512f")) {
    std::fprintf(stderr, "issue_rate_benchmark: no AVX-512F here, no 512-bit rows\n");
    return 0;
  }
  RegisterChains<FmaRow>("BM_Fma512");
  if (__builtin_cpu_supports("avx512vnni")) {
    RegisterChains<VnniRow>("BM_Vpdpbusd512");
  } else {
    std::fprintf(stderr,
                 "issue_rate_benchmark: no AVX-512 VNNI here, no vpdpbusd rows\n");
  }
  return 0;
}

}  // namespace kvq::kernels

int main(int argc, char** argv) {
  kvq::kernels::Register();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
