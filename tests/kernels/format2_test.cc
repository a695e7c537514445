// Format 2 of kernels/block_format.h: key and value bits apart, outliers and
// u8 scales (format version 3: outliers as fp16 corrections; version 4: key
// outliers by column where they fit). Sizes and
// offsets by hand, Validate's new rules, the reference quantizer (outliers
// within half an fp16 ulp of their correction, the rest finer for leaving
// them out), and
// attention over such blocks against fp64 attention over the dequantized
// cache, for every available kernel variant.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/block_format.h"
#include "kernels/fp16.h"
#include "kernels/kernel_set.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"
#include "tests/kernels/test_util.h"

namespace kvq::kernels {
namespace {

TEST(Format2Test, VersionIsFour) { EXPECT_EQ(kFormatVersion, 4); }

TEST(Format2Test, KiviLayoutIsFormatOnes) {
  const HeadLayout l = GetHeadLayout(BlockEncoding::Quantized(2, 32, 32), 128);
  EXPECT_EQ(l.head_bytes, 1024u + 512 + 1024 + 512);
  EXPECT_EQ(l.k_range, l.head_bytes);
  EXPECT_EQ(l.k_out_at, l.head_bytes);
}

TEST(Format2Test, MixedSizesAndOffsetsByHand) {
  // B = 32, head_dim 8, keys 4-bit, values 2-bit, G = 8, 5 key and 3 value
  // outliers, u8 scales. Section = 256 entries: u8 positions.
  const BlockEncoding enc = BlockEncoding::Mixed(4, 2, 32, 8, 5, 3, ScaleFormat::kU8);
  const HeadLayout l = GetHeadLayout(enc, 8);
  EXPECT_EQ(l.scale_bytes, 1u);
  EXPECT_EQ(l.index_bytes, 1u);
  EXPECT_EQ(l.k_codes, 0u);
  EXPECT_EQ(l.k_scale, 8u * 16);        // 8 channels * 32 tokens * 4 bits / 8
  EXPECT_EQ(l.k_zero, 128u + 8);        // u8 per channel
  EXPECT_EQ(l.v_codes, 136u + 8);       // 144
  EXPECT_EQ(l.v_scale, 144u + 32 * 2);  // 32 tokens * 8 channels * 2 bits / 8
  EXPECT_EQ(l.v_zero, 208u + 32);       // one group per token
  EXPECT_EQ(l.k_range, 240u + 32);      // 272
  EXPECT_EQ(l.v_range, 272u + 6);
  EXPECT_EQ(l.k_out, 278u + 6);   // 284
  EXPECT_EQ(l.v_out, 284u + 10);  // 294
  EXPECT_EQ(l.k_out_at, 294u + 6);
  EXPECT_EQ(l.v_out_at, 300u + 5);
  EXPECT_EQ(l.head_bytes, 305u + 3);
  // 308 bytes for 512 elements.
  EXPECT_DOUBLE_EQ(BitsPerElement(enc, 8), 8.0 * 308 / 512);
  // fp16 scales and a section of 32 * 128 entries: u16 positions.
  const HeadLayout w =
      GetHeadLayout(BlockEncoding::Mixed(2, 2, 32, 32, 1, 1, ScaleFormat::kFp16), 128);
  EXPECT_EQ(w.index_bytes, 2u);
  EXPECT_EQ(w.k_range, w.v_range);
  EXPECT_EQ(w.head_bytes, 3072u + 2 + 2 + 2 + 2);
  EXPECT_EQ(OutlierIndexBytes(65536), 2u);
  EXPECT_EQ(OutlierIndexBytes(65537), 4u);
}

TEST(Format2Test, ValidateRejectsBadFormat2Fields) {
  const CacheShape shape{1, 2, 8};
  auto bad = [&shape](BlockEncoding e) {
    return Validate(e, shape).code() == absl::StatusCode::kInvalidArgument;
  };
  EXPECT_FALSE(bad(BlockEncoding::Mixed(8, 2, 32, 8, 256, 256, ScaleFormat::kU8)));
  EXPECT_TRUE(bad(BlockEncoding::Mixed(2, 3, 32, 8, 0, 0, ScaleFormat::kFp16)));
  EXPECT_TRUE(bad(BlockEncoding::Mixed(2, 16, 32, 8, 0, 0, ScaleFormat::kFp16)));
  EXPECT_TRUE(bad(BlockEncoding::Mixed(16, 2, 32, 8, 0, 0, ScaleFormat::kFp16)));
  EXPECT_TRUE(bad(BlockEncoding::Mixed(2, 2, 32, 8, 257, 0, ScaleFormat::kFp16)));
  EXPECT_TRUE(bad(BlockEncoding::Mixed(2, 2, 32, 8, 0, 257, ScaleFormat::kFp16)));
  BlockEncoding scales = BlockEncoding::Quantized(2, 32, 8);
  scales.scales = 2;
  EXPECT_TRUE(bad(scales));
  BlockEncoding fp16 = BlockEncoding::Fp16(32);
  fp16.k_outliers = 1;
  EXPECT_TRUE(bad(fp16));
  fp16 = BlockEncoding::Fp16(32);
  fp16.scales = 1;
  EXPECT_TRUE(bad(fp16));
  // Value codes fill whole bytes on their own bit width: 2-bit values of
  // head_dim 6 do not (6 * 2 bits), 8-bit ones do.
  EXPECT_TRUE(Validate(BlockEncoding::Mixed(2, 2, 32, 6, 0, 0, ScaleFormat::kFp16),
                       CacheShape{1, 1, 6})
                  .code() == absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Validate(BlockEncoding::Mixed(2, 8, 32, 6, 0, 0, ScaleFormat::kFp16),
                       CacheShape{1, 1, 6})
                  .ok());
}

// K, V [heads][B][D] ~ N(0, 1) with `planted` entries per head of each set
// to +-40 (far from every group's mean); returns their positions per head.
struct Planted {
  std::vector<float> k, v;
  std::vector<std::vector<int>> k_at, v_at;  // [head] ascending t*D + c
};

Planted PlantOutliers(std::mt19937& rng, int heads, int B, int D, int planted) {
  Planted p;
  std::normal_distribution<float> n01(0.0f, 1.0f);
  p.k.resize(static_cast<size_t>(heads) * B * D);
  p.v.resize(p.k.size());
  for (float& x : p.k) x = n01(rng);
  for (float& x : p.v) x = n01(rng);
  std::uniform_int_distribution<int> pos(0, B * D - 1);
  for (int h = 0; h < heads; ++h) {
    for (int set = 0; set < 2; ++set) {
      std::vector<int> at;
      while (static_cast<int>(at.size()) < planted) {
        const int x = pos(rng);
        if (std::find(at.begin(), at.end(), x) == at.end()) at.push_back(x);
      }
      std::sort(at.begin(), at.end());
      std::vector<float>& data = set == 0 ? p.k : p.v;
      for (size_t i = 0; i < at.size(); ++i) {
        data[static_cast<size_t>(h) * B * D + at[i]] = (i % 2) ? -40.0f : 40.0f;
      }
      (set == 0 ? p.k_at : p.v_at).push_back(at);
    }
  }
  return p;
}

TEST(Format2Test, OutliersRoundTripToAnFp16CorrectionAndTheRestQuantizesFiner) {
  std::mt19937 rng(21);
  const int H = 2, B = 32, D = 8, planted = 5;
  const Planted p = PlantOutliers(rng, H, B, D, planted);
  for (ScaleFormat sf : {ScaleFormat::kFp16, ScaleFormat::kU8}) {
    for (int bits : {2, 4, 8}) {
      SCOPED_TRACE(::testing::Message()
                   << "bits " << bits << " scales " << static_cast<int>(sf));
      const BlockEncoding with =
          BlockEncoding::Mixed(bits, bits, B, D, planted, planted, sf);
      const BlockEncoding without = BlockEncoding::Mixed(bits, bits, B, D, 0, 0, sf);
      std::vector<float> k1(p.k.size()), v1(k1.size()), k0(k1.size()), v0(k1.size());
      for (const auto& [enc, k, v] :
           {std::tuple{with, &k1, &v1}, std::tuple{without, &k0, &v0}}) {
        std::vector<uint8_t> part(LayerBytes(enc, H, D));
        ASSERT_TRUE(
            reference::QuantizeLayer(enc, H, D, p.k.data(), p.v.data(), part.data())
                .ok());
        ASSERT_TRUE(
            reference::DequantizeLayer(enc, H, D, part.data(), k->data(), v->data())
                .ok());
      }
      double err1 = 0, err0 = 0;
      for (int h = 0; h < H; ++h) {
        const size_t base = static_cast<size_t>(h) * B * D;
        // d + fp16(x - d) with |x - d| < 64 (x = +-40, |d| < 8): within half
        // an fp16 ulp at [32, 64), 2^-6, of x.
        const double half_ulp = std::ldexp(1.0, -6) + 1e-5;
        for (int at : p.k_at[h])
          EXPECT_NEAR(k1[base + at], p.k[base + at], half_ulp) << at;
        for (int at : p.v_at[h])
          EXPECT_NEAR(v1[base + at], p.v[base + at], half_ulp) << at;
        for (int i = 0; i < B * D; ++i) {
          const bool kout = std::binary_search(p.k_at[h].begin(), p.k_at[h].end(), i);
          const bool vout = std::binary_search(p.v_at[h].begin(), p.v_at[h].end(), i);
          const float kx = HalfToFloat(FloatToHalf(p.k[base + i]));
          const float vx = HalfToFloat(FloatToHalf(p.v[base + i]));
          if (!kout) err1 = std::max<double>(err1, std::fabs(k1[base + i] - kx));
          if (!vout) err1 = std::max<double>(err1, std::fabs(v1[base + i] - vx));
          if (!kout) err0 = std::max<double>(err0, std::fabs(k0[base + i] - kx));
          if (!vout) err0 = std::max<double>(err0, std::fabs(v0[base + i] - vx));
        }
      }
      // N(0, 1) data spans about 6 without the planted +-40 (80 with):
      // leaving them out of min/max divides the step by several times.
      EXPECT_LT(err1, err0 / 3) << err1 << " vs " << err0;
      const double levels = (1 << bits) - 1;
      EXPECT_LT(err1, 9.0 / levels);  // a step of range <= ~8 (+ u8 rounding)
    }
  }
}

TEST(Format2Test, OutliersAreTheFarthestFromTheirGroupsMean) {
  // One head, B = 4, D = 4 (4-bit keys and values): keys' channel 2 is
  // 0, 0, 0, 3 (mean .75, distance 2.25 at t = 3); everything else is 1 (or
  // 0 in the constant channels): exactly one entry is far from its mean.
  const int B = 4, D = 4;
  std::vector<float> k(B * D, 1.0f), v(B * D, 0.5f);
  for (int t = 0; t < B; ++t) k[t * D + 2] = t == 3 ? 3.0f : 0.0f;
  v[1 * D + 3] = -7.0f;  // token 1's group mean is -1.375, distance 5.625
  const BlockEncoding enc = BlockEncoding::Mixed(4, 4, B, D, 1, 1, ScaleFormat::kFp16);
  const HeadLayout l = GetHeadLayout(enc, D);
  std::vector<uint8_t> part(l.head_bytes);
  ASSERT_TRUE(reference::QuantizeLayer(enc, 1, D, k.data(), v.data(), part.data()).ok());
  EXPECT_EQ(part[l.k_out_at], 3 * D + 2);
  EXPECT_EQ(part[l.k_out] | part[l.k_out + 1] << 8, FloatToHalf(3.0f));
  EXPECT_EQ(part[l.v_out_at], 1 * D + 3);
  // Corrections: the key's code gives 0 (scale and zero 0 below), the
  // value's 0.5 (scale 0, zero 0.5): x - d = 3 and -7.5, fp16 numbers, so
  // both dequantize exactly.
  EXPECT_EQ(part[l.v_out] | part[l.v_out + 1] << 8, FloatToHalf(-7.5f));
  // Channel 2 without its outlier is constant 0: scale 0, zero 0.
  EXPECT_EQ(part[l.k_scale + 4] | part[l.k_scale + 5] << 8, 0);
  // Token 1's values without the outlier are constant .5: scale 0.
  EXPECT_EQ(part[l.v_scale + 2] | part[l.v_scale + 3] << 8, 0);
  std::vector<float> k2(B * D), v2(B * D);
  ASSERT_TRUE(
      reference::DequantizeLayer(enc, 1, D, part.data(), k2.data(), v2.data()).ok());
  EXPECT_EQ(k2, k);  // every key is now exact
  EXPECT_EQ(v2, v);
}

// Key outliers in few channels are stored by column (version 4): marker,
// count, token masks, channels, zero padding, corrections column after
// column; they dequantize exactly as by position. Too many channels for
// the index bytes: by position.
TEST(Format2Test, KeyOutliersByColumnByHand) {
  const int B = 8, D = 64, nk = 6;
  ASSERT_TRUE(KeyColumnsAllowed(B, D));
  ASSERT_EQ(MaxKeyColumns(B, nk), 4);  // (12 - 4) / (1 + 1)
  std::vector<float> k(B * D, 0.0f), v(B * D, 0.0f);
  // Channel 9 at tokens 1, 6; channel 3 at tokens 0, 2, 7; channel 40 at 5.
  const std::vector<std::pair<int, int>> at = {{1, 9}, {6, 9}, {0, 3},
                                               {2, 3}, {7, 3}, {5, 40}};
  for (size_t i = 0; i < at.size(); ++i) {
    k[at[i].first * D + at[i].second] = 10.0f + static_cast<float>(i);
  }
  const BlockEncoding enc = BlockEncoding::Mixed(2, 2, B, D, nk, 0, ScaleFormat::kFp16);
  const HeadLayout l = GetHeadLayout(enc, D);
  std::vector<uint8_t> part(l.head_bytes, 0xcd);
  ASSERT_TRUE(reference::QuantizeLayer(enc, 1, D, k.data(), v.data(), part.data()).ok());
  const uint8_t* idx = part.data() + l.k_out_at;
  EXPECT_EQ(idx[0] | idx[1] << 8, kKeyColumnsMarker);
  EXPECT_EQ(idx[2] | idx[3] << 8, 3);
  const std::vector<uint8_t> masks = {0b10000101, 0b01000010, 0b00100000};  // ch 3, 9, 40
  const std::vector<uint8_t> channels = {3, 9, 40};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(idx[4 + i], masks[i]) << i;
    EXPECT_EQ(idx[7 + i], channels[i]) << i;
  }
  for (int i = 10; i < 2 * nk; ++i) EXPECT_EQ(idx[i], 0) << i;
  // Corrections column after column: (0,3) (2,3) (7,3) (1,9) (6,9) (5,40);
  // every other key is 0 (scale and zero 0), so each correction is x.
  const std::vector<float> order = {12.0f, 13.0f, 14.0f, 10.0f, 11.0f, 15.0f};
  for (int j = 0; j < nk; ++j) {
    EXPECT_EQ(part[l.k_out + 2 * j] | part[l.k_out + 2 * j + 1] << 8,
              FloatToHalf(order[j]))
        << j;
  }
  KeyColumns cols;
  ASSERT_TRUE(ReadKeyColumns(idx, B, D, nk, &cols));
  EXPECT_EQ(cols.n_cols, 3);
  EXPECT_EQ(cols.Mask(1), 0b01000010u);
  std::vector<float> k2(B * D), v2(B * D);
  ASSERT_TRUE(
      reference::DequantizeLayer(enc, 1, D, part.data(), k2.data(), v2.data()).ok());
  EXPECT_EQ(k2, k);

  // Five channels do not fit 12 index bytes: positions, ascending.
  k.assign(B * D, 0.0f);
  for (int c = 0; c < 5; ++c) k[c * D + 10 * c] = 20.0f;
  k[7 * D + 63] = 21.0f;
  ASSERT_TRUE(reference::QuantizeLayer(enc, 1, D, k.data(), v.data(), part.data()).ok());
  EXPECT_FALSE(ReadKeyColumns(idx, B, D, nk, &cols));
  EXPECT_EQ(idx[0] | idx[1] << 8, 0);  // token 0, channel 0
  EXPECT_EQ(idx[10] | idx[11] << 8, 7 * D + 63);
  ASSERT_TRUE(
      reference::DequantizeLayer(enc, 1, D, part.data(), k2.data(), v2.data()).ok());
  EXPECT_EQ(k2, k);
}

// Only the column layout the quantizer writes dequantizes; every other one
// is INVALID_ARGUMENT naming what is wrong.
TEST(Format2Test, DequantizeRejectsKeyColumnsNotAsTheFormatSays) {
  const int B = 8, D = 64, nk = 6;
  std::vector<float> k(B * D, 0.0f), v(B * D, 0.0f);
  for (int t : {0, 2, 7}) k[t * D + 3] = 10.0f;
  for (int t : {1, 6}) k[t * D + 9] = 11.0f;
  k[5 * D + 40] = 12.0f;
  const BlockEncoding enc = BlockEncoding::Mixed(2, 2, B, D, nk, 0, ScaleFormat::kFp16);
  const HeadLayout l = GetHeadLayout(enc, D);
  std::vector<uint8_t> good(l.head_bytes);
  ASSERT_TRUE(reference::QuantizeLayer(enc, 1, D, k.data(), v.data(), good.data()).ok());
  const size_t at = l.k_out_at;
  struct Corruption {
    std::string what;  // expected in the message
    size_t byte;
    uint8_t value;
  };
  const std::vector<Corruption> bad = {{"5 columns (1 to 4 fit)", at + 2, 5},
                                       {"0 columns", at + 2, 0},
                                       {"channel 64", at + 8, 64},
                                       {"channel 2", at + 8, 2},
                                       {"column 1 has no token", at + 5, 0},
                                       {"7 outliers marked, 6 stored", at + 4, 0x87},
                                       {"nonzero padding", at + 11, 1}};
  std::vector<float> k2(B * D), v2(B * D);
  for (const Corruption& c : bad) {
    std::vector<uint8_t> part = good;
    part[c.byte] = c.value;
    const absl::Status s =
        reference::DequantizeLayer(enc, 1, D, part.data(), k2.data(), v2.data());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_NE(s.message().find(c.what), std::string::npos) << s.message();
  }
  EXPECT_TRUE(
      reference::DequantizeLayer(enc, 1, D, good.data(), k2.data(), v2.data()).ok());
}

TEST(Format2Test, U8ScalesByHand) {
  // One head, B = 4, D = 4, 2-bit, G = 4, no outliers. Keys: channel c holds
  // c, c, c, c + 3 (range of the section [0, 6]): base 0, zero step
  // fp16(6/255), scale step fp16(6/765). Channel 0: zc 0, sc =
  // ceil(3 / 3 / ss) = ceil(1 / fp16(6/765)).
  const int B = 4, D = 4;
  std::vector<float> k(B * D), v(B * D, 0.0f);
  for (int t = 0; t < B; ++t) {
    for (int c = 0; c < D; ++c) k[t * D + c] = c + (t == 3 ? 3.0f : 0.0f);
  }
  const BlockEncoding enc = BlockEncoding::Mixed(2, 2, B, D, 0, 0, ScaleFormat::kU8);
  const HeadLayout l = GetHeadLayout(enc, D);
  std::vector<uint8_t> part(l.head_bytes);
  ASSERT_TRUE(reference::QuantizeLayer(enc, 1, D, k.data(), v.data(), part.data()).ok());
  const uint16_t zs = FloatToHalf(6.0f / 255.0f), ss = FloatToHalf(6.0f / 765.0f);
  EXPECT_EQ(part[l.k_range] | part[l.k_range + 1] << 8, 0);  // base 0
  EXPECT_EQ(part[l.k_range + 2] | part[l.k_range + 3] << 8, zs);
  EXPECT_EQ(part[l.k_range + 4] | part[l.k_range + 5] << 8, ss);
  for (int c = 0; c < D; ++c) {
    const float zc = std::floor(static_cast<float>(c) / HalfToFloat(zs));
    EXPECT_EQ(part[l.k_zero + c], static_cast<int>(std::min(255.0f, zc))) << c;
    const float zero = std::min(255.0f, zc) * HalfToFloat(zs);
    const float sc = std::ceil((c + 3.0f - zero) / 3.0f / HalfToFloat(ss));
    EXPECT_EQ(part[l.k_scale + c], static_cast<int>(std::min(255.0f, sc))) << c;
  }
  // Values all 0: the range is empty, every step 0, every code 0.
  EXPECT_EQ(part[l.v_range + 2] | part[l.v_range + 3] << 8, 0);
  for (size_t i = l.v_codes; i < l.v_scale; ++i) EXPECT_EQ(part[i], 0) << i;
  // Keys round trip within a step: codes 0 and 3 land on zero and
  // zero + 3 * scale, which bracket [c, c + 3].
  std::vector<float> k2(B * D), v2(B * D);
  ASSERT_TRUE(
      reference::DequantizeLayer(enc, 1, D, part.data(), k2.data(), v2.data()).ok());
  for (int i = 0; i < B * D; ++i) EXPECT_NEAR(k2[i], k[i], 0.05) << i;
  EXPECT_EQ(v2, v);
}

TEST(Format2Test, DequantizeRejectsOutlierPositionsOutsideTheBlock) {
  const int B = 4, D = 4;
  std::vector<float> k(B * D, 1.0f), v(B * D, 2.0f);
  const BlockEncoding enc = BlockEncoding::Mixed(2, 2, B, D, 1, 1, ScaleFormat::kU8);
  const HeadLayout l = GetHeadLayout(enc, D);
  std::vector<uint8_t> part(l.head_bytes);
  ASSERT_TRUE(reference::QuantizeLayer(enc, 1, D, k.data(), v.data(), part.data()).ok());
  part[l.v_out_at] = B * D;  // one past the section
  std::vector<float> k2(B * D), v2(B * D);
  EXPECT_EQ(
      reference::DequantizeLayer(enc, 1, D, part.data(), k2.data(), v2.data()).code(),
      absl::StatusCode::kInvalidArgument);
}

// Edge layers: the first and last E layers at edge_bits, the others as the
// encoding says; sizes and offsets per layer, kernels take only ForLayer().
TEST(Format2Test, EdgeLayersByHand) {
  BlockEncoding enc = BlockEncoding::Mixed(2, 2, 32, 8, 0, 0, ScaleFormat::kFp16);
  enc.edge_layers = 1;
  enc.edge_bits = 4;
  const CacheShape shape{5, 2, 8};
  ASSERT_TRUE(Validate(enc, shape).ok());
  const BlockEncoding edge = enc.ForLayer(0, 5), middle = enc.ForLayer(2, 5);
  EXPECT_EQ(edge, BlockEncoding::Quantized(4, 32, 8));
  EXPECT_EQ(middle, BlockEncoding::Quantized(2, 32, 8));
  EXPECT_EQ(enc.ForLayer(4, 5), edge);
  EXPECT_EQ(enc.ForLayer(3, 5), middle);
  // 2-bit head: 64 + 32 + 64 + 128 = 288 bytes; 4-bit: 128 + 32 + 128 + 128 = 416.
  EXPECT_EQ(LayerBytes(enc, shape, 0), 2u * 416);
  EXPECT_EQ(LayerBytes(enc, shape, 1), 2u * 288);
  EXPECT_EQ(LayerOffset(enc, shape, 2), 2u * 416 + 2 * 288);
  EXPECT_EQ(BlockBytes(enc, shape), 2u * (2 * 416 + 3 * 288));
  EXPECT_FALSE(enc.is_kivi());
  // A block encoding with edge layers is not a layer's: kernels refuse it.
  std::vector<float> k(2 * 32 * 8, 1.0f), v(k.size(), 1.0f);
  std::vector<uint8_t> part(LayerBytes(enc, shape, 0));
  EXPECT_EQ(reference::QuantizeLayer(enc, 2, 8, k.data(), v.data(), part.data()).code(),
            absl::StatusCode::kInvalidArgument);
  // Validate: edge bits must be 2, 4 or 8, both fields or neither, quantized.
  BlockEncoding bad = enc;
  bad.edge_bits = 3;
  EXPECT_EQ(Validate(bad, shape).code(), absl::StatusCode::kInvalidArgument);
  bad = enc;
  bad.edge_bits = 0;
  EXPECT_EQ(Validate(bad, shape).code(), absl::StatusCode::kInvalidArgument);
  bad = BlockEncoding::Fp16(32);
  bad.edge_layers = 1;
  bad.edge_bits = 4;
  EXPECT_EQ(Validate(bad, shape).code(), absl::StatusCode::kInvalidArgument);
}

class Format2VariantsTest : public ::testing::TestWithParam<const KernelSet*> {};

// The fp32 SIMD variants (and the integer ones, through them) attend over
// every one of these themselves; int_portable through the reference.
std::vector<BlockEncoding> Format2Encodings() {
  return {BlockEncoding::Mixed(2, 2, 32, 32, 82, 82, ScaleFormat::kFp16),
          BlockEncoding::Mixed(4, 4, 32, 8, 5, 5, ScaleFormat::kFp16),
          BlockEncoding::Mixed(8, 8, 16, 8, 0, 7, ScaleFormat::kFp16),
          BlockEncoding::Mixed(4, 2, 32, 8, 5, 5, ScaleFormat::kFp16),
          BlockEncoding::Mixed(2, 2, 16, 8, 3, 0, ScaleFormat::kU8),
          BlockEncoding::Mixed(2, 4, 32, 32, 82, 20, ScaleFormat::kU8),
          BlockEncoding::Mixed(8, 2, 32, 32, 0, 0, ScaleFormat::kFp16)};
}

TEST_P(Format2VariantsTest, QuantizeIsBitIdenticalToTheReference) {
  std::mt19937 rng(22);
  for (const BlockEncoding& enc : Format2Encodings()) {
    const int D = enc.group == 8 ? 8 : 128, H = 2, B = enc.block_tokens;
    const Planted p = PlantOutliers(rng, H, B, D, 4);
    std::vector<uint8_t> want(LayerBytes(enc, H, D)), got(want.size(), 0xcd);
    ASSERT_TRUE(
        reference::QuantizeLayer(enc, H, D, p.k.data(), p.v.data(), want.data()).ok());
    ASSERT_TRUE(
        GetParam()->quantize_layer(enc, H, D, p.k.data(), p.v.data(), got.data()).ok());
    EXPECT_EQ(got, want) << GetParam()->name;
  }
}

// Attention over blocks with outliers (and u8 scales, K/V bits apart) against
// fp64 attention over the dequantized cache (outliers code + correction there).
TEST_P(Format2VariantsTest, AttentionMatchesDequantizedFp64) {
  std::mt19937 rng(23);
  for (const BlockEncoding& enc : Format2Encodings()) {
    const int D = enc.group == 8 ? 8 : 128, n_kv = 2, n_heads = 4;
    for (const auto& [n, nq] : std::vector<std::pair<int, int>>{{70, 2}, {64, 2}}) {
      const int B = enc.block_tokens;
      if (nq * B > n) continue;
      testing::TestCache c = testing::BuildCache(rng, enc, n_kv, D, n, nq);
      const std::vector<float> q = testing::RandomKv(rng, n_heads, D, false);
      std::vector<float> out(static_cast<size_t>(n_heads) * D, NAN);
      const AttentionTask task{q.data(), &c.cache, out.data()};
      ASSERT_TRUE(
          GetParam()
              ->decode_attention(testing::Params(enc, n_heads, n_kv, D), {&task, 1})
              .ok());
      const std::vector<double> want = testing::NaiveAttention(c, n_heads, n_kv, D, q);
      for (size_t i = 0; i < out.size(); ++i) {
        ASSERT_NEAR(out[i], want[i], 3e-3 * (1 + std::fabs(want[i])))
            << GetParam()->name << " B " << B << " i " << i;
      }
    }
  }
}

// One sequence's cache for one layer: `n_quantized` blocks in `enc` (keys
// and values of test_util's RandomKv with `planted` entries per head section
// and tensor set to +-40, so the outliers matter) then fp16 blocks with the
// rest of n_tokens (the last one partial).
struct Format2Cache {
  std::vector<std::vector<uint8_t>> parts;
  SequenceCache cache;
};

Format2Cache BuildFormat2Cache(std::mt19937& rng, const BlockEncoding& enc, int n_kv,
                               int D, int n_tokens, int n_quantized, int planted) {
  const int B = enc.block_tokens;
  Format2Cache c;
  c.cache.n_tokens = n_tokens;
  const int n_blocks = (n_tokens + B - 1) / B;
  std::uniform_int_distribution<int> pos(0, B * D - 1);
  for (int b = 0; b < n_blocks; ++b) {
    const bool quantized = b < n_quantized;
    const BlockEncoding e = quantized ? enc : BlockEncoding::Fp16(B);
    std::vector<float> k = testing::RandomKv(rng, static_cast<size_t>(n_kv) * B, D, true);
    std::vector<float> v =
        testing::RandomKv(rng, static_cast<size_t>(n_kv) * B, D, false);
    for (int h = 0; h < n_kv && quantized; ++h) {
      for (int i = 0; i < planted; ++i) {
        k[static_cast<size_t>(h) * B * D + pos(rng)] = (i % 2) ? -40.0f : 40.0f;
        v[static_cast<size_t>(h) * B * D + pos(rng)] = (i % 2) ? 40.0f : -40.0f;
      }
    }
    const int rows = std::min(B, n_tokens - b * B);
    for (int h = 0; h < n_kv; ++h) {  // rows past the token count are zero
      const size_t end = static_cast<size_t>(h + 1) * B * D;
      std::fill(k.begin() + end - static_cast<size_t>(B - rows) * D, k.begin() + end,
                0.0f);
      std::fill(v.begin() + end - static_cast<size_t>(B - rows) * D, v.begin() + end,
                0.0f);
    }
    c.parts.emplace_back(LayerBytes(e, n_kv, D));
    EXPECT_TRUE(
        reference::QuantizeLayer(e, n_kv, D, k.data(), v.data(), c.parts.back().data())
            .ok());
  }
  for (int b = 0; b < n_blocks; ++b) {
    (b < n_quantized ? c.cache.quantized : c.cache.fp16).push_back(c.parts[b].data());
  }
  return c;
}

// `got` within 2e-3 of max |want| per head (kernels/README.md, "Tolerance").
void ExpectWithinTolerance(const std::vector<float>& got, const std::vector<float>& want,
                           int n_heads, int D, const std::string& what) {
  for (int h = 0; h < n_heads; ++h) {
    double max_abs = 0;
    for (int d = 0; d < D; ++d) {
      max_abs =
          std::max<double>(max_abs, std::fabs(want[static_cast<size_t>(h) * D + d]));
    }
    for (int d = 0; d < D; ++d) {
      const size_t i = static_cast<size_t>(h) * D + d;
      ASSERT_NEAR(got[i], want[i], 2e-3 * max_abs) << what << " head " << h << " d " << d;
    }
  }
}

// Whether head h of a quantized part holds its key outliers by column.
bool ByColumn(const BlockEncoding& enc, int D, const uint8_t* part, int h) {
  const HeadLayout l = GetHeadLayout(enc, D);
  KeyColumns cols;
  return ReadKeyColumns(part + h * l.head_bytes + l.k_out_at, enc.block_tokens, D,
                        enc.k_outliers, &cols);
}

std::string Describe(const BlockEncoding& e, int D, int R) {
  return absl::StrCat("kbits ", e.bits, " vbits ", e.v_bits, " B ", e.block_tokens, " G ",
                      e.group, " D ", D, " R ", R, " outliers ", e.k_outliers, "/",
                      e.v_outliers, " scales ", e.scales);
}

// A random query's attention over `cache` by the reference (*want) and by `k`
// (*got), one task each.
void AttendBoth(std::mt19937& rng, const KernelSet& k, const BlockEncoding& enc,
                const SequenceCache& cache, int n_heads, int n_kv, int D,
                std::vector<float>* want, std::vector<float>* got) {
  const std::vector<float> q = testing::RandomKv(rng, n_heads, D, false);
  want->assign(static_cast<size_t>(n_heads) * D, NAN);
  got->assign(want->size(), NAN);
  const AttentionParams p = testing::Params(enc, n_heads, n_kv, D);
  const AttentionTask ref_task{q.data(), &cache, want->data()};
  ASSERT_TRUE(reference::DecodeAttention(p, {&ref_task, 1}).ok());
  const AttentionTask task{q.data(), &cache, got->data()};
  ASSERT_TRUE(k.decode_attention(p, {&task, 1}).ok());
}

// Every combination of key bits, value bits, scale format and outliers (none,
// keys and values with partial chunks of 8, keys only) on shapes with
// head_dim 8 (u8 positions; GQA 2 as stories260K), powers of two and not
// (24, 40: G not a power of two either), GQA 1 to 8, 1-3 quantized blocks
// with or without an fp16 tail, against the reference.
TEST_P(Format2VariantsTest, AttentionMatchesTheReferenceOnEveryEncoding) {
  struct Shape {
    int D, B, G, R;
  };
  const std::vector<Shape> shapes = {{8, 32, 8, 4},   {8, 8, 8, 1},     {8, 32, 8, 2},
                                     {64, 16, 16, 3}, {128, 32, 32, 8}, {24, 8, 8, 4},
                                     {40, 16, 40, 2}};
  std::mt19937 rng(24);
  int run = 0;
  for (const Shape& s : shapes) {
    for (int kb : {2, 4, 8}) {
      for (int vb : {2, 4, 8}) {
        for (ScaleFormat sf : {ScaleFormat::kFp16, ScaleFormat::kU8}) {
          for (const auto& [nk, nv] :
               std::vector<std::pair<int, int>>{{0, 0}, {11, 19}, {3, 0}}) {
            const BlockEncoding enc = BlockEncoding::Mixed(kb, vb, s.B, s.G, nk, nv, sf);
            const int n_kv = 2, n_heads = n_kv * s.R, nq = 1 + run % 3;
            const int tail =
                (run / 3) % 2 == 0 ? 5 : 0;  // no fp16 block every other time
            const Format2Cache c = BuildFormat2Cache(rng, enc, n_kv, s.D, nq * s.B + tail,
                                                     nq, nk > 0 ? 9 : 0);
            const std::vector<float> q = testing::RandomKv(rng, n_heads, s.D, false);
            std::vector<float> want(static_cast<size_t>(n_heads) * s.D, NAN),
                got(want.size(), NAN);
            AttentionParams p = testing::Params(enc, n_heads, n_kv, s.D);
            const AttentionTask ref_task{q.data(), &c.cache, want.data()};
            ASSERT_TRUE(reference::DecodeAttention(p, {&ref_task, 1}).ok());
            p.n_threads = 1 + run++ % 2;
            const AttentionTask task{q.data(), &c.cache, got.data()};
            ASSERT_TRUE(GetParam()->decode_attention(p, {&task, 1}).ok());
            ExpectWithinTolerance(got, want, n_heads, s.D,
                                  GetParam()->name + " " + Describe(enc, s.D, s.R));
          }
        }
      }
    }
  }
}

// Positions wider than u16 (B * head_dim > 65536) and enough outliers for
// many chunks, over a context long enough for two chunks of blocks.
TEST_P(Format2VariantsTest, AttentionMatchesTheReferenceWithU32Positions) {
  std::mt19937 rng(25);
  const BlockEncoding enc =
      BlockEncoding::Mixed(2, 4, 520, 32, 700, 650, ScaleFormat::kU8);
  const int D = 128, n_kv = 2, n_heads = 4;
  ASSERT_EQ(GetHeadLayout(enc, D).index_bytes, 4u);
  const Format2Cache c = BuildFormat2Cache(rng, enc, n_kv, D, 2 * 520 + 3, 2, 400);
  std::vector<float> want, got;
  ASSERT_NO_FATAL_FAILURE(
      AttendBoth(rng, *GetParam(), enc, c.cache, n_heads, n_kv, D, &want, &got));
  ExpectWithinTolerance(got, want, n_heads, D, GetParam()->name);
}

// Outlier positions outside the section (a corrupt part) are ignored, as the
// reference's dequantization ignores them.
TEST_P(Format2VariantsTest, CorruptOutlierPositionsAreIgnoredLikeTheReference) {
  std::mt19937 rng(26);
  const BlockEncoding enc =
      BlockEncoding::Mixed(4, 2, 32, 32, 13, 13, ScaleFormat::kFp16);
  const int D = 64, n_kv = 1, n_heads = 4;
  Format2Cache c = BuildFormat2Cache(rng, enc, n_kv, D, 3 * 32, 2, 9);
  const HeadLayout l = GetHeadLayout(enc, D);
  ASSERT_EQ(l.index_bytes, 2u);
  for (uint8_t* part : {c.parts[0].data(), c.parts[1].data()}) {
    ASSERT_FALSE(ByColumn(enc, D, part, 0));  // positions, as this test needs
    for (size_t at : {l.k_out_at + 2 * 12, l.v_out_at + 2 * 3, l.v_out_at + 2 * 12}) {
      part[at] = 0xff;
      part[at + 1] = 0xff;
    }
  }
  std::vector<float> want, got;
  ASSERT_NO_FATAL_FAILURE(
      AttendBoth(rng, *GetParam(), enc, c.cache, n_heads, n_kv, D, &want, &got));
  ExpectWithinTolerance(got, want, n_heads, D, GetParam()->name);
}

// An outlier's code that is not the quantizer's clamped code (no kvq
// quantizer writes one, but a peer could): the block dequantizes to that
// code's value plus the correction, and every variant attends to exactly
// that, as the reference does (no kernel reads an outlier's code apart from
// the tiles that read every code).
TEST_P(Format2VariantsTest, OutliersAttendToTheirCodePlusTheirCorrection) {
  std::mt19937 rng(27);
  for (ScaleFormat sf : {ScaleFormat::kFp16, ScaleFormat::kU8}) {
    const BlockEncoding enc = BlockEncoding::Mixed(2, 2, 32, 32, 13, 13, sf);
    const int D = 64, n_kv = 1, n_heads = 4, B = 32;
    Format2Cache c = BuildFormat2Cache(rng, enc, n_kv, D, 3 * B, 2, 9);
    const HeadLayout l = GetHeadLayout(enc, D);
    ASSERT_EQ(l.index_bytes, 2u);
    for (int b = 0; b < 2; ++b) {
      uint8_t* part = c.parts[b].data();
      ASSERT_FALSE(ByColumn(enc, D, part, 0));  // positions, as this test reads
      for (int j = 0; j < enc.k_outliers + enc.v_outliers; ++j) {
        const bool key = j < enc.k_outliers;
        const size_t at =
            key ? l.k_out_at + 2 * j : l.v_out_at + 2 * (j - enc.k_outliers);
        const int pos = part[at] | (part[at + 1] << 8), t = pos / D, ch = pos % D;
        const int code =
            key ? ch * B + t : pos;  // channel-major keys, token-major values
        part[(key ? l.k_codes : l.v_codes) + code / 4] ^= 3 << (2 * (code % 4));
      }
    }
    std::vector<float> want, got;
    ASSERT_NO_FATAL_FAILURE(
        AttendBoth(rng, *GetParam(), enc, c.cache, n_heads, n_kv, D, &want, &got));
    ExpectWithinTolerance(got, want, n_heads, D, GetParam()->name);
  }
}

// Key outliers by column (planted in a few channels) and by position (each
// in a channel of its own, more than the index bytes hold as columns) on
// the same encodings: B 16, 32 and 64 with GQA 4 (AVX-512's vector path), B
// 8 and 24 and GQA 2 and 8 (the row path), against the reference.
TEST_P(Format2VariantsTest, AttentionMatchesTheReferenceByColumnAndByPosition) {
  struct Shape {
    int D, B, R, nk, nv;
  };
  const std::vector<Shape> shapes = {{128, 32, 4, 82, 82}, {128, 16, 4, 41, 20},
                                     {64, 64, 4, 40, 0},   {128, 8, 4, 24, 7},
                                     {64, 24, 2, 40, 11},  {128, 32, 8, 82, 82}};
  std::mt19937 rng(28);
  for (const Shape& s : shapes) {
    for (bool by_column : {true, false}) {
      const BlockEncoding enc =
          BlockEncoding::Mixed(2, 2, s.B, 32, s.nk, s.nv, ScaleFormat::kFp16);
      const int n_kv = 2, n_heads = n_kv * s.R, nq = 3;
      Format2Cache c;
      c.cache.n_tokens = nq * s.B + 7;
      for (int b = 0; b < nq + 1; ++b) {
        const BlockEncoding e = b < nq ? enc : BlockEncoding::Fp16(s.B);
        const size_t rows = static_cast<size_t>(n_kv) * s.B;
        std::vector<float> k = testing::RandomKv(rng, rows, s.D, false);
        const std::vector<float> v = testing::RandomKv(rng, rows, s.D, false);
        for (int h = 0; h < n_kv; ++h) {  // +-40: the nk farthest from their mean
          std::vector<int> slots;         // t * D + c
          const int n_channels = by_column ? s.nk / s.B + 2 : s.D;
          for (int ch = 0; ch < n_channels; ++ch) {
            const int channel = by_column ? (7 + 37 * ch) % s.D : ch;
            for (int t = 0; t < s.B; ++t) slots.push_back(t * s.D + channel);
          }
          std::shuffle(slots.begin(), slots.end(), rng);
          std::vector<int> used(s.D, 0);
          int planted = 0;
          for (int at : slots) {
            if (planted == s.nk) break;
            if (!by_column && used[at % s.D]++ > 0) continue;
            k[static_cast<size_t>(h) * s.B * s.D + at] = planted++ % 2 ? -40.0f : 40.0f;
          }
        }
        c.parts.emplace_back(LayerBytes(e, n_kv, s.D));
        ASSERT_TRUE(reference::QuantizeLayer(e, n_kv, s.D, k.data(), v.data(),
                                             c.parts.back().data())
                        .ok());
        if (b < nq) {
          for (int h = 0; h < n_kv; ++h) {
            ASSERT_EQ(ByColumn(enc, s.D, c.parts.back().data(), h), by_column)
                << Describe(enc, s.D, s.R) << " block " << b << " head " << h;
          }
        }
      }
      for (int b = 0; b < nq + 1; ++b) {
        (b < nq ? c.cache.quantized : c.cache.fp16).push_back(c.parts[b].data());
      }
      std::vector<float> want, got;
      ASSERT_NO_FATAL_FAILURE(
          AttendBoth(rng, *GetParam(), enc, c.cache, n_heads, n_kv, s.D, &want, &got));
      ExpectWithinTolerance(got, want, n_heads, s.D,
                            absl::StrCat(GetParam()->name, " ", Describe(enc, s.D, s.R),
                                         by_column ? " by column" : " by position"));
    }
  }
}

// Key columns a peer could send that no kvq quantizer writes: a count that
// does not fit (no key outliers used), a channel past head_dim (that column
// adds nothing), more marked tokens than outliers (the ones past the nk-th
// add nothing): every variant attends as the reference does.
TEST_P(Format2VariantsTest, CorruptKeyColumnsAreIgnoredLikeTheReference) {
  std::mt19937 rng(29);
  for (int B : {32, 8}) {
    const BlockEncoding enc =
        BlockEncoding::Mixed(2, 2, B, 32, 40, 10, ScaleFormat::kFp16);
    const int D = 128, n_kv = 1, n_heads = 4;
    const HeadLayout l = GetHeadLayout(enc, D);
    for (int corruption = 0; corruption < 3; ++corruption) {
      Format2Cache c;
      c.cache.n_tokens = 2 * B;
      for (int b = 0; b < 2; ++b) {
        const std::vector<float> k = testing::RandomKv(rng, B, D, true);
        const std::vector<float> v = testing::RandomKv(rng, B, D, false);
        c.parts.emplace_back(l.head_bytes);
        uint8_t* part = c.parts.back().data();
        ASSERT_TRUE(reference::QuantizeLayer(enc, 1, D, k.data(), v.data(), part).ok());
        ASSERT_TRUE(ByColumn(enc, D, part, 0));
        KeyColumns cols;
        ReadKeyColumns(part + l.k_out_at, B, D, enc.k_outliers, &cols);
        uint8_t* at = part + l.k_out_at;
        if (corruption == 0) {
          at[2] = static_cast<uint8_t>(MaxKeyColumns(B, enc.k_outliers) + 1);
        } else if (corruption == 1) {
          at[4 + cols.n_cols * (B / 8)] = 200;  // the first column's channel
        } else {
          at[4] = 0xff;  // the first column: all of its first 8 tokens
        }
        c.cache.quantized.push_back(part);
      }
      std::vector<float> want, got;
      ASSERT_NO_FATAL_FAILURE(
          AttendBoth(rng, *GetParam(), enc, c.cache, n_heads, n_kv, D, &want, &got));
      ExpectWithinTolerance(
          got, want, n_heads, D,
          absl::StrCat(GetParam()->name, " B ", B, " corruption ", corruption));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Available, Format2VariantsTest, ::testing::ValuesIn(Available()),
                         [](const ::testing::TestParamInfo<const KernelSet*>& info) {
                           return info.param->name;
                         });

}  // namespace
}  // namespace kvq::kernels
