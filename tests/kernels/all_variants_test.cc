// Every KernelSet this CPU supports (kernels::Available(): the reference and
// any fast variant registered in kernels/kernels.cc) against the reference:
// quantization bit-identical on realistic and edge-case data, attention
// within 2e-3 of max|reference| per head (kernels/README.md, "Tolerance"),
// and the same INVALID_ARGUMENT errors with nothing written.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "kernels/block_format.h"
#include "kernels/fp16.h"
#include "kernels/kernel_set.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"
#include "tests/kernels/test_util.h"

namespace kvq::kernels {
namespace {

using testing::BuildCache;
using testing::Params;
using testing::RandomKv;
using testing::TestCache;

constexpr double kAttentionTolerance = 2e-3;  // Of max |reference| per head.
// The integer variants (KernelSet::integer_attention; kernels/cpu/README.md,
// "Integer attention"): two int8 digits of the folded query and of the
// weights; measured 1e-3 on this data.
constexpr double kIntegerAttentionTolerance = 3e-3;

class AllVariantsTest : public ::testing::TestWithParam<const KernelSet*> {
 protected:
  const KernelSet& k() const { return *GetParam(); }
};

// K or V of one layer [heads][B][head_dim] mixing realistic values with the
// quantizer's edge cases: constant channels and tokens, exact ties, signed
// zeros, fp16 subnormals, tiny ranges, and the largest fp16 magnitudes.
std::vector<float> EdgeCaseKv(std::mt19937& rng, int heads, int B, int head_dim,
                              bool keys) {
  std::vector<float> x = RandomKv(rng, static_cast<size_t>(heads) * B, head_dim, keys);
  std::uniform_int_distribution<int> pick(0, 9);
  for (int h = 0; h < heads; ++h) {
    for (int t = 0; t < B; ++t) {
      for (int c = 0; c < head_dim; ++c) {
        float& v = x[(static_cast<size_t>(h) * B + t) * head_dim + c];
        switch ((c + h) % 9) {
          case 0:
            v = 1.5f;
            break;  // constant channel
          case 1:
            v = (t % 4) * 0.5f;
            break;  // ties
          case 2:
            v = (t % 2) ? -0.0f : 0.0f;
            break;  // signed zeros
          case 3:
            v = (t % 5) * 0x1p-24f;
            break;  // subnormals
          case 4:
            v = 1000.0f + (t % 3) * 0.5f;
            break;  // tiny relative range
          case 5:
            if (pick(rng) == 0) v = (t % 2) ? 65504.0f : -65504.0f;
            break;
          default:
            break;  // random
        }
      }
    }
  }
  return x;
}

TEST_P(AllVariantsTest, QuantizeIsBitIdentical) {
  std::mt19937 rng(11);
  struct Case {
    BlockEncoding enc;
    int n_kv_heads, head_dim;
  };
  const std::vector<Case> cases = {
      {BlockEncoding::Quantized(2, 32, 32), 2, 128},
      {BlockEncoding::Quantized(2, 16, 8), 4, 8},
      {BlockEncoding::Quantized(2, 32, 64), 1, 64},
      {BlockEncoding::Quantized(4, 32, 32), 2, 128},
      {BlockEncoding::Quantized(4, 8, 8), 3, 64},
      {BlockEncoding::Quantized(8, 32, 32), 2, 128},
      {BlockEncoding::Quantized(8, 5, 4), 1, 12},
      {BlockEncoding::Quantized(2, 4, 1), 1, 4},
      {BlockEncoding::Fp16(32), 2, 128},
      {BlockEncoding::Fp16(7), 1, 8},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "bits " << c.enc.bits << " B " << c.enc.block_tokens << " G "
                 << c.enc.group << " head_dim " << c.head_dim);
    const int B = c.enc.block_tokens;
    for (int trial = 0; trial < 3; ++trial) {
      const std::vector<float> kf =
          trial == 0 ? RandomKv(rng, c.n_kv_heads * B, c.head_dim, true)
                     : EdgeCaseKv(rng, c.n_kv_heads, B, c.head_dim, true);
      const std::vector<float> vf =
          trial == 0 ? RandomKv(rng, c.n_kv_heads * B, c.head_dim, false)
                     : EdgeCaseKv(rng, c.n_kv_heads, B, c.head_dim, false);
      const size_t bytes = LayerBytes(c.enc, c.n_kv_heads, c.head_dim);
      std::vector<uint8_t> want(bytes), got(bytes, 0xcd);
      ASSERT_TRUE(reference::QuantizeLayer(c.enc, c.n_kv_heads, c.head_dim, kf.data(),
                                           vf.data(), want.data())
                      .ok());
      ASSERT_TRUE(k().quantize_layer(c.enc, c.n_kv_heads, c.head_dim, kf.data(),
                                     vf.data(), got.data())
                      .ok());
      EXPECT_EQ(got, want) << "quantize_layer, trial " << trial;

      const std::vector<uint16_t> kh = testing::ToHalf(kf), vh = testing::ToHalf(vf);
      std::fill(got.begin(), got.end(), 0xcd);
      ASSERT_TRUE(k().quantize_layer_fp16(c.enc, c.n_kv_heads, c.head_dim, kh.data(),
                                          vh.data(), got.data())
                      .ok());
      EXPECT_EQ(got, want) << "quantize_layer_fp16, trial " << trial;
    }
  }
}

TEST_P(AllVariantsTest, AttentionWithinToleranceOfReference) {
  std::mt19937 rng(12);
  for (int bits : {2, 4, 8}) {
    for (int head_dim : {64, 128}) {
      for (int gqa : {1, 2, 4, 8}) {
        SCOPED_TRACE(::testing::Message()
                     << "bits " << bits << " head_dim " << head_dim << " gqa " << gqa);
        const int n_kv_heads = 2, n_heads = n_kv_heads * gqa;
        const BlockEncoding enc = BlockEncoding::Quantized(bits, 32, 32);
        // (tokens, quantized blocks): tail only, one token, quantized only,
        // a long mixed context not a multiple of B.
        const std::vector<std::pair<int, int>> contexts = {
            {20, 0}, {1, 0}, {64, 2}, {300, 6}};
        std::vector<TestCache> caches;
        std::vector<std::vector<float>> qs, want, got;
        std::vector<AttentionTask> ref_batch, batch;
        for (const auto& [n, nq] : contexts) {
          caches.push_back(BuildCache(rng, enc, n_kv_heads, head_dim, n, nq));
          qs.push_back(RandomKv(rng, n_heads, head_dim, false));
          want.emplace_back(static_cast<size_t>(n_heads) * head_dim, NAN);
          got.emplace_back(want.back().size(), NAN);
        }
        for (size_t i = 0; i < contexts.size(); ++i) {
          ref_batch.push_back({qs[i].data(), &caches[i].cache, want[i].data()});
          batch.push_back({qs[i].data(), &caches[i].cache, got[i].data()});
        }
        AttentionParams p = Params(enc, n_heads, n_kv_heads, head_dim);
        ASSERT_TRUE(reference::DecodeAttention(p, ref_batch).ok());
        for (int threads : {1, 2}) {
          p.n_threads = threads;
          ASSERT_TRUE(k().decode_attention(p, batch).ok());
          for (size_t i = 0; i < contexts.size(); ++i) {
            for (int h = 0; h < n_heads; ++h) {
              const float* w = &want[i][h * head_dim];
              const float* g = &got[i][h * head_dim];
              double max_abs = 0;
              for (int d = 0; d < head_dim; ++d)
                max_abs = std::max<double>(max_abs, std::fabs(w[d]));
              for (int d = 0; d < head_dim; ++d) {
                ASSERT_NEAR(g[d], w[d],
                            (k().integer_attention ? kIntegerAttentionTolerance
                                                   : kAttentionTolerance) *
                                max_abs)
                    << "threads " << threads << " sequence " << i << " head " << h;
              }
            }
          }
        }
      }
    }
  }
}

TEST_P(AllVariantsTest, QuantizeRejectsBadInputAndWritesNothing) {
  const BlockEncoding enc = BlockEncoding::Quantized(2, 16, 8);
  const int heads = 2, dim = 16;
  const size_t n = static_cast<size_t>(heads) * 16 * dim;
  std::vector<float> good(n, 0.5f);
  std::vector<uint16_t> good_h(n, FloatToHalf(0.5f));
  std::vector<uint8_t> out(LayerBytes(enc, heads, dim) + 64, 0xcd);
  const std::vector<uint8_t> untouched = out;
  auto expect_invalid = [&](absl::Status s, const std::string& what) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << what << ": " << s;
    EXPECT_EQ(out, untouched) << what;
  };
  for (float bad : {NAN, INFINITY, -INFINITY, 70000.0f, -65520.0f}) {
    for (int which : {0, 1}) {
      std::vector<float> x = good;
      x[n - 1 - which * 7] = bad;
      expect_invalid(k().quantize_layer(enc, heads, dim, which ? x.data() : good.data(),
                                        which ? good.data() : x.data(), out.data()),
                     "float value " + std::to_string(bad));
    }
  }
  for (uint16_t bad :
       {uint16_t{0x7c00}, uint16_t{0xfc00}, uint16_t{0x7e00}, uint16_t{0x7c01}}) {
    std::vector<uint16_t> x = good_h;
    x[3] = bad;
    expect_invalid(
        k().quantize_layer_fp16(enc, heads, dim, x.data(), good_h.data(), out.data()),
        "fp16 k");
    expect_invalid(
        k().quantize_layer_fp16(enc, heads, dim, good_h.data(), x.data(), out.data()),
        "fp16 v");
  }
  expect_invalid(k().quantize_layer(BlockEncoding::Quantized(2, 16, 6), heads, dim,
                                    good.data(), good.data(), out.data()),
                 "G does not divide head_dim");
  expect_invalid(k().quantize_layer(BlockEncoding::Quantized(3, 16, 8), heads, dim,
                                    good.data(), good.data(), out.data()),
                 "3 bits");
  expect_invalid(k().quantize_layer(BlockEncoding::Quantized(1, 16, 8), heads, dim,
                                    good.data(), good.data(), out.data()),
                 "1 bit");
  expect_invalid(k().quantize_layer(BlockEncoding::Quantized(2, 14, 8), heads, dim,
                                    good.data(), good.data(), out.data()),
                 "B not whole bytes");
  BlockEncoding old = enc;
  old.version = 0;
  expect_invalid(
      k().quantize_layer(old, heads, dim, good.data(), good.data(), out.data()),
      "version");
  expect_invalid(k().quantize_layer(enc, 0, dim, good.data(), good.data(), out.data()),
                 "no heads");
  expect_invalid(
      k().quantize_layer(enc, heads, -16, good.data(), good.data(), out.data()),
      "negative head_dim");
  expect_invalid(k().quantize_layer(enc, heads, dim, nullptr, good.data(), out.data()),
                 "null k");
  expect_invalid(
      k().quantize_layer_fp16(enc, heads, dim, good_h.data(), nullptr, out.data()),
      "null v");
  EXPECT_EQ(k().quantize_layer(enc, heads, dim, good.data(), good.data(), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(AllVariantsTest, AttentionRejectsBadInputAndWritesNothing) {
  std::mt19937 rng(13);
  const BlockEncoding enc = BlockEncoding::Quantized(2, 16, 8);
  const int heads = 4, kv_heads = 2, dim = 8;
  TestCache a =
      BuildCache(rng, enc, kv_heads, dim, 40, 1);  // 1 quantized + 2 fp16 blocks
  std::vector<float> q = RandomKv(rng, heads, dim, false);
  std::vector<float> out0(heads * dim, -9.0f), out1(heads * dim, -9.0f);
  const std::vector<float> untouched = out0;
  const AttentionParams good = Params(enc, heads, kv_heads, dim);
  auto expect_invalid = [&](const AttentionParams& p, const SequenceCache& bad_cache,
                            const float* bad_q, const std::string& what) {
    // The bad task comes second: the first, valid one must not be written either.
    const std::vector<AttentionTask> batch = {{q.data(), &a.cache, out0.data()},
                                              {bad_q, &bad_cache, out1.data()}};
    const absl::Status s = k().decode_attention(p, batch);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << what << ": " << s;
    EXPECT_EQ(out0, untouched) << what;
    EXPECT_EQ(out1, untouched) << what;
  };
  auto with_params = [&](auto edit, const std::string& what) {
    AttentionParams p = good;
    edit(p);
    expect_invalid(p, a.cache, q.data(), what);
  };
  auto with_cache = [&](auto edit, const std::string& what) {
    SequenceCache c = a.cache;
    edit(c);
    expect_invalid(good, c, q.data(), what);
  };
  with_params([](AttentionParams& p) { p.n_heads = 3; }, "n_heads not a multiple");
  with_params([](AttentionParams& p) { p.n_heads = 0; }, "no heads");
  with_params([](AttentionParams& p) { p.n_kv_heads = 0; }, "no kv heads");
  with_params([](AttentionParams& p) { p.head_dim = 0; }, "head_dim 0");
  with_params([](AttentionParams& p) { p.block_tokens = 0; }, "B 0");
  with_params([](AttentionParams& p) { p.block_tokens = 32; }, "B differs from encoding");
  with_params([](AttentionParams& p) { p.n_threads = 0; }, "no threads");
  with_params([](AttentionParams& p) { p.quantized_encoding.bits = 3; }, "3 bits");
  with_params([](AttentionParams& p) { p.quantized_encoding.group = 3; },
              "G does not divide");
  with_params([](AttentionParams& p) { p.quantized_encoding = BlockEncoding::Fp16(16); },
              "fp16 encoding for quantized blocks");
  with_cache([](SequenceCache& c) { c.n_tokens = 0; }, "no tokens");
  with_cache([](SequenceCache& c) { c.n_tokens = 32; }, "last fp16 block empty");
  with_cache([](SequenceCache& c) { c.n_tokens = 49; }, "more tokens than blocks hold");
  with_cache([](SequenceCache& c) { c.fp16.clear(); }, "quantized only, 40 tokens");
  with_cache([](SequenceCache& c) { c.fp16.clear(), c.quantized.clear(); }, "no blocks");
  with_cache([](SequenceCache& c) { c.fp16[1] = nullptr; }, "null fp16 part");
  with_cache([](SequenceCache& c) { c.quantized[0] = nullptr; }, "null quantized part");
  std::vector<float> bad_q = q;
  bad_q[5] = NAN;
  expect_invalid(good, a.cache, bad_q.data(), "NaN query");
  bad_q[5] = -INFINITY;
  expect_invalid(good, a.cache, bad_q.data(), "Inf query");
  expect_invalid(good, a.cache, nullptr, "null query");
  const std::vector<AttentionTask> null_cache = {{q.data(), nullptr, out0.data()}};
  EXPECT_EQ(k().decode_attention(good, null_cache).code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<AttentionTask> null_out = {{q.data(), &a.cache, nullptr}};
  EXPECT_EQ(k().decode_attention(good, null_out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out0, untouched);
}

std::string VariantName(const ::testing::TestParamInfo<const KernelSet*>& info) {
  return info.param->name;
}

INSTANTIATE_TEST_SUITE_P(Available, AllVariantsTest, ::testing::ValuesIn(Available()),
                         VariantName);

}  // namespace
}  // namespace kvq::kernels
