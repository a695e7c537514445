// Golden bytes of small hand-checked block parts at 2, 4 and 8 bits and in
// fp16. The layout is a contract between processes (kernels/README.md): a
// change that breaks these bytes must bump kFormatVersion and update them.
//
// Notation: fp16 constants are bit patterns, stored little-endian, so 1.0 =
// 0x3c00 is the bytes 00 3c. "rhe" is round half to even.
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/block_format.h"
#include "kernels/reference.h"

namespace kvq::kernels {
namespace {

static_assert(kFormatVersion == 4,
              "the golden bytes below are for format version 4 (KIVI encodings: "
              "the layout of version 1)");

std::vector<uint8_t> Quantize(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                              const std::vector<float>& k, const std::vector<float>& v) {
  std::vector<uint8_t> out(LayerBytes(enc, n_kv_heads, head_dim), 0xee);
  EXPECT_TRUE(
      reference::QuantizeLayer(enc, n_kv_heads, head_dim, k.data(), v.data(), out.data())
          .ok());
  return out;
}

TEST(GoldenTest, TwoBits) {
  // B = 4 tokens, head_dim = 4, G = 2, one KV head. K and V are [token][channel].
  const BlockEncoding enc = BlockEncoding::Quantized(2, 4, 2);
  const std::vector<float> k = {
      0, 5, -1.0, 10,  //
      1, 5, 0.5,  16,  //
      2, 5, -0.5, 12,  //
      3, 5, 2.0,  4,   //
  };
  const std::vector<float> v = {
      0,  3,  1,    1,     //
      2,  -4, 0.25, 1,     //
      -2, -2, 6,    0,     //
      1,  2,  0,    0.75,  //
  };
  const std::vector<uint8_t> want = {
      // k_codes [channel][1 byte]: token t at bits [2t, 2t+2).
      // c0: 0,1,2,3 -> scale 3/3 = 1, zero 0, codes 0,1,2,3: 0|1<<2|2<<4|3<<6 = 0xe4.
      // c1: constant 5 -> scale 0, zero 5 (0x4500), codes 0.
      // c2: -1,.5,-.5,2 -> scale 1, zero -1 (0xbc00); (x+1)/1 = 0,1.5,.5,3 -> rhe
      //     0,2,0,3 (ties to even): 2<<2|3<<6 = 0xc8.
      // c3: 10,16,12,4 -> scale 12/3 = 4 (0x4400), zero 4; (x-4)/4 = 1.5,3,2,0 ->
      //     2,3,2,0: 2|3<<2|2<<4 = 0x2e.
      0xe4, 0x00, 0xc8, 0x2e,
      // k_scale [channel]: 1, 0, 1, 4.
      0x00, 0x3c, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x44,
      // k_zero [channel]: 0, 5, -1, 4.
      0x00, 0x00, 0x00, 0x45, 0x00, 0xbc, 0x00, 0x44,
      // v_codes [token][1 byte]: channel c at bits [2c, 2c+2); groups {c0,c1}, {c2,c3}.
      // t0: {0,3} scale 1 zero 0 codes 0,3; {1,1} scale 0 zero 1: 3<<2 = 0x0c.
      // t1: {2,-4} scale 6/3 = 2 zero -4: codes 3,0; {.25,1} scale .75/3 = .25,
      //     zero .25: codes 0,3: 3|3<<6 = 0xc3.
      // t2: {-2,-2} scale 0 zero -2; {6,0} scale 2 zero 0: codes 3,0: 3<<4 = 0x30.
      // t3: {1,2} scale fp16(1/3) = 0x3555 = 0.333251953125, zero 1: codes 0 and
      //     rhe(1/0.333251953125 = 3.0007) = 3; {0,.75} scale .25 zero 0: codes 0,3:
      //     3<<2|3<<6 = 0xcc.
      0x0c, 0xc3, 0x30, 0xcc,
      // v_scale [token][group]: 1,0 | 2,.25 | 0,2 | 0x3555,.25.
      0x00, 0x3c, 0x00, 0x00, 0x00, 0x40, 0x00, 0x34,  //
      0x00, 0x00, 0x00, 0x40, 0x55, 0x35, 0x00, 0x34,  //
      // v_zero [token][group]: 0,1 | -4,.25 | -2,0 | 1,0.
      0x00, 0x00, 0x00, 0x3c, 0x00, 0xc4, 0x00, 0x34,  //
      0x00, 0xc0, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00,  //
  };
  EXPECT_EQ(Quantize(enc, 1, 4, k, v), want);

  // Dequantized: code * scale + zero.
  std::vector<float> dk(16), dv(16);
  ASSERT_TRUE(
      reference::DequantizeLayer(enc, 1, 4, want.data(), dk.data(), dv.data()).ok());
  EXPECT_EQ(dk[1 * 4 + 2], 1.0f);   // code 2 * 1 - 1 (0.5 tied down to code 1.5 -> 2)
  EXPECT_EQ(dk[0 * 4 + 3], 12.0f);  // code 2 * 4 + 4
  EXPECT_EQ(dk[2 * 4 + 1], 5.0f);   // constant channel: zero
  EXPECT_EQ(dv[3 * 4 + 1], 3 * 0.333251953125f + 1);
  EXPECT_EQ(dv[1 * 4 + 0], 2.0f);
}

TEST(GoldenTest, FourBits) {
  // B = 4, head_dim = 2, G = 2 (one value group per token), one KV head.
  const BlockEncoding enc = BlockEncoding::Quantized(4, 4, 2);
  const std::vector<float> k = {0, -3, 15, 0, 7.5, 27, 8.5, 1.5};
  const std::vector<float> v = {1, 1, 0, 30, 0.1f, 1, -0.5, -0.5};
  const std::vector<uint8_t> want = {
      // k_codes [channel][2 bytes]: token t in nibble t%2 of byte t/2, low first.
      // c0: 0,15,7.5,8.5 -> scale 15/15 = 1, zero 0: codes 0,15,8,8 (7.5 and 8.5
      //     both tie to the even 8): 0xf0, 0x88.
      // c1: -3,0,27,1.5 -> scale 30/15 = 2, zero -3 (0xc200): (x+3)/2 =
      //     0,1.5,15,2.25 -> 0,2,15,2: 0x20, 0x2f.
      0xf0,
      0x88,
      0x20,
      0x2f,
      // k_scale: 1, 2. k_zero: 0, -3.
      0x00,
      0x3c,
      0x00,
      0x40,
      0x00,
      0x00,
      0x00,
      0xc2,
      // v_codes [token][1 byte]:
      // t0 {1,1}: scale 0, zero 1, codes 0.            -> 0x00
      // t1 {0,30}: scale 2, zero 0, codes 0,15.        -> 0xf0
      // t2 {0.1,1}: 0.1 is first rounded to fp16 0x2e66 = 0.0999755859375;
      //     scale fp16(0.9000244140625/15 = 0.0600016) = 0x2bae = 0.05999755859375,
      //     codes 0, rhe(15.001) = 15.                 -> 0xf0
      // t3 {-.5,-.5}: scale 0, zero -0.5 (0xb800).     -> 0x00
      0x00,
      0xf0,
      0xf0,
      0x00,
      // v_scale [token]: 0, 2, 0x2bae, 0.
      0x00,
      0x00,
      0x00,
      0x40,
      0xae,
      0x2b,
      0x00,
      0x00,
      // v_zero [token]: 1, 0, 0x2e66, -0.5.
      0x00,
      0x3c,
      0x00,
      0x00,
      0x66,
      0x2e,
      0x00,
      0xb8,
  };
  EXPECT_EQ(Quantize(enc, 1, 2, k, v), want);
}

TEST(GoldenTest, EightBits) {
  // B = 4, head_dim = 2, G = 2, one KV head.
  const BlockEncoding enc = BlockEncoding::Quantized(8, 4, 2);
  const std::vector<float> k = {0, -1, 100.5, 0, 255, 1, 101.5, -1};
  const std::vector<float> v = {0.5, 0.5, -255, 255, 3, 4, -0.0f, 0.0f};
  const std::vector<uint8_t> want = {
      // k_codes [channel][4 bytes], one byte per token.
      // c0: 0,100.5,255,101.5 -> scale 1, zero 0: codes 0,100,255,102 (ties to even).
      0x00,
      0x64,
      0xff,
      0x66,
      // c1: -1,0,1,-1 -> scale fp16(2/255 = 0.0078431) = 0x2004 = 0.00784301757812,
      //     zero -1: codes 0, rhe(127.502) = 128, rhe(255.004) = 255, 0.
      0x00,
      0x80,
      0xff,
      0x00,
      // k_scale: 1, 0x2004. k_zero: 0, -1.
      0x00,
      0x3c,
      0x04,
      0x20,
      0x00,
      0x00,
      0x00,
      0xbc,
      // v_codes [token][2 bytes]:
      // t0 {.5,.5}: scale 0, zero 0.5 (0x3800): 0,0.
      // t1 {-255,255}: scale 510/255 = 2, zero -255 (0xdbf8): 0,255.
      // t2 {3,4}: scale fp16(1/255) = 0x1c04 = 0.00392150878906, zero 3 (0x4200):
      //     codes 0, rhe(255.005) = 255.
      // t3 {-0,+0}: both zeros count as +0: scale 0, zero +0 (0x0000): 0,0.
      0x00,
      0x00,
      0x00,
      0xff,
      0x00,
      0xff,
      0x00,
      0x00,
      // v_scale [token]: 0, 2, 0x1c04, 0.
      0x00,
      0x00,
      0x00,
      0x40,
      0x04,
      0x1c,
      0x00,
      0x00,
      // v_zero [token]: 0.5, -255, 3, +0.
      0x00,
      0x38,
      0xf8,
      0xdb,
      0x00,
      0x42,
      0x00,
      0x00,
  };
  EXPECT_EQ(Quantize(enc, 1, 2, k, v), want);
}

TEST(GoldenTest, Fp16) {
  // B = 2, head_dim = 2: k then v, each [token][channel] fp16.
  const BlockEncoding enc = BlockEncoding::Fp16(2);
  const std::vector<float> k = {1, -2, 0.1f, 65504};
  const std::vector<float> v = {-0.0f, 0x1p-24f, 0.5, 3};
  const std::vector<uint8_t> want = {
      0x00, 0x3c, 0x00, 0xc0, 0x66, 0x2e, 0xff, 0x7b,  // k: 1, -2, 0.1, 65504
      0x00, 0x80, 0x01, 0x00, 0x00, 0x38, 0x00, 0x42,  // v: -0, 2^-24, 0.5, 3
  };
  EXPECT_EQ(Quantize(enc, 1, 2, k, v), want);
}

TEST(GoldenTest, HeadsFollowEachOther) {
  // A two-head part is head 0's bytes then head 1's.
  const BlockEncoding enc = BlockEncoding::Quantized(2, 4, 2);
  const std::vector<float> k0 = {0, 5, -1, 10, 1, 5, .5, 16, 2, 5, -.5, 12, 3, 5, 2, 4};
  const std::vector<float> v0 = {0, 3, 1, 1, 2, -4, .25, 1, -2, -2, 6, 0, 1, 2, 0, .75};
  std::vector<float> k1(16), v1(16);
  for (int i = 0; i < 16; ++i) k1[i] = 0.5f * i - 3, v1[i] = (i * 7 % 5) - 2.0f;
  std::vector<float> k = k0, v = v0;
  k.insert(k.end(), k1.begin(), k1.end());
  v.insert(v.end(), v1.begin(), v1.end());
  std::vector<uint8_t> want = Quantize(enc, 1, 4, k0, v0);
  const std::vector<uint8_t> head1 = Quantize(enc, 1, 4, k1, v1);
  want.insert(want.end(), head1.begin(), head1.end());
  EXPECT_EQ(Quantize(enc, 2, 4, k, v), want);
}

}  // namespace
}  // namespace kvq::kernels
