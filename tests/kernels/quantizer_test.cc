// The reference quantizer's edge cases (design 3.2 and kernels/README.md,
// "Edge cases"): constant groups, ties, signed zeros, fp16 scales that
// underflow to zero or to subnormals, the largest fp16 ranges, the round-trip
// error bound; plus DequantizeLayer and WriteFp16Tokens.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "kernels/block_format.h"
#include "kernels/fp16.h"
#include "kernels/reference.h"
#include "tests/kernels/test_util.h"

namespace kvq::kernels {
namespace {

using reference::ComputeGroupParams;
using reference::DequantizeValue;
using reference::GroupParams;
using reference::QuantizeValue;

std::vector<uint16_t> Halves(const std::vector<float>& x) {
  std::vector<uint16_t> h;
  for (float f : x) h.push_back(FloatToHalf(f));
  return h;
}

// Quantizes and dequantizes one group; returns the dequantized values.
std::vector<float> RoundTrip(const std::vector<uint16_t>& x, int bits,
                             GroupParams* params) {
  *params = ComputeGroupParams(x.data(), static_cast<int>(x.size()), 1, bits);
  std::vector<float> out;
  for (uint16_t h : x)
    out.push_back(DequantizeValue(QuantizeValue(h, *params, bits), *params));
  return out;
}

// The round-trip error bound: half a step, plus what the fp16 rounding of the
// scale accumulates over 2^b - 1 steps (the top codes clamp), plus fp32 slack.
void ExpectWithinBound(const std::vector<uint16_t>& x, int bits) {
  GroupParams p;
  const std::vector<float> y = RoundTrip(x, bits, &p);
  float mn = HalfToFloat(x[0]), mx = mn;
  for (uint16_t h : x)
    mn = std::fmin(mn, HalfToFloat(h)), mx = std::fmax(mx, HalfToFloat(h));
  const double levels = (1 << bits) - 1;
  const double exact_scale = (static_cast<double>(mx) - mn) / levels;
  const double scale = HalfToFloat(p.scale);
  ASSERT_TRUE(std::isfinite(scale));
  const double bound = scale == 0.0
                           ? static_cast<double>(mx) - mn
                           : 0.5 * scale + levels * std::fabs(scale - exact_scale) +
                                 1e-6 * (std::fabs(mx) + std::fabs(mn));
  for (size_t i = 0; i < x.size(); ++i) {
    const double xi = HalfToFloat(x[i]);
    EXPECT_LE(std::fabs(xi - y[i]), bound)
        << "bits " << bits << " x " << xi << " got " << y[i] << " scale " << scale;
  }
}

TEST(QuantizerTest, RoundHalfEven) {
  EXPECT_EQ(reference::RoundHalfEven(0.5f), 0.0f);
  EXPECT_EQ(reference::RoundHalfEven(1.5f), 2.0f);
  EXPECT_EQ(reference::RoundHalfEven(2.5f), 2.0f);
  EXPECT_EQ(reference::RoundHalfEven(3.5f), 4.0f);
  EXPECT_EQ(reference::RoundHalfEven(254.5f), 254.0f);
  EXPECT_EQ(reference::RoundHalfEven(2.4999998f), 2.0f);
  EXPECT_EQ(reference::RoundHalfEven(2.5000002f), 3.0f);
  EXPECT_EQ(reference::RoundHalfEven(0.0f), 0.0f);
  EXPECT_EQ(reference::RoundHalfEven(7.0f), 7.0f);
}

TEST(QuantizerTest, TiesGoToEvenCodes) {
  // Group {0, 15} at 4 bits: scale 1, zero 0, so x itself is the quotient.
  const GroupParams p = ComputeGroupParams(Halves({0, 15}).data(), 2, 1, 4);
  ASSERT_EQ(p.scale, 0x3c00);
  for (float x : {0.5f, 1.5f, 2.5f, 3.5f, 12.5f, 13.5f, 14.5f}) {
    EXPECT_EQ(QuantizeValue(FloatToHalf(x), p, 4), reference::RoundHalfEven(x)) << x;
  }
  EXPECT_EQ(QuantizeValue(FloatToHalf(2.5f), p, 4), 2);
  EXPECT_EQ(QuantizeValue(FloatToHalf(3.5f), p, 4), 4);
}

TEST(QuantizerTest, ConstantGroupsHaveScaleZero) {
  for (int bits : {2, 4, 8}) {
    for (float c : {0.0f, -0.0f, 1.0f, -3.25f, 65504.0f, -65504.0f, 0x1p-24f}) {
      const std::vector<uint16_t> x(8, FloatToHalf(c));
      GroupParams p;
      const std::vector<float> y = RoundTrip(x, bits, &p);
      EXPECT_EQ(p.scale, 0x0000);
      EXPECT_EQ(HalfToFloat(p.zero), c);
      for (size_t i = 0; i < x.size(); ++i) {
        EXPECT_EQ(QuantizeValue(x[i], p, bits), 0);
        EXPECT_EQ(y[i], c);  // Exact.
      }
    }
  }
}

TEST(QuantizerTest, SignedZerosCountAsPositiveZero) {
  // The bytes must not depend on the order in which min/max meet -0 and +0.
  for (const std::vector<float>& x : std::vector<std::vector<float>>{
           {-0.0f, 0.0f}, {0.0f, -0.0f}, {-0.0f, -0.0f}, {0.0f, 0.0f}}) {
    const GroupParams p = ComputeGroupParams(Halves(x).data(), 2, 1, 2);
    EXPECT_EQ(p.scale, 0x0000);
    EXPECT_EQ(p.zero, 0x0000);
  }
  const GroupParams p = ComputeGroupParams(Halves({-0.0f, 3.0f}).data(), 2, 1, 2);
  EXPECT_EQ(p.zero, 0x0000);
  EXPECT_EQ(p.scale, 0x3c00);
}

TEST(QuantizerTest, ScaleUnderflowsToZero) {
  // Range 2^-24 (one fp16 subnormal step): 2^-24 / 3 rounds to fp16 0, so
  // every code is 0 and the group decodes to its minimum; the error is at
  // most the range.
  const std::vector<uint16_t> x = {0x0000, 0x0001, 0x0001, 0x0000};
  GroupParams p;
  const std::vector<float> y = RoundTrip(x, 2, &p);
  EXPECT_EQ(p.scale, 0x0000);
  EXPECT_EQ(p.zero, 0x0000);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  ExpectWithinBound(x, 2);
  // Also around larger values: {1000, 1000.5} at 8 bits has scale 0.5/255,
  // which is a (normal) fp16; the group still quantizes.
  ExpectWithinBound(Halves({1000.0f, 1000.5f}), 8);
}

TEST(QuantizerTest, SubnormalScalesStayWithinBound) {
  // Groups of fp16 subnormals (ranges up to 2^-14) give zero or subnormal
  // fp16 scales, which carry only a few significant bits: top codes may clamp.
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> mant(0, 0x3ff);
  for (int bits : {2, 4, 8}) {
    for (int e = 0; e <= 14; ++e) {
      for (int trial = 0; trial < 20; ++trial) {
        std::vector<uint16_t> x;
        for (int i = 0; i < 16; ++i) {
          x.push_back(static_cast<uint16_t>(mant(rng) >> (10 - std::min(e, 10))));
        }
        ExpectWithinBound(x, bits);
      }
    }
    // Range exactly (2^b - 1) * 2^-24: scale is the smallest subnormal.
    const std::vector<uint16_t> x = {0, static_cast<uint16_t>((1 << bits) - 1)};
    GroupParams p;
    const std::vector<float> y = RoundTrip(x, bits, &p);
    EXPECT_EQ(p.scale, 0x0001);
    EXPECT_EQ(y[1], HalfToFloat(x[1]));
  }
}

TEST(QuantizerTest, LargestRangesHaveFiniteScales) {
  // |x| <= 65504, so mx - mn <= 131008 and the scale <= 131008 / 3 = 43669.3,
  // which rounds to the finite fp16 43680 (0x7955): the scale cannot overflow.
  const std::vector<uint16_t> x = Halves({-65504, 65504, 0, 1000, -30000});
  GroupParams p;
  RoundTrip(x, 2, &p);
  EXPECT_EQ(p.scale, 0x7955);
  EXPECT_EQ(HalfToFloat(p.scale), 43680.0f);
  EXPECT_EQ(p.zero, 0xfbff);
  for (int bits : {2, 4, 8}) ExpectWithinBound(x, bits);
  EXPECT_EQ(QuantizeValue(0x7bff, p, 2), 3);  // 131008 / 43680 = 2.9993 -> 3
}

TEST(QuantizerTest, RandomGroupsStayWithinBound) {
  std::mt19937 rng(1);
  for (int bits : {2, 4, 8}) {
    for (int trial = 0; trial < 200; ++trial) {
      const float spread = std::ldexp(1.0f, trial % 20 - 10);
      const std::vector<float> raw = testing::RandomKv(rng, 1, 32, false);
      std::vector<float> x;
      for (float r : raw) x.push_back(r * spread + (trial % 3) * 100.0f);
      ExpectWithinBound(Halves(x), bits);
    }
  }
}

TEST(QuantizerTest, FloatInputIsRoundedToFp16First) {
  std::mt19937 rng(3);
  const BlockEncoding enc = BlockEncoding::Quantized(2, 32, 32);
  const std::vector<float> k = testing::RandomKv(rng, 2 * 32, 64, true);
  const std::vector<float> v = testing::RandomKv(rng, 2 * 32, 64, false);
  std::vector<uint8_t> a(LayerBytes(enc, 2, 64)), b(a.size());
  ASSERT_TRUE(reference::QuantizeLayer(enc, 2, 64, k.data(), v.data(), a.data()).ok());
  const std::vector<uint16_t> kh = Halves(k), vh = Halves(v);
  ASSERT_TRUE(
      reference::QuantizeLayerFp16(enc, 2, 64, kh.data(), vh.data(), b.data()).ok());
  EXPECT_EQ(a, b);
}

TEST(QuantizerTest, DequantizeLayerInvertsWithinBound) {
  std::mt19937 rng(5);
  for (int bits : {2, 4, 8}) {
    const BlockEncoding enc = BlockEncoding::Quantized(bits, 32, 16);
    const int n = 2 * 32 * 64;
    const std::vector<float> k = testing::RandomKv(rng, 2 * 32, 64, true);
    const std::vector<float> v = testing::RandomKv(rng, 2 * 32, 64, false);
    std::vector<uint8_t> part(LayerBytes(enc, 2, 64));
    ASSERT_TRUE(
        reference::QuantizeLayer(enc, 2, 64, k.data(), v.data(), part.data()).ok());
    std::vector<float> dk(n), dv(n);
    ASSERT_TRUE(
        reference::DequantizeLayer(enc, 2, 64, part.data(), dk.data(), dv.data()).ok());
    // Keys: per-channel range up to about 12 * 8 = 100; values about 8.
    const double k_step = 110.0 / ((1 << bits) - 1), v_step = 9.0 / ((1 << bits) - 1);
    for (int i = 0; i < n; ++i) {
      EXPECT_LE(std::fabs(dk[i] - k[i]), 0.5 * k_step + 0.05) << i;
      EXPECT_LE(std::fabs(dv[i] - v[i]), 0.5 * v_step + 0.01) << i;
    }
  }
  const BlockEncoding fp16 = BlockEncoding::Fp16(32);
  const std::vector<float> k = testing::RandomKv(rng, 32, 8, true);
  std::vector<uint8_t> part(LayerBytes(fp16, 1, 8));
  ASSERT_TRUE(reference::QuantizeLayer(fp16, 1, 8, k.data(), k.data(), part.data()).ok());
  std::vector<float> dk(k.size()), dv(k.size());
  ASSERT_TRUE(
      reference::DequantizeLayer(fp16, 1, 8, part.data(), dk.data(), dv.data()).ok());
  for (size_t i = 0; i < k.size(); ++i) EXPECT_EQ(dk[i], RoundToHalf(k[i]));
}

TEST(QuantizerTest, DequantizeLayerRejectsCorruptParts) {
  const BlockEncoding enc = BlockEncoding::Quantized(2, 4, 2);
  std::vector<float> k(16, 1.0f), v(16, 2.0f), dk(16, -7.0f), dv(16, -7.0f);
  std::vector<uint8_t> part(LayerBytes(enc, 1, 4));
  ASSERT_TRUE(reference::QuantizeLayer(enc, 1, 4, k.data(), v.data(), part.data()).ok());
  const HeadLayout l = GetHeadLayout(enc, 4);
  for (size_t at : {l.k_scale, l.k_zero + 2, l.v_scale + 4, l.v_zero + 6}) {
    std::vector<uint8_t> bad = part;
    bad[at] = 0x00, bad[at + 1] = 0x7e;  // fp16 NaN
    const absl::Status s =
        reference::DequantizeLayer(enc, 1, 4, bad.data(), dk.data(), dv.data());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << at;
    EXPECT_EQ(dk[0], -7.0f);  // Nothing written.
  }
  EXPECT_EQ(reference::DequantizeLayer(enc, 1, 4, nullptr, dk.data(), dv.data()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      reference::DequantizeLayer(enc, 1, 6, part.data(), dk.data(), dv.data()).code(),
      absl::StatusCode::kInvalidArgument);  // G = 2 divides 6 but 6 * 2 bits is not bytes
}

TEST(QuantizerTest, WriteFp16TokensFillsRowsInPlace) {
  // Appending tokens one at a time gives the same part as converting the
  // whole (zero-padded) block at once.
  const BlockEncoding enc = BlockEncoding::Fp16(4);
  std::mt19937 rng(9);
  const int heads = 2, dim = 8, tokens = 3;
  std::vector<float> k(heads * 4 * dim, 0.0f), v(k.size(), 0.0f);
  std::vector<uint8_t> appended(LayerBytes(enc, heads, dim), 0);
  for (int t = 0; t < tokens; ++t) {
    const std::vector<float> kt = testing::RandomKv(rng, heads, dim, true);
    const std::vector<float> vt = testing::RandomKv(rng, heads, dim, false);
    for (int h = 0; h < heads; ++h) {
      for (int d = 0; d < dim; ++d) {
        k[(h * 4 + t) * dim + d] = kt[h * dim + d];
        v[(h * 4 + t) * dim + d] = vt[h * dim + d];
      }
    }
    ASSERT_TRUE(reference::WriteFp16Tokens(enc, heads, dim, t, 1, kt.data(), vt.data(),
                                           appended.data())
                    .ok());
  }
  std::vector<uint8_t> whole(appended.size());
  ASSERT_TRUE(
      reference::QuantizeLayer(enc, heads, dim, k.data(), v.data(), whole.data()).ok());
  EXPECT_EQ(appended, whole);

  std::vector<float> one(heads * dim, 1.0f);
  const std::vector<uint8_t> before = appended;
  auto code = [&](const BlockEncoding& e, int first, int n, const float* kp) {
    return reference::WriteFp16Tokens(e, heads, dim, first, n, kp, one.data(),
                                      appended.data())
        .code();
  };
  EXPECT_EQ(code(enc, 4, 1, one.data()), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(enc, -1, 1, one.data()), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(enc, 3, 2, one.data()), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(enc, 0, 0, one.data()), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(BlockEncoding::Quantized(2, 4, 8), 0, 1, one.data()),
            absl::StatusCode::kInvalidArgument);
  std::vector<float> nan = one;
  nan[5] = NAN;
  EXPECT_EQ(code(enc, 3, 1, nan.data()), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(appended, before);
}

}  // namespace
}  // namespace kvq::kernels
