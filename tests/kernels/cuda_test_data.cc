#include "tests/kernels/cuda_test_data.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/reference.h"
#include "tests/kernels/test_util.h"

namespace kvq::kernels::testing {

std::vector<float> MakeData(std::mt19937& rng, int kind, int n_kv_heads, int B,
                            int head_dim, bool keys) {
  const size_t rows = static_cast<size_t>(n_kv_heads) * B;
  if (kind == 0) return RandomKv(rng, rows, head_dim, keys);
  std::vector<float> x(rows * head_dim);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (size_t r = 0; r < rows; ++r) {
    const int t = static_cast<int>(r % B);
    for (int c = 0; c < head_dim; ++c) {
      float& y = x[r * head_dim + c];
      if (kind == 2) {
        const float mag = std::ldexp(1.0f + u(rng), static_cast<int>(u(rng) * 40) - 24);
        y = std::min(mag, 65000.0f) * (u(rng) < 0.5f ? -1.0f : 1.0f);
        continue;
      }
      switch ((c + (keys ? 0 : t)) % 6) {
        case 0:
          y = 1.5f;
          break;  // constant
        case 1:
          y = (t % 2) ? -0.0f : 0.0f;
          break;  // signed zeros
        case 2:
          y = std::ldexp(static_cast<float>(t % 5), -24);
          break;  // subnormal
        case 3:
          y = (t % 3 == 0) ? -65504.0f : (t % 3 == 1 ? 65519.0f : 3.0f);
          break;
        case 4:
          y = 0.5f * static_cast<float>(t % 7);
          break;  // ties at 2 bits
        default:
          y = 1e-3f * static_cast<float>(t) - 0.01f;
          break;
      }
    }
  }
  return x;
}

std::vector<BlockEncoding> Format2QuantizeEncodings(int B, int head_dim) {
  const ScaleFormat kFp16 = ScaleFormat::kFp16, kU8 = ScaleFormat::kU8;
  const int g = std::min(32, head_dim), n = B * head_dim;
  const int few = std::max(1, n / 50) | 1;  // about 2%, odd
  return {
      BlockEncoding::Mixed(4, 2, B, g, 0, 0, kFp16),
      BlockEncoding::Mixed(2, 8, B, 2, 0, 0, kFp16),
      BlockEncoding::Mixed(2, 2, B, g, few, few, kFp16),
      BlockEncoding::Mixed(8, 4, B, head_dim, few + 2, 1, kFp16),
      BlockEncoding::Mixed(2, 2, B, g, 0, 0, kU8),
      BlockEncoding::Mixed(4, 8, B, 1, 0, 0, kU8),
      BlockEncoding::Mixed(4, 2, B, g, few, few, kU8),
      BlockEncoding::Mixed(2, 4, B, 2, 3 * few, n / 4, kU8),
      BlockEncoding::Mixed(2, 2, B, g, n, n - 1, kU8),  // all / all but one
      BlockEncoding::Mixed(8, 8, B, g, n - 1, n, kFp16),
  };
}

std::vector<BlockEncoding> Format2AttentionEncodings(int B, int head_dim) {
  const ScaleFormat kFp16 = ScaleFormat::kFp16, kU8 = ScaleFormat::kU8;
  const int g = std::min(32, head_dim), n = B * head_dim;
  const int few = std::max(1, n / 50) | 1;  // about 2%, odd
  return {
      BlockEncoding::Mixed(4, 2, B, g, 0, 0, kFp16),
      BlockEncoding::Mixed(2, 8, B, g, 0, 0, kFp16),
      BlockEncoding::Mixed(8, 4, B, g, 0, 0, kFp16),
      BlockEncoding::Mixed(2, 2, B, g, few, few, kFp16),
      BlockEncoding::Mixed(4, 4, B, g, few, 0, kFp16),
      BlockEncoding::Mixed(2, 2, B, g, 0, few + 2, kFp16),
      BlockEncoding::Mixed(2, 2, B, g, 0, 0, kU8),
      BlockEncoding::Mixed(8, 8, B, g, 0, 0, kU8),
      BlockEncoding::Mixed(4, 2, B, g, few, few, kU8),
      BlockEncoding::Mixed(2, 4, B, 2, 3 * few, 1, kU8),
  };
}

std::string FirstDifference(const std::vector<uint8_t>& want,
                            const std::vector<uint8_t>& got) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] != got[i]) {
      return absl::StrCat("byte ", i, ": reference ", want[i], ", cuda ", got[i]);
    }
  }
  return "identical";
}

void ExpectQuantizeMatchesReference(std::mt19937& rng, const BlockEncoding& enc,
                                    int n_kv_heads, int head_dim, int kind,
                                    const QuantizeRunner<float>& run_fp32,
                                    const QuantizeRunner<uint16_t>& run_fp16) {
  const int b = enc.block_tokens;
  const std::vector<float> k = MakeData(rng, kind, n_kv_heads, b, head_dim, true);
  const std::vector<float> v = MakeData(rng, kind, n_kv_heads, b, head_dim, false);
  const std::string what =
      absl::StrCat("bits ", enc.bits, "/", enc.v_bits, " G ", enc.group, " outliers ",
                   enc.k_outliers, "/", enc.v_outliers, " scales ", enc.scales,
                   " head_dim ", head_dim, " B ", b, " kind ", kind);
  std::vector<uint8_t> want(LayerBytes(enc, n_kv_heads, head_dim));
  ASSERT_TRUE(
      reference::QuantizeLayer(enc, n_kv_heads, head_dim, k.data(), v.data(), want.data())
          .ok())
      << what;
  std::vector<uint8_t> got(want.size(), 0xee);
  ASSERT_TRUE(run_fp32(enc, n_kv_heads, head_dim, k, v, &got).ok()) << what;
  EXPECT_EQ(want, got) << what << ": " << FirstDifference(want, got);
  std::vector<uint8_t> got16(want.size(), 0xee);
  ASSERT_TRUE(run_fp16(enc, n_kv_heads, head_dim, ToHalf(k), ToHalf(v), &got16).ok())
      << what;
  EXPECT_EQ(want, got16) << what << " fp16 input: " << FirstDifference(want, got16);
}

void ExpectAttentionMatchesReference(std::mt19937& rng, const BlockEncoding& enc,
                                     int n_heads, int n_kv_heads, int d,
                                     const std::vector<int>& n_tokens,
                                     const std::vector<int>& n_quantized,
                                     const std::string& what,
                                     const AttentionRunner& run) {
  const AttentionParams p = Params(enc, n_heads, n_kv_heads, d);
  std::vector<TestCache> caches;
  std::vector<std::vector<float>> q, want, got;
  for (size_t i = 0; i < n_tokens.size(); ++i) {
    caches.push_back(BuildCache(rng, enc, n_kv_heads, d, n_tokens[i],
                                enc.is_fp16() ? 0 : n_quantized[i]));
    q.push_back(RandomKv(rng, n_heads, d, false));
    want.emplace_back(q.back().size());
    got.emplace_back(q.back().size(), NAN);
  }
  std::vector<AttentionTask> ref_tasks, run_tasks;
  for (size_t i = 0; i < caches.size(); ++i) {
    ref_tasks.push_back({q[i].data(), &caches[i].cache, want[i].data()});
    run_tasks.push_back({q[i].data(), &caches[i].cache, got[i].data()});
  }
  ASSERT_TRUE(reference::DecodeAttention(p, ref_tasks).ok()) << what;
  const absl::Status s = run(p, run_tasks);
  ASSERT_TRUE(s.ok()) << what << ": " << s;
  for (size_t i = 0; i < caches.size(); ++i) {
    for (int h = 0; h < n_heads; ++h) {
      float ref_max = 0.0f, err = 0.0f;
      for (int c = 0; c < d; ++c) {
        const float r = want[i][h * d + c], g = got[i][h * d + c];
        ref_max = std::max(ref_max, std::fabs(r));
        err = std::isfinite(g) ? std::max(err, std::fabs(g - r)) : INFINITY;
      }
      EXPECT_LE(err, 2e-3f * ref_max)
          << what << " sequence " << i << " (" << n_tokens[i] << " tokens) head " << h;
    }
  }
}

}  // namespace kvq::kernels::testing
