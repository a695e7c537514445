// PackedMatMul vs the unpacked ops::MatMul (one weight row at a time up to 8
// rows, OpenBLAS sgemm above), Bf16MatMul (--weights bf16) and Int8MatMul
// (--weights int8), each with every kernel this CPU runs, on the `kvq bench
// model` shapes. Each shape
// cycles through copies of its matrix totalling >= 256 MiB, so the weights
// come from memory as in a decode step (490 MB per step), not from L3.
//
//   bazel build //tests/model:packed_matmul_benchmark
//   OMP_WAIT_POLICY=passive bazel-bin/tests/model/packed_matmul_benchmark
//
// Counters: GFLOPs (2 n in out per product) and weight_GBps (in out bytes
// per product, read once: 4 per weight, 2 for bf16, 1 for int8).
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "model/internal/bf16_matmul.h"
#include "model/internal/int8_matmul.h"
#include "model/internal/ops.h"
#include "model/internal/packed_matmul.h"

namespace kvq::model_internal {
namespace {

struct Shape {
  const char* name;
  int out, in;
};
// dim 1024, hidden 2816, vocab 32000.
constexpr Shape kShapes[] = {{"w1_2816x1024", 2816, 1024},
                             {"w2_1024x2816", 1024, 2816},
                             {"wq_1024x1024", 1024, 1024},
                             {"classifier_32000x1024", 32000, 1024}};

struct Weights {
  std::vector<std::vector<float>> raw;
  std::vector<PackedMatrix> packed;
  std::vector<std::unique_ptr<Int8Matrix>> int8;
  std::vector<std::unique_ptr<Bf16Matrix>> bf16;
};

const Weights& WeightsOf(int shape) {
  static std::unique_ptr<Weights> cache[std::size(kShapes)];
  if (cache[shape] == nullptr) {
    const Shape& s = kShapes[shape];
    const size_t floats = size_t(s.out) * s.in;
    const size_t copies = std::max<size_t>(2, (size_t(256) << 20) / (floats * 4) + 1);
    auto w = std::make_unique<Weights>();
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 0.03f);
    for (size_t c = 0; c < copies; ++c) {
      std::vector<float> m(floats);
      for (float& f : m) f = normal(rng);
      w->packed.emplace_back(m.data(), s.out, s.in);
      w->int8.push_back(std::make_unique<Int8Matrix>(m.data(), s.out, s.in));
      w->bf16.push_back(std::make_unique<Bf16Matrix>(m.data(), s.out, s.in));
      w->raw.push_back(std::move(m));
    }
    cache[shape] = std::move(w);
  }
  return *cache[shape];
}

enum class Path { kUnpacked, kPacked, kInt8, kBf16 };

void Run(benchmark::State& state, int shape, int n, Path path,
         Int8Kernel kernel = Int8Kernel::kAuto, Bf16Kernel bf16 = Bf16Kernel::kAuto,
         MatMulKernel fp32 = MatMulKernel::kAuto) {
  InitThreads();
  const Shape& s = kShapes[shape];
  const Weights& w = WeightsOf(shape);
  std::vector<float> x(size_t(n) * s.in, 0.5f), y(size_t(n) * s.out);
  size_t c = 0;
  for (auto _ : state) {
    switch (path) {
      case Path::kUnpacked:
        MatMul(x.data(), n, s.in, w.raw[c].data(), s.out, y.data());
        break;
      case Path::kPacked:
        PackedMatMul(x.data(), n, w.packed[c], y.data(), fp32);
        break;
      case Path::kInt8:
        Int8MatMul(x.data(), n, *w.int8[c], y.data(), kernel);
        break;
      case Path::kBf16:
        Bf16MatMul(x.data(), n, *w.bf16[c], y.data(), bf16);
        break;
    }
    benchmark::DoNotOptimize(y.data());
    c = (c + 1) % w.raw.size();
  }
  const double products = static_cast<double>(state.iterations());
  state.counters["GFLOPs"] =
      benchmark::Counter(2e-9 * n * s.in * s.out * products, benchmark::Counter::kIsRate);
  state.counters["weight_GBps"] = benchmark::Counter((path == Path::kInt8   ? 1e-9
                                                      : path == Path::kBf16 ? 2e-9
                                                                            : 4e-9) *
                                                         s.in * s.out * products,
                                                     benchmark::Counter::kIsRate);
}

}  // namespace
}  // namespace kvq::model_internal

// The old and new path of each (shape, n) are registered next to each other:
// they run back to back, under the same machine load.
int main(int argc, char** argv) {
  using kvq::model_internal::kShapes;
  using kvq::model_internal::Run;
  for (int shape = 0; shape < static_cast<int>(std::size(kShapes)); ++shape) {
    for (int n : {1, 8, 32, 64, 512}) {
      using kvq::model_internal::Bf16Kernel;
      using kvq::model_internal::Int8Kernel;
      using kvq::model_internal::MatMulKernel;
      using kvq::model_internal::Path;
      const std::string suffix =
          std::string(kShapes[shape].name) + "/n:" + std::to_string(n);
      benchmark::RegisterBenchmark(
          ("BM_UnpackedMatMul/" + suffix).c_str(),
          [=](benchmark::State& state) { Run(state, shape, n, Path::kUnpacked); })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
      for (MatMulKernel k : {MatMulKernel::kAvx512Fma, MatMulKernel::kAvx2Fma}) {
        if (!kvq::model_internal::MatMulKernelSupported(k)) continue;
        const std::string name = std::string("BM_PackedMatMul/") +
                                 kvq::model_internal::MatMulKernelName(k) + "/" + suffix;
        benchmark::RegisterBenchmark(name.c_str(),
                                     [=](benchmark::State& state) {
                                       Run(state, shape, n, Path::kPacked,
                                           Int8Kernel::kAuto, Bf16Kernel::kAuto, k);
                                     })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
      for (Bf16Kernel k :
           {Bf16Kernel::kAvx512Bf16, Bf16Kernel::kAvx512Fma, Bf16Kernel::kAvx2Fma}) {
        if (!kvq::model_internal::Bf16KernelSupported(k)) continue;
        const std::string name = std::string("BM_Bf16MatMul/") +
                                 kvq::model_internal::Bf16KernelName(k) + "/" + suffix;
        benchmark::RegisterBenchmark(name.c_str(),
                                     [=](benchmark::State& state) {
                                       Run(state, shape, n, Path::kBf16,
                                           Int8Kernel::kAuto, k);
                                     })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
      for (Int8Kernel k : {Int8Kernel::kAvx512Vnni, Int8Kernel::kAvxVnni,
                           Int8Kernel::kAvx2, Int8Kernel::kPortable}) {
        if (!kvq::model_internal::Int8KernelSupported(k)) continue;
        const std::string name = std::string("BM_Int8MatMul/") +
                                 kvq::model_internal::Int8KernelName(k) + "/" + suffix;
        benchmark::RegisterBenchmark(
            name.c_str(),
            [=](benchmark::State& state) { Run(state, shape, n, Path::kInt8, k); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
