// Exactness of the scalar fp16 conversion: known values, every half, rounding
// ties, subnormals, overflow, and agreement with the CPU's F16C instructions
// (which the AVX-512 kernels use) where this CPU has them.
#include "kernels/fp16.h"

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace kvq::kernels {
namespace {

TEST(Fp16Test, KnownValues) {
  EXPECT_EQ(FloatToHalf(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(0.1f), 0x2e66);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(0x1p-14f), 0x0400);  // Smallest normal.
  EXPECT_EQ(FloatToHalf(0x1p-24f), 0x0001);  // Smallest subnormal.
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(HalfToFloat(0x0001), 0x1p-24f);
  EXPECT_EQ(HalfToFloat(0x03ff), 0x3ffp-24f);
  EXPECT_EQ(HalfToFloat(0xfbff), -65504.0f);
  EXPECT_TRUE(std::isinf(HalfToFloat(0x7c00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
}

TEST(Fp16Test, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_FALSE(HalfIsFinite(static_cast<uint16_t>(h)));
      EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(f))));
      continue;
    }
    ASSERT_EQ(FloatToHalf(f), h) << std::hex << h;
    EXPECT_EQ(HalfIsFinite(static_cast<uint16_t>(h)), std::isfinite(f));
  }
}

TEST(Fp16Test, TiesRoundToEven) {
  // Between 1 (0x3c00) and 1 + 2^-10 (0x3c01): the midpoint goes to the even 0x3c00,
  // and between 0x3c01 and 0x3c02 to the even 0x3c02.
  EXPECT_EQ(FloatToHalf(1.0f + 0x1p-11f), 0x3c00);
  EXPECT_EQ(FloatToHalf(1.0f + 3 * 0x1p-11f), 0x3c02);
  EXPECT_EQ(FloatToHalf(std::nextafter(1.0f + 0x1p-11f, 2.0f)), 0x3c01);
  // Subnormal ties: 0.5 and 1.5 units of 2^-24.
  EXPECT_EQ(FloatToHalf(0x1p-25f), 0x0000);
  EXPECT_EQ(FloatToHalf(std::nextafter(0x1p-25f, 1.0f)), 0x0001);
  EXPECT_EQ(FloatToHalf(3 * 0x1p-25f), 0x0002);
  EXPECT_EQ(FloatToHalf(-3 * 0x1p-25f), 0x8002);
  // Rounding the largest subnormal up carries into the smallest normal.
  EXPECT_EQ(FloatToHalf(0x3ffp-24f + 0x1p-25f), 0x0400);
  EXPECT_EQ(FloatToHalf(0x1p-30f), 0x0000);
  EXPECT_EQ(FloatToHalf(-0x1p-30f), 0x8000);
}

TEST(Fp16Test, OverflowAndSpecials) {
  EXPECT_EQ(FloatToHalf(65519.99f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);  // The tie rounds to even: Inf.
  EXPECT_EQ(FloatToHalf(-1e10f), 0xfc00);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(FloatToHalf(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::quiet_NaN()), 0x7e00);
  EXPECT_FALSE(HalfIsFinite(FloatToHalf(std::numeric_limits<float>::signaling_NaN())));
  EXPECT_FALSE(HalfIsFinite(0x7c00));
  EXPECT_TRUE(HalfIsFinite(0x7bff));
}

__attribute__((target("f16c"))) uint16_t F16cFloatToHalf(float f) {
  return static_cast<uint16_t>(
      _mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0));
}

__attribute__((target("f16c"))) float F16cHalfToFloat(uint16_t h) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

TEST(Fp16Test, MatchesF16cBitForBit) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "this CPU has no F16C";
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float a = HalfToFloat(static_cast<uint16_t>(h));
    const float b = F16cHalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(a)) {
      ASSERT_TRUE(std::isnan(b));
      continue;
    }
    ASSERT_EQ(FloatBits(a), FloatBits(b)) << std::hex << h;
  }
  // Every float whose 13 low bits (those a normal half drops) are one of the
  // patterns where rounding is decided (0, just under/at/over the half-way
  // bit 0x1000, all ones), for all 2^19 high parts; then a stride through
  // every float.
  const uint32_t lows[] = {0x000,  0x001, 0x7ff,  0xfff, 0x1000,
                           0x1001, 0xffe, 0x0fff, 0x1fff};
  for (uint32_t high = 0; high < (1u << 19); ++high) {
    for (uint32_t low : lows) {
      const uint32_t bits = (high << 13) | low;
      ASSERT_EQ(FloatToHalf(BitsToFloat(bits)), F16cFloatToHalf(BitsToFloat(bits)))
          << std::hex << bits;
    }
  }
  for (uint64_t bits = 0; bits <= 0xffffffffu; bits += 4093) {
    const float f = BitsToFloat(static_cast<uint32_t>(bits));
    ASSERT_EQ(FloatToHalf(f), F16cFloatToHalf(f)) << std::hex << bits;
  }
}

}  // namespace
}  // namespace kvq::kernels
