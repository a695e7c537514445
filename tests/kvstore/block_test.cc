// CheckFiniteValues: a block's fp16 numbers (fp16 keys and values; quantized
// scales and zeros) must be finite, whatever its codes hold.
#include "kvstore/block.h"

#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "kernels/block_format.h"

namespace kvq::kvstore {
namespace {

BlockMeta Meta(kernels::BlockEncoding encoding) {
  BlockMeta m;
  m.encoding = encoding;
  m.n_layers = 2;
  m.n_kv_heads = 2;
  m.head_dim = 8;
  m.token_count = encoding.block_tokens;
  return m;
}

void PutHalf(std::string* bytes, size_t offset, uint16_t h) {
  std::memcpy(bytes->data() + offset, &h, 2);
}

TEST(CheckFiniteValuesTest, Fp16BlocksMustHoldFiniteNumbers) {
  const BlockMeta m = Meta(kernels::BlockEncoding::Fp16(4));
  std::string bytes(m.block_bytes(), '\0');
  for (size_t i = 0; i < bytes.size(); i += 2) PutHalf(&bytes, i, 0x3c00);  // 1.0
  EXPECT_TRUE(CheckFiniteValues(m, bytes).ok());
  std::string nan = bytes;
  PutHalf(&nan, nan.size() - 2, 0x7e00);  // the last value of the last head
  EXPECT_EQ(CheckFiniteValues(m, nan).code(), absl::StatusCode::kDataLoss);
  std::string inf = bytes;
  PutHalf(&inf, 0, 0xfc00);  // -Inf, the first key
  EXPECT_EQ(CheckFiniteValues(m, inf).code(), absl::StatusCode::kDataLoss);
}

TEST(CheckFiniteValuesTest, QuantizedBlocksCheckScalesAndZerosNotCodes) {
  const BlockMeta m = Meta(kernels::BlockEncoding::Quantized(2, 32, 4));
  const kernels::HeadLayout l = kernels::GetHeadLayout(m.encoding, m.head_dim);
  std::string bytes(m.block_bytes(), '\0');
  // Codes that read as NaN if taken for fp16 numbers: fine, they are codes.
  std::memset(bytes.data() + l.k_codes, 0xff, l.k_scale - l.k_codes);
  std::memset(bytes.data() + l.v_codes, 0xff, l.v_scale - l.v_codes);
  EXPECT_TRUE(CheckFiniteValues(m, bytes).ok());
  std::string bad_zero = bytes;
  PutHalf(&bad_zero, l.head_bytes + l.k_zero, 0x7c00);  // second head's key zero
  EXPECT_EQ(CheckFiniteValues(m, bad_zero).code(), absl::StatusCode::kDataLoss);
  std::string bad_scale = bytes;
  PutHalf(&bad_scale, 3 * l.head_bytes + l.v_scale + 2, 0x7c01);  // a value scale, NaN
  EXPECT_EQ(CheckFiniteValues(m, bad_scale).code(), absl::StatusCode::kDataLoss);
}

// Format 2: u8 scales and zeros are codes (any byte is fine); the fp16
// scale ranges and outlier values must be finite, and outlier positions
// inside the B x head_dim section.
TEST(CheckFiniteValuesTest, Format2ChecksRangesOutliersAndPositions) {
  const BlockMeta m =
      Meta(kernels::BlockEncoding::Mixed(4, 2, 64, 4, 3, 2, kernels::ScaleFormat::kU8));
  const kernels::HeadLayout l = kernels::GetHeadLayout(m.encoding, m.head_dim);
  std::string bytes(m.block_bytes(), '\0');
  for (size_t h = 0; h < bytes.size(); h += l.head_bytes) {
    std::memset(bytes.data() + h + l.k_scale, 0xff, l.v_codes - l.k_scale);
    std::memset(bytes.data() + h + l.v_scale, 0xff, l.k_range - l.v_scale);
  }
  EXPECT_TRUE(CheckFiniteValues(m, bytes).ok());
  std::string bad_range = bytes;
  PutHalf(&bad_range, l.head_bytes + l.v_range + 4, 0x7c00);  // a scale step
  EXPECT_EQ(CheckFiniteValues(m, bad_range).code(), absl::StatusCode::kDataLoss);
  std::string bad_outlier = bytes;
  PutHalf(&bad_outlier, l.v_out + 2, 0x7e00);  // the second value outlier
  EXPECT_EQ(CheckFiniteValues(m, bad_outlier).code(), absl::StatusCode::kDataLoss);
  // 64 x 8 entries: u16 positions; the second value outlier at 512 (one
  // past the section) then 511.
  ASSERT_EQ(l.index_bytes, 2u);
  std::string bad_position = bytes;
  PutHalf(&bad_position, l.head_bytes + l.v_out_at + 2, 512);
  EXPECT_EQ(CheckFiniteValues(m, bad_position).code(), absl::StatusCode::kDataLoss);
  PutHalf(&bad_position, l.head_bytes + l.v_out_at + 2, 511);
  EXPECT_TRUE(CheckFiniteValues(m, bad_position).ok());
}

// Edge layers: each layer is checked in its own layout, at its own offset.
TEST(CheckFiniteValuesTest, EdgeLayersUseEachLayersLayout) {
  kernels::BlockEncoding enc = kernels::BlockEncoding::Quantized(2, 32, 4);
  enc.edge_layers = 1;
  enc.edge_bits = 8;
  const BlockMeta m = Meta(enc);  // 2 layers: both edge layers, 8-bit
  BlockMeta three = m;
  three.n_layers = 3;  // layer 1 is 2-bit
  std::string bytes(three.block_bytes(), '\0');
  EXPECT_TRUE(CheckFiniteValues(three, bytes).ok());
  const kernels::HeadLayout mid = kernels::GetHeadLayout(enc.ForLayer(1, 3), 8);
  std::string bad = bytes;  // layer 1, KV head 1: its key zero
  PutHalf(&bad, three.layer_offset(1) + mid.head_bytes + mid.k_zero, 0x7c00);
  const absl::Status s = CheckFiniteValues(three, bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("layer 1, KV head 1"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace kvq::kvstore
