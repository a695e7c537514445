// The reference decode attention against a naive fp64 softmax attention over
// the same dequantized cache: tail-only caches, one token, contexts that are
// not a multiple of B, quantized-only caches, GQA ratios 1, 2, 4, 8, head_dim
// 8, 64, 128, bits 2, 4, 8, and batches of sequences of different lengths.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "kernels/block_format.h"
#include "kernels/kernel_set.h"
#include "kernels/reference.h"
#include "tests/kernels/test_util.h"

namespace kvq::kernels {
namespace {

using testing::BuildCache;
using testing::NaiveAttention;
using testing::Params;
using testing::RandomKv;
using testing::TestCache;

// fp32 accumulation over a few hundred O(1) terms against fp64.
constexpr double kTolerance = 2e-5;

struct Shape {
  int bits;
  int head_dim;
  int n_kv_heads;
  int gqa;  // n_heads / n_kv_heads
};

// Sequences as (n_tokens, n_quantized blocks) for B = 16.
struct Context {
  int n_tokens;
  int n_quantized;
};

void CheckBatch(const Shape& s, const std::vector<Context>& contexts, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "bits " << s.bits << " head_dim " << s.head_dim
                                    << " kv_heads " << s.n_kv_heads << " gqa " << s.gqa);
  std::mt19937 rng(seed);
  const int n_heads = s.n_kv_heads * s.gqa;
  const BlockEncoding enc =
      BlockEncoding::Quantized(s.bits, 16, std::min(32, s.head_dim));
  std::vector<TestCache> caches;
  std::vector<std::vector<float>> qs, outs;
  for (const Context& c : contexts) {
    caches.push_back(
        BuildCache(rng, enc, s.n_kv_heads, s.head_dim, c.n_tokens, c.n_quantized));
    qs.push_back(RandomKv(rng, n_heads, s.head_dim, false));
    outs.emplace_back(static_cast<size_t>(n_heads) * s.head_dim, NAN);
  }
  std::vector<AttentionTask> batch;
  for (size_t i = 0; i < contexts.size(); ++i) {
    batch.push_back({qs[i].data(), &caches[i].cache, outs[i].data()});
  }
  ASSERT_TRUE(
      reference::DecodeAttention(Params(enc, n_heads, s.n_kv_heads, s.head_dim), batch)
          .ok());
  for (size_t i = 0; i < contexts.size(); ++i) {
    const std::vector<double> want =
        NaiveAttention(caches[i], n_heads, s.n_kv_heads, s.head_dim, qs[i]);
    for (size_t j = 0; j < want.size(); ++j) {
      ASSERT_NEAR(outs[i][j], want[j], kTolerance)
          << "sequence " << i << " (" << contexts[i].n_tokens << " tokens, "
          << contexts[i].n_quantized << " quantized blocks) element " << j;
    }
  }
}

TEST(AttentionTest, MatchesFp64AcrossShapes) {
  // With B = 16: tail only (1 token, partial block, two fp16 blocks), one
  // quantized block only, quantized + full fp16 + partial fp16, and a
  // context of 16k + 7 tokens.
  const std::vector<Context> contexts = {{1, 0},  {5, 0},  {16, 0}, {23, 0}, {16, 1},
                                         {32, 2}, {17, 1}, {55, 2}, {64, 3}, {103, 6}};
  uint32_t seed = 1;
  for (int bits : {2, 4, 8}) {
    for (int head_dim : {8, 64, 128}) {
      for (int gqa : {1, 2, 4, 8}) CheckBatch({bits, head_dim, 2, gqa}, contexts, seed++);
    }
  }
}

TEST(AttentionTest, OneKvHeadManyQueryHeads) {
  CheckBatch({2, 64, 1, 8}, {{40, 2}, {1, 0}}, 99);
}

TEST(AttentionTest, SingleTokenReturnsItsValue) {
  // softmax over one score is 1: out = that token's (fp16) value for every head.
  std::mt19937 rng(4);
  const BlockEncoding enc = BlockEncoding::Quantized(2, 16, 8);
  TestCache c = BuildCache(rng, enc, 2, 8, 1, 0);
  const std::vector<float> q = RandomKv(rng, 4, 8, false);
  std::vector<float> out(4 * 8);
  const AttentionTask task{q.data(), &c.cache, out.data()};
  ASSERT_TRUE(reference::DecodeAttention(Params(enc, 4, 2, 8), {task}).ok());
  for (int h = 0; h < 4; ++h) {
    for (int d = 0; d < 8; ++d) EXPECT_EQ(out[h * 8 + d], c.v[(h / 2) * 8 + d]);
  }
}

TEST(AttentionTest, Fp16AliasIsTheSameEntry) {
  std::mt19937 rng(6);
  const BlockEncoding enc = BlockEncoding::Quantized(4, 16, 16);
  TestCache tail = BuildCache(rng, enc, 2, 16, 37, 0);
  const std::vector<float> q = RandomKv(rng, 4, 16, false);
  std::vector<float> a(4 * 16), b(4 * 16);
  AttentionParams p = Params(enc, 4, 2, 16);
  ASSERT_TRUE(reference::DecodeAttention(p, {{q.data(), &tail.cache, a.data()}}).ok());
  p.quantized_encoding = BlockEncoding::Fp16(16);  // Ignored without quantized blocks.
  ASSERT_TRUE(
      reference::DecodeAttentionFp16(p, {{q.data(), &tail.cache, b.data()}}).ok());
  EXPECT_EQ(a, b);

  TestCache mixed = BuildCache(rng, enc, 2, 16, 37, 1);
  EXPECT_EQ(reference::DecodeAttentionFp16(Params(enc, 4, 2, 16),
                                           {{q.data(), &mixed.cache, b.data()}})
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AttentionTest, EmptyBatchIsOk) {
  EXPECT_TRUE(
      reference::DecodeAttention(Params(BlockEncoding::Quantized(2, 16, 8), 4, 2, 8),
                                 absl::Span<const AttentionTask>())
          .ok());
}

}  // namespace
}  // namespace kvq::kernels
