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

TEST(KvModeTest, ParsesFormat2Fields) {
  absl::StatusOr<KvMode> m =
      ParseKvMode("kivi:kbits=4,vbits=2,outliers=0.02,sinks=32,scales=u8,residual=0");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->bits, 4);
  EXPECT_EQ(m->value_bits(), 2);
  EXPECT_EQ(m->k_outliers, 0.02);
  EXPECT_EQ(m->v_outliers, 0.02);
  EXPECT_EQ(m->sinks, 32);
  EXPECT_EQ(m->scales, kernels::ScaleFormat::kU8);
  EXPECT_FALSE(m->IsPureKivi());
  absl::StatusOr<KvMode> r = m->Resolve(8);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->k_outlier_count, 5);  // round(0.02 * 32 * 8) = round(5.12)
  EXPECT_EQ(r->v_outlier_count, 5);
  const kernels::BlockEncoding enc = r->QuantizedEncoding();
  EXPECT_EQ(enc.bits, 4);
  EXPECT_EQ(enc.v_bits, 2);
  EXPECT_EQ(enc.k_outliers, 5);
  EXPECT_EQ(enc.scales, 1);
  EXPECT_EQ(r->ToString(),
            "kivi:kbits=4,vbits=2,block=32,group=8,residual=0,outliers=0.02,scales=u8,"
            "sinks=32");
  // bits names both; kbits or vbits override one of them.
  m = ParseKvMode("kivi:bits=8,vbits=4");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->bits, 8);
  EXPECT_EQ(m->value_bits(), 4);
  m = ParseKvMode("kivi:bits=8,kbits=2");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->bits, 2);
  EXPECT_EQ(m->value_bits(), 8);
  m = ParseKvMode("kivi:kbits=4");  // values keep the default 2 bits
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->value_bits(), 2);
  // Equal key and value bits print as bits=; koutliers/voutliers apart.
  m = ParseKvMode("kivi:kbits=4,vbits=4,koutliers=0.05,group=8");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->k_outliers == 0.05 && m->v_outliers == 0);
  EXPECT_EQ(m->ToString(), "kivi:bits=4,block=32,group=8,residual=128,koutliers=0.05");
  // Sinks round up to whole blocks.
  m = ParseKvMode("kivi:block=16,residual=0,sinks=20");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->sinks, 32);
  EXPECT_EQ(m->sink_blocks(), 2);
  // The KIVI forms print as before and stay pure KIVI.
  m = ParseKvMode("kivi2");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->IsPureKivi());
  EXPECT_EQ(m->Resolve(8)->ToString(), "kivi:bits=2,block=32,group=8,residual=128");
}

TEST(KvModeTest, CanonicalFormParsesBackToTheSameMode) {
  for (const char* text :
       {"kivi2", "kivi:bits=4,block=16,group=4,residual=32",
        "kivi:kbits=8,vbits=2,outliers=0.01", "kivi:voutliers=0.1,scales=u8",
        "kivi:koutliers=0.03,voutliers=0.01,sinks=64,residual=64",
        "kivi:bits=2,scales=u8,edge_layers=1,edge_bits=8", "fp16", "fp32"}) {
    absl::StatusOr<KvMode> m = ParseKvMode(text);
    ASSERT_TRUE(m.ok()) << text << ": " << m.status();
    absl::StatusOr<KvMode> r = m->Resolve(8);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status();
    absl::StatusOr<KvMode> again = ParseKvMode(r->ToString());
    ASSERT_TRUE(again.ok()) << r->ToString() << ": " << again.status();
    EXPECT_EQ(again->ToString(), r->ToString()) << text;
    EXPECT_EQ(again->Resolve(8)->QuantizedEncoding(), r->QuantizedEncoding()) << text;
  }
}

TEST(KvModeTest, RejectsBadFormat2Fields) {
  const struct {
    const char* text;
    const char* why;
  } cases[] = {
      {"kivi:kbits=3", "key bits must be 2, 4 or 8"},
      {"kivi:vbits=16", "value bits must be 2, 4 or 8"},
      {"kivi:kbits=4,kbits=2", "kbits given twice"},
      {"kivi:outliers=0.6", "outliers must be a fraction in [0, 0.5]"},
      {"kivi:outliers=-0.1", "outliers must be a fraction"},
      {"kivi:outliers=lots", "outliers must be a fraction"},
      {"kivi:outliers=0.01,koutliers=0.02", "koutliers given with outliers"},
      {"kivi:voutliers=0.01,outliers=0.02", "outliers given with koutliers or voutliers"},
      {"kivi:scales=u4", "scales must be fp16 or u8"},
      {"kivi:sinks=-32", "sinks must be >= 0"},
      {"kivi:sinks=many", "value of sinks is not an integer"},
      {"kivi:edge_layers=99999999999,edge_bits=4",
       "value of edge_layers is not an integer (or is out of int range)"},
      {"kivi:edge_layers=1", "edge_layers (1) and edge_bits (0) go together"},
      {"kivi:edge_bits=4", "edge_layers (0) and edge_bits (4) go together"},
      {"kivi:edge_layers=1,edge_bits=3", "edge_bits must be 2, 4 or 8"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<KvMode> m = ParseKvMode(c.text);
    ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(m.status().message().find(c.why), std::string::npos)
        << c.text << ": " << m.status().message();
    EXPECT_NE(m.status().message().find("--kv"), std::string::npos) << c.text;
  }
}

// Hand-computed (head_dim 8, B 32, G 8): a 2-bit KIVI head section is key
// codes 8*8 + key scale/zero 2*8*2 + value codes 32*2 + value scale/zero
// 2*32*2 = 288 bytes = 2304 bits for 512 elements (4.5 bits); an fp16 token
// of a head costs 2 * 8 * 16 = 256 bits.
TEST(KvModeTest, EffectiveBitsByHand) {
  const kernels::CacheShape shape{.n_layers = 5, .n_kv_heads = 4, .head_dim = 8};
  auto bits = [&shape](const char* text, int n) {
    absl::StatusOr<KvMode> m = ParseKvMode(text);
    EXPECT_TRUE(m.ok()) << m.status();
    absl::StatusOr<KvMode> r = m->Resolve(shape.head_dim);
    EXPECT_TRUE(r.ok()) << r.status();
    return EffectiveBits(*r, shape, n);
  };
  EXPECT_DOUBLE_EQ(bits("fp32", 10), 32.0);
  EXPECT_DOUBLE_EQ(bits("fp16", 10), 16.0);
  EXPECT_DOUBLE_EQ(bits("kivi2", 0), 0.0);
  const char* kivi = "kivi:bits=2,block=32,group=8,residual=0";
  EXPECT_DOUBLE_EQ(bits(kivi, 64), 4.5);
  EXPECT_DOUBLE_EQ(bits(kivi, 31), 16.0);                                // all fp16
  EXPECT_DOUBLE_EQ(bits(kivi, 70), (2 * 2304 + 6 * 256) / (70 * 16.0));  // fp16 tail
  // R = 32: at 70 tokens only block 0 is quantized.
  EXPECT_DOUBLE_EQ(bits("kivi:bits=2,block=32,group=8,residual=32", 70),
                   (2304 + 38 * 256) / (70 * 16.0));
  // Sinks: block 0 stays fp16, block 1 is quantized, 6 tail tokens.
  EXPECT_DOUBLE_EQ(bits("kivi:bits=2,block=32,group=8,residual=0,sinks=32", 70),
                   (2304 + 38 * 256) / (70 * 16.0));
  // 2% outliers (5 per 256 keys and 5 per 256 values: fp16 + u8 position,
  // 30 bytes) with u8 scales (key scale/zero 16 bytes, value scale/zero 64,
  // ranges 12): 64 + 16 + 64 + 64 + 12 + 30 = 250 bytes = 2000 bits.
  EXPECT_DOUBLE_EQ(bits("kivi:bits=2,block=32,group=8,residual=0,outliers=0.02,"
                        "scales=u8",
                        64),
                   2000.0 / 512);
  // 4-bit keys, 2-bit values: key codes 128 bytes instead of 64.
  EXPECT_DOUBLE_EQ(bits("kivi:kbits=4,vbits=2,block=32,group=8,residual=0", 32),
                   (2304 + 64 * 8) / 512.0);
  // Edge layers: of 5 layers, the first and last at 4 bits (a 4-bit head
  // section is 128 + 32 + 128 + 128 = 416 bytes = 3328 bits).
  EXPECT_DOUBLE_EQ(bits("kivi:bits=2,block=32,group=8,residual=0,edge_layers=1,"
                        "edge_bits=4",
                        32),
                   (3 * 2304 + 2 * 3328) / (5 * 512.0));
  // Several sequences: token-weighted.
  absl::StatusOr<KvMode> m = ParseKvMode(kivi);
  const KvMode r = *m->Resolve(8);
  const std::vector<int> lengths = {64, 31};
  EXPECT_DOUBLE_EQ(EffectiveBits(r, shape, lengths), (64 * 4.5 + 31 * 16.0) / 95);
}

// EffectiveBits by hand, head_dim 8 (a kivi2 B32 G8 head section is 288
// bytes: key codes 64, key scales and zeros 16 + 16, value codes 64, value
// scales and zeros 64 + 64; i.e. 2304 bits for 32 tokens x 16 elements).
TEST(KvModeTest, EffectiveBitsByHandOverShapes) {
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
    const int both[] = {32, 48};
    EXPECT_DOUBLE_EQ(EffectiveBits(r0, shape, both), (2304.0 + 6400) / (512 + 768));
  }
  // Equal to kernels::BitsPerElement once the quantized blocks dominate.
  EXPECT_DOUBLE_EQ(EffectiveBits(r32, many, 32 * 1000 + 32),
                   (1000 * 2304.0 + 32 * 16 * 16) / (1001 * 512));
  EXPECT_NEAR(EffectiveBits(r32, many, 32 * 100000 + 32),
              kernels::BitsPerElement(r32.QuantizedEncoding(), 8), 1e-3);
}

TEST(KvModeTest, PureKivi) {
  EXPECT_TRUE(ParseKvMode("kivi2")->IsPureKivi());
  EXPECT_TRUE(ParseKvMode("kivi:bits=8,block=16")->IsPureKivi());
  EXPECT_FALSE(ParseKvMode("fp16")->IsPureKivi());
  EXPECT_FALSE(ParseKvMode("fp32")->IsPureKivi());
}

}  // namespace
}  // namespace kvq::model
