// The reference KV cache: float32 keys and values, never rounded or
// quantized, with its own scalar attention (the "fp32" mode of design 8).
#ifndef KVQ_MODEL_FP32_KV_CACHE_H_
#define KVQ_MODEL_FP32_KV_CACHE_H_

#include <vector>

#include "model/kv_cache.h"

namespace kvq::model {

class Fp32KvCache final : public KvCache {
 public:
  explicit Fp32KvCache(const KvCacheShape& shape);

  const KvMode& mode() const override { return mode_; }
  const KvCacheShape& shape() const override { return shape_; }
  int n_tokens() const override;
  int layer_tokens(int layer) const override;
  absl::Status Append(int layer, int n, const float* k, const float* v) override;
  absl::Status Read(int layer, float* k, float* v) const override;
  absl::Status Attend(int layer, const float* q, float* out) const override;
  KvCacheStats Stats() const override;

 private:
  const KvCacheShape shape_;
  KvMode mode_;
  std::vector<std::vector<float>> k_, v_;  // per layer: [tokens][kv_dim]
};

}  // namespace kvq::model

#endif  // KVQ_MODEL_FP32_KV_CACHE_H_
