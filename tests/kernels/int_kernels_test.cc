// The integer attention variants (kernels/cpu/cpu_kernels.h, "int_*"):
// - every SIMD build gives outputs bit-identical to int_portable, the
//   specification of the integer algorithm, on every shape the block format
//   allows (bits 2/4/8, head_dim 4..128 including the test model's 8, B not a
//   multiple of 8, groups of 1..head_dim channels, GQA 1..8, 1-3 threads,
//   batches mixing quantized and fp16-only caches). A variant this CPU cannot
//   run is skipped with a message naming it;
// - int_portable is within the integer path's error bound of the fp32
//   reference (kernels/cpu/README.md, "Integer attention: error bound").
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/block_format.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/kernel_set.h"
#include "kernels/reference.h"
#include "tests/kernels/test_util.h"

namespace kvq::kernels {
namespace {

using testing::BuildCache;
using testing::Params;
using testing::RandomKv;
using testing::TestCache;

struct IntVariant {
  const char* name;
  const char* needs;
  bool (*supported)();
  const KernelSet& (*kernels)();
};

const IntVariant kSimdVariants[] = {
    {"int_avx2", "AVX2, FMA, F16C", &cpu::Avx2Supported, &cpu::IntAvx2Kernels},
    {"int_avxvnni", "AVX-VNNI, AVX2, FMA, F16C", &cpu::AvxVnniSupported,
     &cpu::IntAvxVnniKernels},
    {"int_avx512vnni", "AVX-512 F/BW/VL/DQ/VNNI, AVX2, FMA, F16C", &cpu::Avx512Supported,
     &cpu::IntAvx512VnniKernels},
};

constexpr double kIntTolerance = 3e-3;  // measured: 1e-3 (kernels/cpu/README.md)

struct Shape {
  int bits, B, G, head_dim, gqa;
};

// Shapes: the common ones (SIMD loops) and the ragged ones the block format
// also allows (scalar integer loops inside the same variant).
std::vector<Shape> Shapes() {
  std::vector<Shape> s;
  for (int bits : {2, 4, 8}) {
    for (int gqa : {1, 4, 8}) {
      s.push_back({bits, 32, 32, 128, gqa});
      s.push_back({bits, 32, 32, 64, gqa});
    }
    s.push_back({bits, 32, 8, 8, 4});  // the test model: head_dim 8
    s.push_back({bits, 16, 16, 64, 2});
    // 4 groups (the SIMD builds' fp32 fast path, int_block_fast_impl.inc:
    // compile-time D 64, and run-time shapes: 64 and 48 tokens, D 64 and
    // 256, 3 heads per KV head).
    s.push_back({bits, 32, 16, 64, 4});
    s.push_back({bits, 64, 16, 64, 1});
    s.push_back({bits, 48, 64, 256, 3});
    s.push_back({bits, 64, 64, 128, 2});
    // 2 and 1 groups (the fast path too: compile-time D 64 and 128 with
    // 32 tokens; 2 groups at D 64 are also the {32, 32, 64} shapes above),
    // run-time shapes with 16 and 48 tokens.
    s.push_back({bits, 32, 64, 128, 4});
    s.push_back({bits, 32, 64, 64, 4});
    s.push_back({bits, 32, 128, 128, 2});
    s.push_back({bits, 16, 32, 64, 3});
    s.push_back({bits, 48, 256, 256, 2});
    s.push_back({bits, 32, 16, 128, 4});  // 8 groups
    s.push_back({bits, 32, 2, 16, 3});    // groups of 2 channels
    s.push_back({bits, 40, 4, 32, 2});    // B not a power of two
    s.push_back({bits, 8, 4, 4, 1});      // the smallest head
  }
  s.push_back({2, 32, 32, 128, 17});  // the fast path's reductions: > 16 heads
  s.push_back({2, 32, 32, 64, 17});   // the same with 2 groups
  s.push_back({4, 32, 64, 64, 17});   // and 1 group
  s.push_back({4, 6, 6, 6, 2});       // 4 bits: B, D even only
  s.push_back({8, 5, 3, 12, 2});      // 8 bits: any B, D
  s.push_back({8, 33, 1, 7, 1});
  return s;
}

struct Workload {
  std::vector<TestCache> caches;
  std::vector<std::vector<float>> q;
  AttentionParams p;
  int n_heads = 0;
};

// Sequences of one shape: quantized only, mixed with an fp16 tail, partial
// last block, fp16 only, one token.
Workload MakeRun(const Shape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  Workload run;
  const int n_kv = 2;
  run.n_heads = n_kv * s.gqa;
  const BlockEncoding enc = BlockEncoding::Quantized(s.bits, s.B, s.G);
  const std::vector<std::pair<int, int>> contexts = {
      {2 * s.B, 2}, {5 * s.B + 3, 3}, {s.B + 1, 1}, {s.B / 2 + 1, 0}, {1, 0}};
  for (const auto& [n, nq] : contexts) {
    run.caches.push_back(BuildCache(rng, enc, n_kv, s.head_dim, n, nq));
    run.q.push_back(RandomKv(rng, run.n_heads, s.head_dim, false));
  }
  run.p = Params(enc, run.n_heads, n_kv, s.head_dim);
  return run;
}

std::vector<std::vector<float>> Attend(const KernelSet& k, Workload& run, int threads) {
  std::vector<std::vector<float>> out;
  std::vector<AttentionTask> batch;
  for (size_t i = 0; i < run.caches.size(); ++i) {
    out.emplace_back(static_cast<size_t>(run.n_heads) * run.p.head_dim, NAN);
  }
  for (size_t i = 0; i < run.caches.size(); ++i) {
    batch.push_back({run.q[i].data(), &run.caches[i].cache, out[i].data()});
  }
  AttentionParams p = run.p;
  p.n_threads = threads;
  const absl::Status st = k.decode_attention(p, batch);
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

std::string Describe(const Shape& s) {
  return "bits " + std::to_string(s.bits) + " B " + std::to_string(s.B) + " G " +
         std::to_string(s.G) + " head_dim " + std::to_string(s.head_dim) + " gqa " +
         std::to_string(s.gqa);
}

class IntSimdTest : public ::testing::TestWithParam<IntVariant> {};

TEST_P(IntSimdTest, BitIdenticalToPortable) {
  const IntVariant& v = GetParam();
  if (!v.supported()) {
    std::fprintf(stderr,
                 "*** SKIPPED %s: this CPU lacks %s; its bit-exactness against "
                 "int_portable is NOT tested here ***\n",
                 v.name, v.needs);
    GTEST_SKIP() << v.name << " needs " << v.needs << ", which this CPU lacks";
  }
  uint32_t seed = 1;
  for (const Shape& s : Shapes()) {
    SCOPED_TRACE(Describe(s));
    Workload run = MakeRun(s, seed++);
    const auto want = Attend(cpu::IntPortableKernels(), run, 1);
    for (int threads : {1, 3}) {
      const auto got = Attend(v.kernels(), run, threads);
      for (size_t i = 0; i < want.size(); ++i) {
        // fp16-only caches go through the fp32 variants (all_variants_test).
        if (run.caches[i].cache.quantized.empty()) continue;
        ASSERT_EQ(
            0, std::memcmp(want[i].data(), got[i].data(), want[i].size() * sizeof(float)))
            << v.name << " sequence " << i << " threads " << threads;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Simd, IntSimdTest, ::testing::ValuesIn(kSimdVariants),
                         [](const auto& info) { return std::string(info.param.name); });

// The integer path's error against the fp32 reference, per head, as a
// fraction of max_d |reference[h][d]| (kernels/cpu/README.md derives the
// bound): kIntTolerance for every shape.
TEST(IntPortableTest, WithinBoundOfReference) {
  double worst[9] = {}, worst_fp32[9] = {};
  uint32_t seed = 100;
  for (const Shape& s : Shapes()) {
    SCOPED_TRACE(Describe(s));
    Workload run = MakeRun(s, seed++);
    const auto want = Attend(reference::Kernels(), run, 1);
    const auto got = Attend(cpu::IntPortableKernels(), run, 1);
    const auto fp32 =
        Attend(cpu::Avx2Supported() ? cpu::Avx2Kernels() : reference::Kernels(), run, 1);
    for (size_t i = 0; i < want.size(); ++i) {
      for (int h = 0; h < run.n_heads; ++h) {
        const float* w = &want[i][static_cast<size_t>(h) * s.head_dim];
        const float* g = &got[i][static_cast<size_t>(h) * s.head_dim];
        const float* f = &fp32[i][static_cast<size_t>(h) * s.head_dim];
        double max_abs = 0, err = 0, err_fp32 = 0;
        for (int d = 0; d < s.head_dim; ++d) {
          max_abs = std::max<double>(max_abs, std::fabs(w[d]));
          err = std::max<double>(err, std::fabs(g[d] - w[d]));
          err_fp32 = std::max<double>(err_fp32, std::fabs(f[d] - w[d]));
        }
        worst_fp32[s.bits] = std::max(worst_fp32[s.bits], err_fp32 / max_abs);
        worst[s.bits] = std::max(worst[s.bits], err / max_abs);
        EXPECT_LE(err, kIntTolerance * max_abs) << "sequence " << i << " head " << h;
      }
    }
  }
  std::printf(
      "int_portable vs reference, worst error / max|ref| per head: 2 bits %.3g, "
      "4 bits %.3g, 8 bits %.3g\n",
      worst[2], worst[4], worst[8]);
  std::printf(
      "fp32 avx2 variant vs reference, same data: 2 bits %.3g, 4 bits %.3g, "
      "8 bits %.3g\n",
      worst_fp32[2], worst_fp32[4], worst_fp32[8]);
}

}  // namespace
}  // namespace kvq::kernels
