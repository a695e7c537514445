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
// kvstore/README.md (scripts/block_keys.py, format version 4; with 3 it
// prints the keys format 3 had). Changing them breaks every stored block and
// every process that disagrees: bump the seed string instead.
TEST(BlockKeyTest, GoldenChainQuantized) {
  EXPECT_EQ(ChainSeed().ToHex(), "8e72fcd603679ac5f6e202ad64f99e0b");
  const std::vector<BlockKey> keys =
      BlockKeyChain(GoldenTokens(), kModel, BlockEncoding::Quantized(2, 32, 32));
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0].ToHex(), "0788298a01e8fb6e4ef426bd97b0a47d");
  EXPECT_EQ(keys[1].ToHex(), "f5d29814985d1310505bd230ff164fbc");
  EXPECT_EQ(keys[2].ToHex(), "980c56ae104a6403c1b4761cf876154f");
}

// Format 2's fields are hashed: 4-bit keys, 2-bit values, 82 key and 20
// value outliers, u8 scales.
TEST(BlockKeyTest, GoldenChainFormat2) {
  const std::vector<BlockKey> keys = BlockKeyChain(
      GoldenTokens(), kModel,
      BlockEncoding::Mixed(4, 2, 32, 32, 82, 20, kernels::ScaleFormat::kU8));
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0].ToHex(), "04ed3a99ac7ced341756079184c48a6b");
  EXPECT_EQ(keys[1].ToHex(), "38d102acd720ba2a9c62611affa401e2");
  EXPECT_EQ(keys[2].ToHex(), "0edb7edc6d8653ed060fab5baf33193e");
  // Edge layers: 2-bit u8-scale blocks whose first and last layer are 4-bit.
  BlockEncoding edge =
      BlockEncoding::Mixed(2, 2, 32, 32, 0, 0, kernels::ScaleFormat::kU8);
  edge.edge_layers = 1;
  edge.edge_bits = 4;
  const std::vector<BlockKey> edge_keys = BlockKeyChain(GoldenTokens(), kModel, edge);
  ASSERT_EQ(edge_keys.size(), 3u);
  EXPECT_EQ(edge_keys[0].ToHex(), "f7da5a632366345e957f03b692f79b9e");
  EXPECT_EQ(edge_keys[1].ToHex(), "24fa3438e629173a3f015d0c26f18c03");
  EXPECT_EQ(edge_keys[2].ToHex(), "9a5666048e542259adb27a4469940b61");
}

TEST(BlockKeyTest, GoldenChainFp16) {
  const std::vector<BlockKey> keys =
      BlockKeyChain(GoldenTokens(), kModel, BlockEncoding::Fp16(32));
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0].ToHex(), "17819cdaffe7ffbf78abec83c650e1f7");
  EXPECT_EQ(keys[1].ToHex(), "3998279d2b3908c02e5cc95bdc0efca5");
  EXPECT_EQ(keys[2].ToHex(), "cee7c3db586a969b349e165cc22286cf");
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
