// Validate() and the byte sizes of kernels/block_format.h.
#include "kernels/block_format.h"

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace kvq::kernels {
namespace {

constexpr CacheShape kShape{32, 8, 128};

TEST(BlockFormatTest, AcceptsSupportedEncodings) {
  for (int bits : {2, 4, 8}) {
    for (int group : {1, 8, 32, 64, 128}) {
      EXPECT_TRUE(Validate(BlockEncoding::Quantized(bits, 32, group), kShape).ok())
          << bits << " " << group;
    }
  }
  EXPECT_TRUE(Validate(BlockEncoding::Fp16(32), kShape).ok());
  EXPECT_TRUE(Validate(BlockEncoding::Fp16(1), kShape).ok());
  EXPECT_TRUE(Validate(BlockEncoding::Quantized(8, 1, 8), CacheShape{5, 4, 8}).ok());
  EXPECT_TRUE(Validate(BlockEncoding::Quantized(2, 16, 8), CacheShape{0, 4, 8}).ok());
}

TEST(BlockFormatTest, RejectsBadEncodingsAndShapes) {
  auto bad = [](BlockEncoding enc, CacheShape shape) {
    return Validate(enc, shape).code() == absl::StatusCode::kInvalidArgument;
  };
  BlockEncoding wrong_version = BlockEncoding::Quantized(2, 32, 32);
  wrong_version.version = kFormatVersion + 1;
  EXPECT_TRUE(bad(wrong_version, kShape));
  for (int bits : {0, 1, 3, 5, 7, 12, 32}) {
    EXPECT_TRUE(bad(BlockEncoding::Quantized(bits, 32, 32), kShape)) << bits;
  }
  EXPECT_TRUE(bad(BlockEncoding::Quantized(2, 0, 32), kShape));
  EXPECT_TRUE(bad(BlockEncoding::Fp16(kMaxBlockTokens + 1), kShape));
  EXPECT_TRUE(bad(BlockEncoding::Quantized(2, 30, 32), kShape));  // 30 tokens * 2 bits
  EXPECT_TRUE(bad(BlockEncoding::Quantized(4, 3, 32), kShape));   // not whole bytes
  EXPECT_TRUE(bad(BlockEncoding::Quantized(2, 32, 0), kShape));   // G = 0
  EXPECT_TRUE(
      bad(BlockEncoding::Quantized(2, 32, 48), kShape));  // 48 does not divide 128
  EXPECT_TRUE(bad(BlockEncoding::Quantized(2, 32, 256), kShape));
  EXPECT_TRUE(bad(BlockEncoding::Quantized(2, 32, 2), CacheShape{1, 1, 6}));  // 6*2 bits
  EXPECT_TRUE(bad(BlockEncoding{kFormatVersion, 32, 16, 8}, kShape));  // fp16 with G
  EXPECT_TRUE(bad(BlockEncoding::Fp16(32), CacheShape{-1, 8, 128}));
  EXPECT_TRUE(bad(BlockEncoding::Fp16(32), CacheShape{kMaxLayers + 1, 8, 128}));
  EXPECT_TRUE(bad(BlockEncoding::Fp16(32), CacheShape{32, 0, 128}));
  EXPECT_TRUE(bad(BlockEncoding::Fp16(32), CacheShape{32, kMaxKvHeads + 1, 128}));
  EXPECT_TRUE(bad(BlockEncoding::Fp16(32), CacheShape{32, 8, 0}));
  EXPECT_TRUE(bad(BlockEncoding::Fp16(32), CacheShape{32, 8, kMaxHeadDim + 1}));
}

TEST(BlockFormatTest, SizesFollowTheLayout) {
  // 2-bit, B = 32, G = 32, head_dim 128: k codes 128*8, k scale/zero 2*256,
  // v codes 32*32, v scale/zero 2*32*4*2.
  const BlockEncoding enc = BlockEncoding::Quantized(2, 32, 32);
  const HeadLayout l = GetHeadLayout(enc, 128);
  EXPECT_EQ(l.k_codes, 0u);
  EXPECT_EQ(l.k_scale, 1024u);
  EXPECT_EQ(l.k_zero, 1024u + 256);
  EXPECT_EQ(l.v_codes, 1024u + 512);
  EXPECT_EQ(l.v_scale, 2560u);
  EXPECT_EQ(l.v_zero, 2560u + 256);
  EXPECT_EQ(l.head_bytes, 3072u);
  EXPECT_EQ(LayerBytes(enc, 8, 128), 8u * 3072);
  EXPECT_EQ(BlockBytes(enc, kShape), 32u * 8 * 3072);
  const HeadLayout f = GetHeadLayout(BlockEncoding::Fp16(32), 128);
  EXPECT_EQ(f.k, 0u);
  EXPECT_EQ(f.v, 32u * 128 * 2);
  EXPECT_EQ(f.head_bytes, 2u * 32 * 128 * 2);
}

TEST(BlockFormatTest, BitsPerElementMatchesDesign) {
  // Design 3.5: (b + 32/B) for keys and (b + 32/G) for values, averaged.
  for (int bits : {2, 4, 8}) {
    for (int B : {16, 32, 64}) {
      for (int G : {8, 32, 128}) {
        const double want = ((bits + 32.0 / B) + (bits + 32.0 / G)) / 2;
        EXPECT_DOUBLE_EQ(BitsPerElement(BlockEncoding::Quantized(bits, B, G), 128), want);
      }
    }
  }
  EXPECT_DOUBLE_EQ(BitsPerElement(BlockEncoding::Fp16(32), 128), 16.0);
}

}  // namespace
}  // namespace kvq::kernels
