#include "kvstore/block_key.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace kvq::kvstore {
namespace {

using kernels::BlockEncoding;

constexpr uint64_t kModel = 0x0123456789abcdefULL;

// Token ids 1, then i*7 % 512 for i in 1..69: 70 tokens, two full blocks of
// 32 and a partial block of 6.
std::vector<int32_t> GoldenTokens() {
  std::vector<int32_t> t = {1};
  for (int i = 1; i < 70; ++i) t.push_back(i * 7 % 512);
  return t;
}

// The expected keys were computed independently of this code, with Python's
// ctypes calling libxxhash's XXH3_128bits over the byte encoding of
// kvstore/README.md (scripts/block_keys.py, format version 3; with 2 it
// prints the keys format 2 had). Changing them breaks every stored block and
// every process that disagrees: bump the seed string instead.
TEST(BlockKeyTest, GoldenChainQuantized) {
  EXPECT_EQ(ChainSeed().ToHex(), "8e72fcd603679ac5f6e202ad64f99e0b");
  const std::vector<BlockKey> keys =
      BlockKeyChain(GoldenTokens(), kModel, BlockEncoding::Quantized(2, 32, 32));
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0].ToHex(), "d568cc7665a48e2154f4ee7ed01dd5e2");
  EXPECT_EQ(keys[1].ToHex(), "b9dc88b4b22e958fd32333458fe5c3b8");
  EXPECT_EQ(keys[2].ToHex(), "fcee4abae8c274b6448f09d902b3b14d");
}

// Format 2's fields are hashed: 4-bit keys, 2-bit values, 82 key and 20
// value outliers, u8 scales.
TEST(BlockKeyTest, GoldenChainFormat2) {
  const std::vector<BlockKey> keys = BlockKeyChain(
      GoldenTokens(), kModel,
      BlockEncoding::Mixed(4, 2, 32, 32, 82, 20, kernels::ScaleFormat::kU8));
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0].ToHex(), "54611e27d7f30c8b7ff113f203ddc46d");
  EXPECT_EQ(keys[1].ToHex(), "70c164e57eca4f27d64ccf63a034b58d");
  EXPECT_EQ(keys[2].ToHex(), "5b3d032ec4e8726b040d791396aabec9");
  // Edge layers: 2-bit u8-scale blocks whose first and last layer are 4-bit.
  BlockEncoding edge =
      BlockEncoding::Mixed(2, 2, 32, 32, 0, 0, kernels::ScaleFormat::kU8);
  edge.edge_layers = 1;
  edge.edge_bits = 4;
  const std::vector<BlockKey> edge_keys = BlockKeyChain(GoldenTokens(), kModel, edge);
  ASSERT_EQ(edge_keys.size(), 3u);
  EXPECT_EQ(edge_keys[0].ToHex(), "adf4bef4772937746a38571a107e852a");
  EXPECT_EQ(edge_keys[1].ToHex(), "1deb15abf58955024797349a97c3c64b");
  EXPECT_EQ(edge_keys[2].ToHex(), "a43dc43cf87d8a3d56183d66e5ec6c75");
}

TEST(BlockKeyTest, GoldenChainFp16) {
  const std::vector<BlockKey> keys =
      BlockKeyChain(GoldenTokens(), kModel, BlockEncoding::Fp16(32));
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0].ToHex(), "1b50fe6b83187a4ccc2e53015b563836");
  EXPECT_EQ(keys[1].ToHex(), "d8096c00e420552d9bd9d5a2dc5e6558");
  EXPECT_EQ(keys[2].ToHex(), "eecb2e239635d56557fcc4ce470b3a7d");
}

TEST(BlockKeyTest, SharedPrefixSharesKeys) {
  std::vector<int32_t> a = GoldenTokens();
  std::vector<int32_t> b = a;
  b[40] += 1;  // differs in the second block
  const BlockEncoding enc = BlockEncoding::Quantized(2, 32, 32);
  const std::vector<BlockKey> ka = BlockKeyChain(a, kModel, enc);
  const std::vector<BlockKey> kb = BlockKeyChain(b, kModel, enc);
  EXPECT_EQ(ka[0], kb[0]);
  EXPECT_NE(ka[1], kb[1]);
  EXPECT_NE(ka[2], kb[2]);  // the chain carries the difference forward
}

TEST(BlockKeyTest, EveryInputChangesTheKey) {
  const std::vector<int32_t> t(32, 5);
  const BlockEncoding q2 = BlockEncoding::Quantized(2, 32, 32);
  const BlockKey base = NextBlockKey(ChainSeed(), t, kModel, q2);
  EXPECT_NE(base, NextBlockKey(BlockKey{1, 2}, t, kModel, q2));
  EXPECT_NE(base, NextBlockKey(ChainSeed(), t, kModel + 1, q2));
  EXPECT_NE(base,
            NextBlockKey(ChainSeed(), t, kModel, BlockEncoding::Quantized(4, 32, 32)));
  EXPECT_NE(base,
            NextBlockKey(ChainSeed(), t, kModel, BlockEncoding::Quantized(2, 32, 16)));
  EXPECT_NE(base, NextBlockKey(ChainSeed(), t, kModel, BlockEncoding::Fp16(32)));
  // A partial block never collides with the full block it is a prefix of.
  EXPECT_NE(base,
            NextBlockKey(ChainSeed(), absl::MakeSpan(t).subspan(0, 31), kModel, q2));
}

TEST(BlockKeyTest, Fp16IgnoresGroup) {
  const std::vector<int32_t> t(32, 5);
  BlockEncoding with_group = BlockEncoding::Fp16(32);
  with_group.group = 8;
  EXPECT_EQ(NextBlockKey(ChainSeed(), t, kModel, BlockEncoding::Fp16(32)),
            NextBlockKey(ChainSeed(), t, kModel, with_group));
}

TEST(BlockKeyTest, HexAndBytesRoundTrip) {
  const BlockKey k{0x0011223344556677ULL, 0x8899aabbccddeeffULL};
  EXPECT_EQ(k.ToHex(), "00112233445566778899aabbccddeeff");
  EXPECT_EQ(*BlockKey::FromHex(k.ToHex()), k);
  EXPECT_EQ(k.ToBytes(), std::string("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb"
                                     "\xcc\xdd\xee\xff",
                                     16));
  EXPECT_EQ(*BlockKey::FromBytes(k.ToBytes()), k);
  EXPECT_FALSE(BlockKey::FromHex("0011").ok());
  EXPECT_FALSE(BlockKey::FromHex("zz112233445566778899aabbccddeeff").ok());
  EXPECT_FALSE(BlockKey::FromBytes("short").ok());
}

TEST(BlockKeyTest, EmptyChain) {
  EXPECT_TRUE(BlockKeyChain({}, kModel, BlockEncoding::Fp16(32)).empty());
}

}  // namespace
}  // namespace kvq::kvstore
