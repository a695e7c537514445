#include "model/block_kv_cache.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/block_format.h"
#include "model/kv_cache_factory.h"

namespace kvq::model {
namespace {

constexpr KvCacheShape kShape{
    .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8};

std::unique_ptr<BlockKvCache> Make(const std::string& mode) {
  absl::StatusOr<KvMode> m = ParseKvMode(mode);
  EXPECT_TRUE(m.ok()) << m.status();
  absl::StatusOr<std::unique_ptr<BlockKvCache>> c = BlockKvCache::Create(*m, kShape);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(*c);
}

std::vector<float> Random(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Appends one random token to every layer.
void AppendToken(KvCache& c, std::mt19937& rng) {
  for (int l = 0; l < kShape.n_layers; ++l) {
    std::vector<float> k = Random(kShape.kv_dim(), rng), v = Random(kShape.kv_dim(), rng);
    ASSERT_TRUE(c.Append(l, 1, k.data(), v.data()).ok());
  }
}

int QuantizedBlocks(const BlockKvCache& c) {
  int q = 0;
  for (int b = 0; b < c.n_blocks(); ++b) q += !c.block_encoding(b).is_fp16();
  return q;
}

TEST(BlockKvCacheTest, ResidualRuleQuantizesOnAppend) {
  for (int residual : {0, 8, 16}) {
    auto c = Make("kivi:bits=2,block=8,group=4,residual=" + std::to_string(residual));
    std::mt19937 rng(1);
    for (int n = 1; n <= 50; ++n) {
      AppendToken(*c, rng);
      // Block b is quantized once n >= (b+1)*B + R.
      const int want = n >= 8 + residual ? (n - residual) / 8 : 0;
      ASSERT_EQ(QuantizedBlocks(*c), want) << "R=" << residual << " n=" << n;
      kernels::SequenceCache view;
      kernels::AttentionParams params;
      ASSERT_TRUE(c->KernelView(1, &view, &params));
      EXPECT_EQ(static_cast<int>(view.quantized.size()), want);
      EXPECT_EQ(view.n_tokens, n);
    }
  }
}

TEST(BlockKvCacheTest, Fp16CacheNeverQuantizesAndRoundsToHalf) {
  auto c = Make("fp16");
  std::mt19937 rng(2);
  for (int n = 0; n < 70; ++n) AppendToken(*c, rng);
  EXPECT_EQ(QuantizedBlocks(*c), 0);
  EXPECT_EQ(c->n_blocks(), 3);
  EXPECT_DOUBLE_EQ(c->Stats().BitsPerElement(), 16.0);
  const std::vector<float> k(kShape.kv_dim(), 0.1f);
  ASSERT_TRUE(c->Append(0, 1, k.data(), k.data()).ok());
  std::vector<float> rk(71 * kShape.kv_dim()), rv(rk.size());
  ASSERT_TRUE(c->Read(0, rk.data(), rv.data()).ok());
  EXPECT_EQ(rk[70 * kShape.kv_dim()], 0.0999755859375f);  // fp16(0.1)
}

TEST(BlockKvCacheTest, ExportImportRoundTrip) {
  auto c = Make("kivi:bits=4,block=8,group=8,residual=8");
  std::mt19937 rng(3);
  for (int n = 0; n < 29; ++n) AppendToken(*c, rng);  // 2 quantized, 1 fp16, 5 tokens
  ASSERT_EQ(c->n_blocks(), 4);
  std::vector<std::string> bytes;
  std::vector<BlockKvCache::ImportedBlock> blocks;
  for (int b = 0; b < c->n_blocks(); ++b) bytes.push_back(c->ExportBlock(b));
  for (int b = 0; b < c->n_blocks(); ++b) {
    blocks.push_back({c->block_encoding(b), c->block_tokens(b), bytes[b]});
    size_t parts = 0;
    for (int l = 0; l < kShape.n_layers; ++l) parts += c->LayerPart(b, l).size();
    EXPECT_EQ(parts, bytes[b].size());
  }
  absl::StatusOr<std::unique_ptr<BlockKvCache>> d =
      BlockKvCache::FromBlocks(c->mode(), kShape, blocks);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->n_tokens(), 29);
  std::mt19937 rng_c(4), rng_d(4);
  for (int step = 0; step < 12; ++step) {
    AppendToken(*c, rng_c);
    AppendToken(**d, rng_d);
    const std::vector<float> q = Random(kShape.n_heads * kShape.head_dim, rng);
    std::vector<float> oc(q.size()), od(q.size());
    for (int l = 0; l < kShape.n_layers; ++l) {
      ASSERT_TRUE(c->Attend(l, q.data(), oc.data()).ok());
      ASSERT_TRUE((*d)->Attend(l, q.data(), od.data()).ok());
      EXPECT_EQ(oc, od);
    }
  }
  EXPECT_EQ(QuantizedBlocks(**d), QuantizedBlocks(*c));
}

TEST(BlockKvCacheTest, FromBlocksRejectsBadBlocks) {
  auto c = Make("kivi:bits=2,block=8,group=8,residual=8");
  std::mt19937 rng(5);
  for (int n = 0; n < 20; ++n) AppendToken(*c, rng);  // quantized, fp16, partial(4)
  std::vector<std::string> bytes;
  for (int b = 0; b < c->n_blocks(); ++b) bytes.push_back(c->ExportBlock(b));
  auto blocks = [&] {
    std::vector<BlockKvCache::ImportedBlock> v;
    for (int b = 0; b < c->n_blocks(); ++b) {
      v.push_back({c->block_encoding(b), c->block_tokens(b), bytes[b]});
    }
    return v;
  };
  auto code = [&](std::vector<BlockKvCache::ImportedBlock> v) {
    return BlockKvCache::FromBlocks(c->mode(), kShape, v).status().code();
  };
  EXPECT_EQ(code(blocks()), absl::StatusCode::kOk);
  auto v = blocks();
  v[0].bytes = v[0].bytes.substr(1);
  EXPECT_EQ(code(v), absl::StatusCode::kInvalidArgument);  // size
  v = blocks();
  v[0].encoding = kernels::BlockEncoding::Quantized(4, 8, 8);
  EXPECT_EQ(code(v), absl::StatusCode::kInvalidArgument);  // not this cache's
  v = blocks();
  std::swap(v[0], v[1]);
  EXPECT_EQ(code(v), absl::StatusCode::kInvalidArgument);  // quantized after fp16
  v = blocks();
  std::swap(v[1], v[2]);
  EXPECT_EQ(code(v), absl::StatusCode::kInvalidArgument);  // partial not last
  v = blocks();
  v[2].n_tokens = 0;
  EXPECT_EQ(code(v), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<KvMode> fp16 = ParseKvMode("fp16");
  EXPECT_EQ(BlockKvCache::FromBlocks(*fp16, kShape, blocks()).status().code(),
            absl::StatusCode::kInvalidArgument);  // quantized block into an fp16 cache
}

TEST(BlockKvCacheTest, RejectsNonFiniteAndBadLayers) {
  auto c = Make("kivi2");
  std::vector<float> k(kShape.kv_dim(), 1.0f), v = k;
  k[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(c->Append(0, 1, k.data(), v.data()).code(),
            absl::StatusCode::kInvalidArgument);
  k[3] = 1e6f;  // overflows fp16
  EXPECT_EQ(c->Append(0, 1, k.data(), v.data()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->Append(2, 1, v.data(), v.data()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->n_tokens(), 0);
  std::vector<float> q(32), out(32);
  EXPECT_EQ(c->Attend(0, q.data(), out.data()).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(BlockKvCacheTest, StatsCountQuantizedBlocksAndFp16Tail) {
  auto c = Make("kivi:bits=2,block=8,group=8,residual=0");
  std::mt19937 rng(6);
  for (int n = 0; n < 16; ++n) AppendToken(*c, rng);
  const double quantized =
      kernels::BitsPerElement(kernels::BlockEncoding::Quantized(2, 8, 8), 8);
  EXPECT_DOUBLE_EQ(c->Stats().BitsPerElement(), quantized);
  for (int n = 0; n < 8; ++n) AppendToken(*c, rng);  // a third block, quantized
  for (int n = 0; n < 4; ++n) AppendToken(*c, rng);  // 4 fp16 tokens
  EXPECT_NEAR(c->Stats().BitsPerElement(), (24 * quantized + 4 * 16.0) / 28, 1e-9);
}

// Edge layers: layer parts of a quantized block differ in size (3 layers:
// 0 and 2 at 8 bits, 1 at 2 bits), attention and export/import see each
// layer's own encoding, and the stored bits are EffectiveBits'.
TEST(BlockKvCacheTest, EdgeLayersHoldTheirOwnBits) {
  constexpr KvCacheShape kThree{
      .n_layers = 3, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8};
  const char* text = "kivi:bits=2,block=8,group=8,residual=0,edge_layers=1,edge_bits=8";
  absl::StatusOr<KvMode> mode = ParseKvMode(text);
  ASSERT_TRUE(mode.ok());
  absl::StatusOr<std::unique_ptr<BlockKvCache>> made =
      BlockKvCache::Create(*mode, kThree);
  ASSERT_TRUE(made.ok()) << made.status();
  BlockKvCache& c = **made;
  std::mt19937 rng(8);
  for (int n = 0; n < 20; ++n) {
    for (int l = 0; l < kThree.n_layers; ++l) {
      std::vector<float> k = Random(kThree.kv_dim(), rng),
                         v = Random(kThree.kv_dim(), rng);
      ASSERT_TRUE(c.Append(l, 1, k.data(), v.data()).ok());
    }
  }
  ASSERT_EQ(QuantizedBlocks(c), 2);
  const kernels::CacheShape cs{kThree.n_layers, kThree.n_kv_heads, kThree.head_dim};
  const size_t b8 = kernels::LayerBytes(kernels::BlockEncoding::Quantized(8, 8, 8), 2, 8);
  const size_t b2 = kernels::LayerBytes(kernels::BlockEncoding::Quantized(2, 8, 8), 2, 8);
  EXPECT_EQ(c.LayerPart(0, 0).size(), b8);
  EXPECT_EQ(c.LayerPart(0, 1).size(), b2);
  EXPECT_EQ(c.LayerPart(0, 2).size(), b8);
  EXPECT_EQ(c.ExportBlock(0).size(), 2 * b8 + b2);
  EXPECT_EQ(c.ExportBlock(0).size(), kernels::BlockBytes(c.block_encoding(0), cs));
  EXPECT_NEAR(c.Stats().BitsPerElement(), EffectiveBits(*mode->Resolve(8), cs, 20),
              1e-12);
  // Export/import: the same attention in every layer.
  std::vector<std::string> bytes;
  std::vector<BlockKvCache::ImportedBlock> blocks;
  for (int b = 0; b < c.n_blocks(); ++b) bytes.push_back(c.ExportBlock(b));
  for (int b = 0; b < c.n_blocks(); ++b) {
    blocks.push_back({c.block_encoding(b), c.block_tokens(b), bytes[b]});
  }
  absl::StatusOr<std::unique_ptr<BlockKvCache>> back =
      BlockKvCache::FromBlocks(*mode, kThree, blocks);
  ASSERT_TRUE(back.ok()) << back.status();
  const std::vector<float> q = Random(size_t(kThree.n_heads) * kThree.head_dim, rng);
  for (int layer = 0; layer < kThree.n_layers; ++layer) {
    std::vector<float> a(q.size()), b(q.size());
    ASSERT_TRUE(c.Attend(layer, q.data(), a.data()).ok());
    ASSERT_TRUE((*back)->Attend(layer, q.data(), b.data()).ok());
    EXPECT_EQ(a, b) << layer;
  }
}

// Attention sinks: the first blocks stay fp16 however long the sequence,
// the blocks after them follow the residual rule, the stored bits are
// EffectiveBits', and Attend equals fp64 attention over Read's K and V.
TEST(BlockKvCacheTest, SinkBlocksStayFp16) {
  const char* text =
      "kivi:kbits=4,vbits=2,block=8,group=8,residual=8,outliers=0.05,scales=u8,sinks=12";
  auto c = Make(text);  // sinks round up to 16 tokens: blocks 0 and 1
  std::mt19937 rng(7);
  for (int n = 0; n < 43; ++n) AppendToken(*c, rng);
  // 43 tokens: blocks 0-1 sinks, 2-3 quantized ((b + 1) * 8 + 8 <= 43), 4 and
  // the partial 5 fp16.
  ASSERT_EQ(c->n_blocks(), 6);
  const std::vector<bool> want = {false, false, true, true, false, false};
  for (int b = 0; b < 6; ++b) {
    EXPECT_EQ(!c->block_encoding(b).is_fp16(), want[b]) << b;
  }
  absl::StatusOr<KvMode> mode = ParseKvMode(text);
  ASSERT_TRUE(mode.ok());
  const KvMode resolved = *mode->Resolve(kShape.head_dim);
  EXPECT_EQ(c->block_encoding(2), resolved.QuantizedEncoding());
  const kernels::CacheShape cs{kShape.n_layers, kShape.n_kv_heads, kShape.head_dim};
  EXPECT_NEAR(c->Stats().BitsPerElement(), EffectiveBits(resolved, cs, 43), 1e-12);

  // Attention over sinks, outlier blocks and the tail vs fp64 over Read().
  const int n = c->n_tokens(), D = kShape.head_dim, H = kShape.n_kv_heads;
  std::vector<float> k(size_t(n) * H * D), v(k.size());
  ASSERT_TRUE(c->Read(1, k.data(), v.data()).ok());
  const std::vector<float> q = Random(size_t(kShape.n_heads) * D, rng);
  std::vector<float> out(q.size());
  ASSERT_TRUE(c->Attend(1, q.data(), out.data()).ok());
  const int per_kv = kShape.n_heads / H;
  for (int h = 0; h < kShape.n_heads; ++h) {
    const int kvh = h / per_kv;
    std::vector<double> s(n);
    double mx = -1e300, sum = 0;
    for (int t = 0; t < n; ++t) {
      double dot = 0;
      for (int d = 0; d < D; ++d)
        dot += double(q[h * D + d]) * k[(size_t(t) * H + kvh) * D + d];
      s[t] = dot / std::sqrt(double(D));
      mx = std::max(mx, s[t]);
    }
    for (double& x : s) sum += (x = std::exp(x - mx));
    for (int d = 0; d < D; ++d) {
      double o = 0;
      for (int t = 0; t < n; ++t) o += s[t] * v[(size_t(t) * H + kvh) * D + d];
      EXPECT_NEAR(out[h * D + d], o / sum, 1e-4) << h << " " << d;
    }
  }

  // Export and import keep the layout; a quantized block among the sinks is
  // refused.
  std::vector<std::string> bytes;
  std::vector<BlockKvCache::ImportedBlock> blocks;
  for (int b = 0; b < c->n_blocks(); ++b) bytes.push_back(c->ExportBlock(b));
  for (int b = 0; b < c->n_blocks(); ++b) {
    blocks.push_back({c->block_encoding(b), c->block_tokens(b), bytes[b]});
  }
  absl::StatusOr<std::unique_ptr<BlockKvCache>> back =
      BlockKvCache::FromBlocks(*mode, kShape, blocks);
  ASSERT_TRUE(back.ok()) << back.status();
  std::vector<float> out2(q.size());
  ASSERT_TRUE((*back)->Attend(1, q.data(), out2.data()).ok());
  EXPECT_EQ(out2, out);
  std::vector<BlockKvCache::ImportedBlock> wrong(blocks.begin() + 1, blocks.end());
  EXPECT_EQ(BlockKvCache::FromBlocks(*mode, kShape, wrong).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// kv_mode.h's EffectiveBits is what a real cache holds, token after token.
TEST(BlockKvCacheTest, StatsMatchEffectiveBits) {
  const kernels::CacheShape shape{
      .n_layers = kShape.n_layers, .n_kv_heads = kShape.n_kv_heads, .head_dim = 8};
  for (const char* text : {"fp16", "kivi:bits=2,block=8,group=4,residual=0",
                           "kivi:bits=4,block=8,group=8,residual=16",
                           "kivi:bits=8,block=16,group=2,residual=32"}) {
    auto c = Make(text);
    const KvMode mode = *ParseKvMode(text)->Resolve(8);
    std::mt19937 rng(2);
    for (int n = 1; n <= 70; ++n) {
      AppendToken(*c, rng);
      ASSERT_DOUBLE_EQ(c->Stats().BitsPerElement(), EffectiveBits(mode, shape, n))
          << text << " n=" << n;
    }
  }
}

}  // namespace
}  // namespace kvq::model
