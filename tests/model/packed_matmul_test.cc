// PackedMatMul against a double-precision loop on odd shapes, its batch
// invariance (bit-exact rows whatever the batch), and PackedMatrix::Row.
#include "model/internal/packed_matmul.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "model/internal/ops.h"

namespace kvq::model_internal {
namespace {

std::vector<float> Random(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = normal(rng);
  return v;
}

// The kernels this CPU can run: kPortable always, the SIMD ones when present.
std::vector<MatMulKernel> Kernels() {
  std::vector<MatMulKernel> k = {MatMulKernel::kPortable};
  for (MatMulKernel simd : {MatMulKernel::kAvx2Fma, MatMulKernel::kAvx512Fma}) {
    if (MatMulKernelSupported(simd)) k.push_back(simd);
  }
  return k;
}

struct Shape {
  int n, in, out;
};

TEST(PackedMatMulTest, MatchesDoubleLoopOnOddShapes) {
  std::mt19937 rng(7);
  // in around the 256-wide k-blocks, out around the 16-wide panels, n up to
  // 70 (row chunks of 144 need more: one shape covers them).
  const std::vector<Shape> shapes = {
      {1, 1, 1},      {1, 7, 5},     {2, 17, 16},   {3, 255, 17}, {5, 256, 33},
      {6, 257, 31},   {7, 300, 100}, {8, 513, 48},  {13, 64, 1},  {31, 129, 15},
      {64, 1030, 70}, {70, 333, 47}, {150, 40, 18}, {12, 1, 200}};
  for (MatMulKernel kernel : Kernels()) {
    for (const Shape& s : shapes) {
      const std::vector<float> x = Random(size_t(s.n) * s.in, rng);
      const std::vector<float> w = Random(size_t(s.out) * s.in, rng);
      const PackedMatrix packed(w.data(), s.out, s.in);
      std::vector<float> y(size_t(s.n) * s.out, -1.0f);
      PackedMatMul(x.data(), s.n, packed, y.data(), kernel);
      for (int r = 0; r < s.n; ++r) {
        for (int o = 0; o < s.out; ++o) {
          double ref = 0, abs_sum = 0;
          for (int k = 0; k < s.in; ++k) {
            const double t = double(x[size_t(r) * s.in + k]) * w[size_t(o) * s.in + k];
            ref += t;
            abs_sum += std::fabs(t);
          }
          // A float chain of `in` steps errs by at most in * 2^-24 of the
          // sum of |terms| (each step rounds once or twice).
          const double bound = 2.0 * s.in * std::ldexp(abs_sum, -24) + 1e-30;
          ASSERT_NEAR(y[size_t(r) * s.out + o], ref, bound)
              << "n=" << s.n << " in=" << s.in << " out=" << s.out << " row " << r
              << " col " << o << " kernel " << static_cast<int>(kernel);
        }
      }
    }
  }
}

TEST(PackedMatMulTest, RowsAreBitIdenticalInAnyBatch) {
  std::mt19937 rng(11);
  // 1030 x 700: large enough that batches run on several threads while a
  // lone row may not; 300 x 37: one thread, a partial last panel.
  for (const Shape& s : {Shape{0, 1030, 700}, Shape{0, 300, 37}}) {
    const std::vector<float> w = Random(size_t(s.out) * s.in, rng);
    const PackedMatrix packed(w.data(), s.out, s.in);
    const std::vector<float> rows = Random(size_t(4) * s.in, rng);
    for (MatMulKernel kernel : Kernels()) {
      for (int r = 0; r < 4; ++r) {
        const float* row = &rows[size_t(r) * s.in];
        std::vector<float> alone(s.out);
        PackedMatMul(row, 1, packed, alone.data(), kernel);
        for (int batch : {1, 5, 6, 7, 13, 64}) {
          // Row r at the front, at the back and in the middle of the batch.
          for (int pos : {0, batch - 1, batch / 2}) {
            std::vector<float> x = Random(size_t(batch) * s.in, rng);
            std::memcpy(&x[size_t(pos) * s.in], row, s.in * sizeof(float));
            std::vector<float> y(size_t(batch) * s.out);
            PackedMatMul(x.data(), batch, packed, y.data(), kernel);
            ASSERT_EQ(
                std::memcmp(&y[size_t(pos) * s.out], alone.data(), s.out * sizeof(float)),
                0)
                << "in=" << s.in << " row " << r << " at " << pos << " of " << batch
                << " kernel " << static_cast<int>(kernel);
          }
        }
      }
    }
  }
}

TEST(PackedMatMulTest, RowRecoversTheUnpackedMatrix) {
  std::mt19937 rng(3);
  for (const Shape& s : {Shape{0, 1, 1}, Shape{0, 300, 37}, Shape{0, 512, 16}}) {
    const std::vector<float> w = Random(size_t(s.out) * s.in, rng);
    const PackedMatrix packed(w.data(), s.out, s.in);
    EXPECT_EQ(packed.bytes(), size_t(packed.panels()) * 16 * s.in * sizeof(float));
    std::vector<float> row(s.in);
    for (int o = 0; o < s.out; ++o) {
      packed.Row(o, row.data());
      ASSERT_EQ(std::memcmp(row.data(), &w[size_t(o) * s.in], s.in * sizeof(float)), 0)
          << "row " << o;
    }
  }
}

// The zmm kernels run the ymm kernels' chains lane for lane: fp32 weights
// give the same bits on AVX2 and AVX-512 machines. Shapes with odd panel
// counts (a thread's run ending in a single panel) and partial panels.
TEST(PackedMatMulTest, Avx512BitIdenticalToAvx2) {
  if (!MatMulKernelSupported(MatMulKernel::kAvx512Fma)) {
    GTEST_SKIP() << "this CPU lacks AVX-512F: kAvx512Fma not checked";
  }
  std::mt19937 rng(13);
  for (const Shape& s : {Shape{1, 1, 1}, Shape{7, 300, 100}, Shape{13, 513, 48},
                         Shape{150, 40, 18}, Shape{64, 1030, 70}, Shape{6, 1024, 2816}}) {
    const std::vector<float> x = Random(size_t(s.n) * s.in, rng);
    const std::vector<float> w = Random(size_t(s.out) * s.in, rng);
    const PackedMatrix packed(w.data(), s.out, s.in);
    std::vector<float> y2(size_t(s.n) * s.out), y512(y2.size());
    PackedMatMul(x.data(), s.n, packed, y2.data(), MatMulKernel::kAvx2Fma);
    PackedMatMul(x.data(), s.n, packed, y512.data(), MatMulKernel::kAvx512Fma);
    ASSERT_EQ(std::memcmp(y2.data(), y512.data(), y2.size() * sizeof(float)), 0)
        << "n=" << s.n << " in=" << s.in << " out=" << s.out;
  }
  EXPECT_EQ(BestMatMulKernel(), MatMulKernel::kAvx512Fma);
  EXPECT_STREQ(MatMulKernelName(MatMulKernel::kAuto), "avx512fma");
}

TEST(PackedMatMulTest, NoRowsLeavesOutputAlone) {
  const std::vector<float> w(16 * 8, 1.0f);
  const PackedMatrix packed(w.data(), 16, 8);
  float y = 42.0f;
  PackedMatMul(nullptr, 0, packed, &y);
  EXPECT_EQ(y, 42.0f);
}

}  // namespace
}  // namespace kvq::model_internal
