#include "model/fp32_kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"

namespace kvq::model {

Fp32KvCache::Fp32KvCache(const KvCacheShape& shape)
    : shape_(shape), k_(shape.n_layers), v_(shape.n_layers) {
  mode_.kind = KvMode::Kind::kFp32;
  mode_.bits = 32;
}

int Fp32KvCache::n_tokens() const { return layer_tokens(shape_.n_layers - 1); }

int Fp32KvCache::layer_tokens(int layer) const {
  return static_cast<int>(k_[layer].size() / shape_.kv_dim());
}

absl::Status Fp32KvCache::Append(int layer, int n, const float* k, const float* v) {
  if (layer < 0 || layer >= shape_.n_layers || n < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("fp32 cache: bad append (layer %d, %d tokens)", layer, n));
  }
  const size_t count = size_t(n) * shape_.kv_dim();
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(k[i]) || !std::isfinite(v[i])) {
      return absl::InvalidArgumentError("fp32 cache: NaN or Inf in appended K/V");
    }
  }
  k_[layer].insert(k_[layer].end(), k, k + count);
  v_[layer].insert(v_[layer].end(), v, v + count);
  return absl::OkStatus();
}

absl::Status Fp32KvCache::Read(int layer, float* k, float* v) const {
  if (layer < 0 || layer >= shape_.n_layers) {
    return absl::InvalidArgumentError("fp32 cache: bad layer");
  }
  std::memcpy(k, k_[layer].data(), k_[layer].size() * sizeof(float));
  std::memcpy(v, v_[layer].data(), v_[layer].size() * sizeof(float));
  return absl::OkStatus();
}

absl::Status Fp32KvCache::Attend(int layer, const float* q, float* out) const {
  if (layer < 0 || layer >= shape_.n_layers) {
    return absl::InvalidArgumentError("fp32 cache: bad layer");
  }
  const int n = layer_tokens(layer);
  if (n == 0)
    return absl::FailedPreconditionError("fp32 cache: attention over no tokens");
  const int hd = shape_.head_dim, kv_dim = shape_.kv_dim();
  const int group = shape_.n_heads / shape_.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> scores(n);
  for (int h = 0; h < shape_.n_heads; ++h) {
    const float* qh = q + size_t(h) * hd;
    const int kvh = h / group;
    float max_score = -INFINITY;
    for (int t = 0; t < n; ++t) {
      const float* kt = k_[layer].data() + size_t(t) * kv_dim + size_t(kvh) * hd;
      float s = 0;
      for (int d = 0; d < hd; ++d) s += qh[d] * kt[d];
      scores[t] = s * scale;
      max_score = std::max(max_score, scores[t]);
    }
    float sum = 0;
    for (int t = 0; t < n; ++t) {
      scores[t] = std::exp(scores[t] - max_score);
      sum += scores[t];
    }
    float* oh = out + size_t(h) * hd;
    std::fill(oh, oh + hd, 0.0f);
    for (int t = 0; t < n; ++t) {
      const float p = scores[t] / sum;
      const float* vt = v_[layer].data() + size_t(t) * kv_dim + size_t(kvh) * hd;
      for (int d = 0; d < hd; ++d) oh[d] += p * vt[d];
    }
  }
  return absl::OkStatus();
}

KvCacheStats Fp32KvCache::Stats() const {
  KvCacheStats s;
  for (const auto& k : k_) s.elements += 2.0 * k.size();
  s.stored_bits = 32 * s.elements;
  return s;
}

}  // namespace kvq::model
