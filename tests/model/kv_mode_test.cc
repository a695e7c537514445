#include "model/kv_mode.h"

#include "gtest/gtest.h"

namespace kvq::model {
namespace {

TEST(KvModeTest, ParsesShortForms) {
  absl::StatusOr<KvMode> m = ParseKvMode("fp32");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->kind, KvMode::Kind::kFp32);
  m = ParseKvMode("fp16");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->kind, KvMode::Kind::kFp16);
  for (int bits : {2, 4, 8}) {
    m = ParseKvMode("kivi" + std::to_string(bits));
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->kind, KvMode::Kind::kKivi);
    EXPECT_EQ(m->bits, bits);
    EXPECT_EQ(m->block, 32);
    EXPECT_EQ(m->residual, 128);
    absl::StatusOr<KvMode> r = m->Resolve(8);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->group, 8);  // min(32, head_dim)
    r = m->Resolve(128);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->group, 32);
  }
}

TEST(KvModeTest, ParsesFullForm) {
  absl::StatusOr<KvMode> m = ParseKvMode("kivi:bits=2,block=16,group=8,residual=32");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->bits, 2);
  EXPECT_EQ(m->block, 16);
  EXPECT_EQ(m->group, 8);
  EXPECT_EQ(m->residual, 32);
  EXPECT_EQ(m->ToString(), "kivi:bits=2,block=16,group=8,residual=32");
  m = ParseKvMode("kivi:bits=4");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->block, 32);
  EXPECT_EQ(m->residual, 128);
  absl::StatusOr<KvMode> again = ParseKvMode(m->Resolve(64)->ToString());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->group, 32);
}

TEST(KvModeTest, RejectsBadStrings) {
  for (const char* bad :
       {"", "fp8", "kivi", "kivi3", "kivi16", "KIVI2", "kivi:", "kivi:bits=3",
        "kivi:bits=2,bits=4", "kivi:bits=two", "kivi:bits=2,block=0", "kivi:colour=2",
        "kivi:bits=2,residual=33", "kivi:bits=2,residual=-32", "kivi:bits=2,,block=32",
        "kivi:bits=2,block=99999", "kivi:bits=2,group=-1", "fp16 "}) {
    absl::StatusOr<KvMode> m = ParseKvMode(bad);
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    if (!m.ok()) {
      EXPECT_NE(m.status().message().find("--kv"), std::string::npos) << bad;
    }
  }
}

TEST(KvModeTest, ResolveChecksGroupAndBlock) {
  absl::StatusOr<KvMode> m = ParseKvMode("kivi:bits=2,group=24");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->Resolve(64).status().code(), absl::StatusCode::kInvalidArgument);
  m = ParseKvMode("kivi:bits=2,block=3,residual=0");  // 3 * 2 bits is not whole bytes
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->Resolve(8).status().code(), absl::StatusCode::kInvalidArgument);
}

// EffectiveBits by hand, head_dim 8 (a kivi2 B32 G8 head section is 288
// bytes: key codes 64, key scales and zeros 16 + 16, value codes 64, value
// scales and zeros 64 + 64; i.e. 2304 bits for 32 tokens x 16 elements).
TEST(KvModeTest, EffectiveBitsByHand) {
  auto mode = [](const char* text) { return *ParseKvMode(text)->Resolve(8); };
  const kernels::CacheShape one{.n_layers = 1, .n_kv_heads = 1, .head_dim = 8};
  const kernels::CacheShape many{.n_layers = 5, .n_kv_heads = 4, .head_dim = 8};
  const KvMode r0 = mode("kivi:bits=2,block=32,group=8,residual=0");
  const KvMode r32 = mode("kivi:bits=2,block=32,group=8,residual=32");
  for (const kernels::CacheShape& shape : {one, many}) {
    EXPECT_DOUBLE_EQ(EffectiveBits(r0, shape, 32), 4.5);  // 3 for keys, 6 for values
    // One block + 16 fp16 tokens: (2304 + 16 * 16 * 16) / (48 * 16).
    EXPECT_DOUBLE_EQ(EffectiveBits(r0, shape, 48), 6400.0 / 768);
    EXPECT_DOUBLE_EQ(EffectiveBits(r32, shape, 48), 16.0);  // nothing quantized yet
    // (64 - 32) / 32 = 1 block quantized + 32 fp16 tokens.
    EXPECT_DOUBLE_EQ(EffectiveBits(r32, shape, 64), (2304.0 + 32 * 16 * 16) / 1024);
    EXPECT_DOUBLE_EQ(
        EffectiveBits(mode("kivi:bits=4,block=32,group=8,residual=0"), shape, 320),
        6.5);  // 4 + 32/32 keys, 4 + 32/8 values
    EXPECT_DOUBLE_EQ(EffectiveBits(mode("fp16"), shape, 7), 16.0);
    EXPECT_DOUBLE_EQ(EffectiveBits(mode("fp32"), shape, 7), 32.0);
    EXPECT_EQ(EffectiveBits(r0, shape, 0), 0.0);
    // Two sequences: total bits over total elements, not the mean of the two.
    const long both[] = {32, 48};
    EXPECT_DOUBLE_EQ(EffectiveBits(r0, shape, both), (2304.0 + 6400) / (512 + 768));
  }
  // Equal to kernels::BitsPerElement once the quantized blocks dominate.
  EXPECT_DOUBLE_EQ(EffectiveBits(r32, many, 32 * 1000 + 32),
                   (1000 * 2304.0 + 32 * 16 * 16) / (1001 * 512));
  EXPECT_NEAR(EffectiveBits(r32, many, 32 * 100000 + 32),
              kernels::BitsPerElement(r32.QuantizedEncoding(), 8), 1e-3);
}

TEST(KvModeTest, PureKivi) {
  EXPECT_TRUE(ParseKvMode("kivi2")->is_pure_kivi());
  EXPECT_TRUE(ParseKvMode("kivi:bits=8,block=16")->is_pure_kivi());
  EXPECT_FALSE(ParseKvMode("fp16")->is_pure_kivi());
  EXPECT_FALSE(ParseKvMode("fp32")->is_pure_kivi());
}

}  // namespace
}  // namespace kvq::model
