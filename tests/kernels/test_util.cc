#include "tests/kernels/test_util.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/fp16.h"
#include "kernels/reference.h"

namespace kvq::kernels::testing {

std::vector<float> RandomKv(std::mt19937& rng, size_t rows, int head_dim, bool keys) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(rows * head_dim);
  for (size_t r = 0; r < rows; ++r) {
    for (int c = 0; c < head_dim; ++c) {
      float value = normal(rng);
      if (keys && (c % 16 == 0 || c == 1)) value = 12.0f * value + 3.0f;
      x[r * head_dim + c] = value;
    }
  }
  return x;
}

TestCache BuildCache(std::mt19937& rng, const BlockEncoding& enc, int n_kv_heads,
                     int head_dim, int n_tokens, int n_quantized) {
  const int B = enc.block_tokens;
  const BlockEncoding fp16 = BlockEncoding::Fp16(B);
  const size_t head_values = static_cast<size_t>(B) * head_dim;
  TestCache c;
  c.cache.n_tokens = n_tokens;
  c.k.assign(static_cast<size_t>(n_kv_heads) * n_tokens * head_dim, 0.0);
  c.v.assign(c.k.size(), 0.0);
  const int n_blocks = (n_tokens + B - 1) / B;
  c.parts.reserve(n_blocks);
  for (int b = 0; b < n_blocks; ++b) {
    const bool quantized = b < n_quantized;
    const BlockEncoding& e = quantized ? enc : fp16;
    const int rows = std::min(B, n_tokens - b * B);
    std::vector<float> k =
        RandomKv(rng, n_kv_heads * static_cast<size_t>(B), head_dim, true);
    std::vector<float> v =
        RandomKv(rng, n_kv_heads * static_cast<size_t>(B), head_dim, false);
    for (int h = 0; h < n_kv_heads; ++h) {  // Rows past the token count are zero.
      std::fill(k.begin() + h * head_values + rows * head_dim,
                k.begin() + (h + 1) * head_values, 0.0f);
      std::fill(v.begin() + h * head_values + rows * head_dim,
                v.begin() + (h + 1) * head_values, 0.0f);
    }
    std::vector<uint8_t> part(LayerBytes(e, n_kv_heads, head_dim));
    EXPECT_TRUE(
        reference::QuantizeLayer(e, n_kv_heads, head_dim, k.data(), v.data(), part.data())
            .ok());
    std::vector<float> dk(k.size()), dv(v.size());
    EXPECT_TRUE(reference::DequantizeLayer(e, n_kv_heads, head_dim, part.data(),
                                           dk.data(), dv.data())
                    .ok());
    for (int h = 0; h < n_kv_heads; ++h) {
      for (int t = 0; t < rows; ++t) {
        for (int d = 0; d < head_dim; ++d) {
          const size_t src = h * head_values + t * head_dim + d;
          const size_t dst =
              (static_cast<size_t>(h) * n_tokens + b * B + t) * head_dim + d;
          c.k[dst] = dk[src];
          c.v[dst] = dv[src];
        }
      }
    }
    c.parts.push_back(std::move(part));
    (quantized ? c.cache.quantized : c.cache.fp16).push_back(c.parts.back().data());
  }
  return c;
}

std::vector<double> NaiveAttention(const TestCache& c, int n_heads, int n_kv_heads,
                                   int head_dim, const std::vector<float>& q) {
  const int n = c.cache.n_tokens;
  const int group = n_heads / n_kv_heads;
  std::vector<double> out(static_cast<size_t>(n_heads) * head_dim, 0.0);
  for (int h = 0; h < n_heads; ++h) {
    const size_t base = static_cast<size_t>(h / group) * n * head_dim;
    std::vector<double> s(n);
    double mx = -INFINITY;
    for (int t = 0; t < n; ++t) {
      double dot = 0.0;
      for (int d = 0; d < head_dim; ++d) {
        dot += static_cast<double>(q[h * head_dim + d]) * c.k[base + t * head_dim + d];
      }
      s[t] = dot / std::sqrt(static_cast<double>(head_dim));
      mx = std::max(mx, s[t]);
    }
    double sum = 0.0;
    for (int t = 0; t < n; ++t) sum += s[t] = std::exp(s[t] - mx);
    for (int t = 0; t < n; ++t) {
      for (int d = 0; d < head_dim; ++d) {
        out[h * head_dim + d] += s[t] / sum * c.v[base + t * head_dim + d];
      }
    }
  }
  return out;
}

AttentionParams Params(const BlockEncoding& enc, int n_heads, int n_kv_heads,
                       int head_dim) {
  AttentionParams p;
  p.quantized_encoding = enc;
  p.block_tokens = enc.block_tokens;
  p.n_heads = n_heads;
  p.n_kv_heads = n_kv_heads;
  p.head_dim = head_dim;
  return p;
}

std::vector<uint16_t> ToHalf(const std::vector<float>& x) {
  std::vector<uint16_t> h(x.size());
  for (size_t i = 0; i < x.size(); ++i) h[i] = FloatToHalf(x[i]);
  return h;
}

}  // namespace kvq::kernels::testing
