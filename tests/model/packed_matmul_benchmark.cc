// PackedMatMul vs the unpacked ops::MatMul (one weight row at a time up to 8
// rows, OpenBLAS sgemm above) on the `kvq bench model` shapes. Each shape
// cycles through copies of its matrix totalling >= 256 MiB, so the weights
// come from memory as in a decode step (490 MB per step), not from L3.
//
//   bazel build //tests/model:packed_matmul_benchmark
//   OMP_WAIT_POLICY=passive bazel-bin/tests/model/packed_matmul_benchmark
//
// Counters: GFLOPs (2 n in out per product) and weight_GBps (in out 4 bytes
// per product, read once).
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
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
      w->raw.push_back(std::move(m));
    }
    cache[shape] = std::move(w);
  }
  return *cache[shape];
}

void Run(benchmark::State& state, int shape, int n, bool packed) {
  InitThreads();
  const Shape& s = kShapes[shape];
  const Weights& w = WeightsOf(shape);
  std::vector<float> x(size_t(n) * s.in, 0.5f), y(size_t(n) * s.out);
  size_t c = 0;
  for (auto _ : state) {
    if (packed) {
      PackedMatMul(x.data(), n, w.packed[c], y.data());
    } else {
      MatMul(x.data(), n, s.in, w.raw[c].data(), s.out, y.data());
    }
    benchmark::DoNotOptimize(y.data());
    c = (c + 1) % w.raw.size();
  }
  const double products = static_cast<double>(state.iterations());
  state.counters["GFLOPs"] =
      benchmark::Counter(2e-9 * n * s.in * s.out * products, benchmark::Counter::kIsRate);
  state.counters["weight_GBps"] =
      benchmark::Counter(4e-9 * s.in * s.out * products, benchmark::Counter::kIsRate);
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
      for (bool packed : {false, true}) {
        const std::string name =
            std::string(packed ? "BM_PackedMatMul/" : "BM_UnpackedMatMul/") +
            kShapes[shape].name + "/n:" + std::to_string(n);
        benchmark::RegisterBenchmark(
            name.c_str(), [=](benchmark::State& state) { Run(state, shape, n, packed); })
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
