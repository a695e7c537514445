// Int8MatMul: every SIMD variant's int32 sums (and so its outputs) are
// bit-identical to the portable specification's; the specification is close
// to the fp32 product within the bound its rounding implies; rows are
// identical alone or in any batch; the packed matrix is a quarter of fp32's.
#include "model/internal/int8_matmul.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "model/internal/packed_matmul.h"

namespace kvq::model_internal {
namespace {

std::vector<float> Random(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = normal(rng);
  return v;
}

struct Shape {
  int n, in, out;
};

// Odd shapes: in not a multiple of 4, out around the 16-wide panels and the
// 4-panel groups, n around the 4- and 6-row blocks and the 128-row chunks.
const std::vector<Shape>& Shapes() {
  static const std::vector<Shape> shapes = {
      {1, 1, 1},    {1, 7, 5},      {2, 17, 16},   {3, 255, 17}, {5, 256, 33},
      {6, 257, 31}, {7, 300, 100},  {8, 513, 48},  {13, 64, 1},  {31, 129, 65},
      {4, 3, 64},   {64, 1030, 70}, {130, 40, 18}, {12, 1, 200}, {9, 2816, 80}};
  return shapes;
}

const Int8Kernel kSimd[] = {Int8Kernel::kAvx512Vnni, Int8Kernel::kAvxVnni,
                            Int8Kernel::kAvx2};

// sum_k q[r][k] * qw[o][k] from the codes, in int64.
std::vector<int64_t> Reference(const std::vector<int8_t>& q, int n, const Int8Matrix& w) {
  std::vector<int64_t> acc(size_t(n) * w.out());
  for (int r = 0; r < n; ++r) {
    for (int o = 0; o < w.out(); ++o) {
      int64_t s = 0;
      for (int k = 0; k < w.in(); ++k)
        s += int64_t(q[size_t(r) * w.in4() + k]) * w.Code(o, k);
      acc[size_t(r) * w.out() + o] = s;
    }
  }
  return acc;
}

void ExpectAccumulatorsExact(Int8Kernel kernel) {
  std::mt19937 rng(11);
  for (const Shape& s : Shapes()) {
    const std::vector<float> w = Random(size_t(s.out) * s.in, rng);
    const std::vector<float> x = Random(size_t(s.n) * s.in, rng);
    const Int8Matrix packed(w.data(), s.out, s.in);
    std::vector<int8_t> q(size_t(s.n) * packed.in4());
    std::vector<float> sx(s.n);
    QuantizeRowsInt8(x.data(), s.n, s.in, packed.in4(), q.data(), sx.data());
    const std::vector<int64_t> ref = Reference(q, s.n, packed);
    std::vector<int32_t> acc(ref.size(), -1);
    Int8Accumulate(q.data(), s.n, packed, acc.data(), kernel);
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_EQ(acc[i], ref[i]) << Int8KernelName(kernel) << " n " << s.n << " in "
                                << s.in << " out " << s.out << " at " << i;
    }
    std::vector<float> y(ref.size()), y_portable(ref.size());
    Int8MatMul(x.data(), s.n, packed, y.data(), kernel);
    Int8MatMul(x.data(), s.n, packed, y_portable.data(), Int8Kernel::kPortable);
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_EQ(std::memcmp(&y[i], &y_portable[i], sizeof(float)), 0)
          << Int8KernelName(kernel) << " " << y[i] << " vs " << y_portable[i];
    }
  }
}

// The largest sums: every code +-127 over kMaxIn inputs (the VNNI variants'
// raw sums reach 255 * 127 * in; the AVX2 pairs 2 * 127 * 127).
void ExpectExtremesExact(Int8Kernel kernel) {
  const int in = Int8Matrix::kMaxIn, out = 32, n = 3;
  std::vector<float> w(size_t(out) * in);
  for (int o = 0; o < out; ++o) {
    for (int k = 0; k < in; ++k)
      w[size_t(o) * in + k] = (o % 2 == 0 || k % 3 == 0) ? 1.0f : -1.0f;
  }
  const Int8Matrix packed(w.data(), out, in);
  std::vector<int8_t> q(size_t(n) * in);
  for (int k = 0; k < in; ++k) {
    q[k] = 127;
    q[size_t(in) + k] = -127;
    q[size_t(2) * in + k] = k % 2 == 0 ? 127 : -127;
  }
  const std::vector<int64_t> ref = Reference(q, n, packed);
  std::vector<int32_t> acc(ref.size());
  Int8Accumulate(q.data(), n, packed, acc.data(), kernel);
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_EQ(acc[i], ref[i]) << Int8KernelName(kernel) << " at " << i;
  }
}

TEST(Int8MatMulTest, PortableAccumulatorsAreExact) {
  ExpectAccumulatorsExact(Int8Kernel::kPortable);
  ExpectExtremesExact(Int8Kernel::kPortable);
}

TEST(Int8MatMulTest, SimdVariantsBitIdenticalToPortable) {
  int ran = 0;
  for (Int8Kernel k : kSimd) {
    if (!Int8KernelSupported(k)) {
      std::fprintf(stderr, "[  SKIPPED ] int8 variant %s: this CPU lacks it\n",
                   Int8KernelName(k));
      continue;
    }
    ExpectAccumulatorsExact(k);
    ExpectExtremesExact(k);
    ++ran;
  }
  std::fprintf(stderr, "int8 variants checked: %d of 3; kAuto runs %s\n", ran,
               Int8KernelName(Int8Kernel::kAuto));
  if (ran < 3) GTEST_SKIP() << "only " << ran << " of 3 SIMD int8 variants run here";
}

// |y - x.w| <= sum_k (|x_k| |e_w| + |w_k| |e_x| + |e_x| |e_w|) with
// |e_x| <= sx / 2 and |e_w| <= sw / 2 (round to nearest), plus the fp32
// epilogue's two roundings (2^-23 of |y|).
TEST(Int8MatMulTest, PortableWithinQuantizationBoundOfFp32) {
  std::mt19937 rng(5);
  for (const Shape& s : Shapes()) {
    const std::vector<float> w = Random(size_t(s.out) * s.in, rng);
    const std::vector<float> x = Random(size_t(s.n) * s.in, rng);
    const Int8Matrix packed(w.data(), s.out, s.in);
    std::vector<float> y(size_t(s.n) * s.out);
    Int8MatMul(x.data(), s.n, packed, y.data(), Int8Kernel::kPortable);
    double worst = 0;
    for (int r = 0; r < s.n; ++r) {
      const float* xr = &x[size_t(r) * s.in];
      double xmax = 0;
      for (int k = 0; k < s.in; ++k) xmax = std::max(xmax, double(std::fabs(xr[k])));
      const double ex = xmax / 127 / 2;
      for (int o = 0; o < s.out; ++o) {
        const float* wo = &w[size_t(o) * s.in];
        double wmax = 0, ref = 0, bound = 0;
        for (int k = 0; k < s.in; ++k) wmax = std::max(wmax, double(std::fabs(wo[k])));
        const double ew = wmax / 127 / 2;
        for (int k = 0; k < s.in; ++k) {
          ref += double(xr[k]) * wo[k];
          bound += std::fabs(xr[k]) * ew + std::fabs(wo[k]) * ex + ex * ew;
        }
        // sx and sw themselves are fp32 quotients: 2^-23 relative each.
        bound = bound * (1 + 1e-6) + std::ldexp(std::fabs(ref) + bound, -21) + 1e-30;
        const double err = std::fabs(y[size_t(r) * s.out + o] - ref);
        ASSERT_LE(err, bound) << "n " << s.n << " in " << s.in << " out " << s.out;
        worst = std::max(worst, err / bound);
      }
    }
    EXPECT_LE(worst, 1.0);
  }
}

TEST(Int8MatMulTest, RowsIdenticalAloneOrInAnyBatch) {
  std::mt19937 rng(3);
  const int in = 700, out = 90, n = 41;
  const std::vector<float> w = Random(size_t(out) * in, rng);
  const std::vector<float> x = Random(size_t(n) * in, rng);
  const Int8Matrix packed(w.data(), out, in);
  std::vector<Int8Kernel> kernels = {Int8Kernel::kPortable};
  for (Int8Kernel k : kSimd) {
    if (Int8KernelSupported(k)) kernels.push_back(k);
  }
  for (Int8Kernel kernel : kernels) {
    std::vector<float> all(size_t(n) * out);
    Int8MatMul(x.data(), n, packed, all.data(), kernel);
    for (int start : {0, 5, 17}) {
      for (int batch : {1, 2, 6, 7, 24}) {
        if (start + batch > n) continue;
        std::vector<float> part(size_t(batch) * out);
        Int8MatMul(&x[size_t(start) * in], batch, packed, part.data(), kernel);
        ASSERT_EQ(std::memcmp(part.data(), &all[size_t(start) * out],
                              part.size() * sizeof(float)),
                  0)
            << Int8KernelName(kernel) << " rows " << start << ".." << start + batch;
      }
    }
  }
}

TEST(Int8MatMulTest, QuarterOfFp32MemoryPlusScales) {
  std::mt19937 rng(9);
  for (const Shape& s :
       std::vector<Shape>{{1, 1024, 2816}, {1, 2816, 1024}, {1, 64, 512}}) {
    const std::vector<float> w = Random(size_t(s.out) * s.in, rng);
    const Int8Matrix q(w.data(), s.out, s.in);
    const PackedMatrix f(w.data(), s.out, s.in);
    EXPECT_EQ(q.bytes(), f.bytes() / 4 + size_t(q.panels()) * 16 * 8);
    EXPECT_EQ(q.bytes(), size_t(s.out) * s.in + size_t(s.out) * 8);
  }
}

TEST(Int8MatMulTest, RowDequantizesCodes) {
  std::mt19937 rng(2);
  const int in = 37, out = 19;
  const std::vector<float> w = Random(size_t(out) * in, rng);
  const Int8Matrix q(w.data(), out, in);
  std::vector<float> row(in);
  for (int o = 0; o < out; ++o) {
    q.Row(o, row.data());
    float wmax = 0;
    for (int k = 0; k < in; ++k) wmax = std::max(wmax, std::fabs(w[size_t(o) * in + k]));
    for (int k = 0; k < in; ++k) {
      EXPECT_NEAR(row[k], w[size_t(o) * in + k], wmax / 127 / 2 * 1.0001);
      EXPECT_EQ(row[k], float(q.Code(o, k)) * q.scales()[o]);
    }
  }
}

TEST(Int8MatMulTest, ZeroRowGivesZero) {
  const int in = 10, out = 3;
  std::vector<float> w(size_t(out) * in, 0.5f), x(in, 0.0f), y(out, 1.0f);
  const Int8Matrix q(w.data(), out, in);
  Int8MatMul(x.data(), 1, q, y.data());
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace kvq::model_internal
