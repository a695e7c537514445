#include "services/serving/kv_plan.h"

#include <vector>

#include "gtest/gtest.h"
#include "kvstore/block_key.h"

namespace kvq::serving {
namespace {

model::KvMode Mode(const char* text) {
  auto m = model::ParseKvMode(text);
  EXPECT_TRUE(m.ok()) << m.status();
  auto r = m->Resolve(8);
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

std::vector<int> Bits(const std::vector<kernels::BlockEncoding>& plan) {
  std::vector<int> out;
  for (const auto& e : plan) out.push_back(e.bits);
  return out;
}

TEST(KvPlanTest, ResidualRuleOverTheWholePrompt) {
  // B = 32. R = 0: a block is quantized once full.
  EXPECT_EQ(Bits(BlockPlan(Mode("kivi:bits=2,residual=0"), 100)),
            (std::vector<int>{2, 2, 2, 16}));
  EXPECT_EQ(Bits(BlockPlan(Mode("kivi:bits=2,residual=0"), 96)),
            (std::vector<int>{2, 2, 2}));
  // R = 32: block b needs (b+1)*32 + 32 tokens.
  EXPECT_EQ(Bits(BlockPlan(Mode("kivi:bits=2,residual=32"), 100)),
            (std::vector<int>{2, 2, 16, 16}));
  EXPECT_EQ(Bits(BlockPlan(Mode("kivi:bits=2,residual=32"), 95)),
            (std::vector<int>{2, 16, 16}));
  // R longer than the prompt, and fp16: nothing quantized.
  EXPECT_EQ(Bits(BlockPlan(Mode("kivi:bits=2,residual=512"), 100)),
            (std::vector<int>{16, 16, 16, 16}));
  EXPECT_EQ(Bits(BlockPlan(Mode("fp16"), 33)), (std::vector<int>{16, 16}));
  EXPECT_TRUE(BlockPlan(Mode("fp16"), 0).empty());
  // Sinks: the first blocks stay fp16; the rule applies to the others.
  EXPECT_EQ(Bits(BlockPlan(Mode("kivi:bits=2,residual=0,sinks=32"), 100)),
            (std::vector<int>{16, 2, 2, 16}));
  EXPECT_EQ(Bits(BlockPlan(Mode("kivi:bits=2,residual=32,sinks=40"), 160)),
            (std::vector<int>{16, 16, 2, 2, 16}));
  // The plan's quantized encoding is the mode's whole format 2 encoding.
  const std::vector<kernels::BlockEncoding> plan =
      BlockPlan(Mode("kivi:kbits=4,vbits=2,outliers=0.02,scales=u8,residual=0"), 64);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].v_bits, 2);
  EXPECT_GT(plan[0].k_outliers, 0);
  EXPECT_EQ(plan[0].scales, 1);
}

TEST(KvPlanTest, KeysChainWithEachBlocksEncoding) {
  std::vector<int> tokens(70);
  for (int i = 0; i < 70; ++i) tokens[i] = i + 1;
  const auto plan = BlockPlan(Mode("kivi:bits=2,residual=32"), 70);  // 2, 16, 16
  const auto keys = PlanKeys(tokens, 77, plan);
  ASSERT_EQ(keys.size(), 3u);
  std::vector<int32_t> ids(tokens.begin(), tokens.end());
  const auto k0 = kvstore::NextBlockKey(
      kvstore::ChainSeed(), absl::MakeConstSpan(ids).subspan(0, 32), 77, plan[0]);
  const auto k1 =
      kvstore::NextBlockKey(k0, absl::MakeConstSpan(ids).subspan(32, 32), 77, plan[1]);
  const auto k2 =
      kvstore::NextBlockKey(k1, absl::MakeConstSpan(ids).subspan(64, 6), 77, plan[2]);
  EXPECT_EQ(keys[0], k0);
  EXPECT_EQ(keys[1], k1);
  EXPECT_EQ(keys[2], k2);
  // A prompt sharing the first 64 tokens shares those two blocks' keys when
  // their encodings agree.
  std::vector<int> longer = tokens;
  longer.resize(90, 5);
  const auto plan2 = BlockPlan(Mode("kivi:bits=2,residual=32"), 90);  // 2, 16, 16
  const auto keys2 = PlanKeys(longer, 77, plan2);
  EXPECT_EQ(keys2[0], keys[0]);
  EXPECT_EQ(keys2[1], keys[1]);
  EXPECT_NE(keys2[2], keys[2]);
}

TEST(KvPlanTest, CacheBytesCountWholeBlocks) {
  const model::KvCacheShape shape{5, 8, 4, 8};
  // fp16 block: 2 (K,V) * 32 tokens * 8 dims * 2 bytes * 4 heads * 5 layers.
  const uint64_t fp16_block = 2 * 32 * 8 * 2 * 4 * 5;
  EXPECT_EQ(CacheBytes(Mode("fp16"), shape, 33), 2 * fp16_block);
  EXPECT_EQ(Fp16Bytes(shape, 33), 2u * 33 * 8 * 2 * 4 * 5);
  const auto kivi = Mode("kivi:bits=2,residual=0");
  const uint64_t q_block =
      kernels::BlockBytes(kivi.QuantizedEncoding(), kernels::CacheShape{5, 4, 8});
  EXPECT_EQ(CacheBytes(kivi, shape, 70), 2 * q_block + fp16_block);
  EXPECT_LT(q_block, fp16_block);
}

}  // namespace
}  // namespace kvq::serving
