#include "services/serving/kv_plan.h"

#include <algorithm>

namespace kvq::serving {

std::vector<kernels::BlockEncoding> BlockPlan(const model::KvMode& mode, int n_tokens) {
  const int B = mode.block;
  std::vector<kernels::BlockEncoding> plan;
  for (int b = 0; b * B < n_tokens; ++b) {
    const bool quantized = mode.kind == model::KvMode::Kind::kKivi &&
                           b >= mode.sink_blocks() &&
                           n_tokens >= (b + 1) * B + mode.residual;
    plan.push_back(quantized ? mode.QuantizedEncoding() : mode.Fp16Encoding());
  }
  return plan;
}

std::vector<kvstore::BlockKey> PlanKeys(absl::Span<const int> tokens, uint64_t model_id,
                                        absl::Span<const kernels::BlockEncoding> plan) {
  std::vector<kvstore::BlockKey> keys;
  kvstore::BlockKey prev = kvstore::ChainSeed();
  std::vector<int32_t> ids(tokens.begin(), tokens.end());
  for (size_t b = 0; b < plan.size(); ++b) {
    const size_t B = plan[b].block_tokens;
    const size_t begin = b * B;
    const size_t end = std::min(ids.size(), begin + B);
    prev = kvstore::NextBlockKey(
        prev, absl::MakeConstSpan(ids).subspan(begin, end - begin), model_id, plan[b]);
    keys.push_back(prev);
  }
  return keys;
}

uint64_t CacheBytes(const model::KvMode& mode, const model::KvCacheShape& shape,
                    int n_tokens) {
  if (mode.kind == model::KvMode::Kind::kFp32) {
    return uint64_t{4} * 2 * n_tokens * shape.n_layers * shape.kv_dim();
  }
  const kernels::CacheShape cs{shape.n_layers, shape.n_kv_heads, shape.head_dim};
  uint64_t bytes = 0;
  for (const kernels::BlockEncoding& e : BlockPlan(mode, n_tokens)) {
    bytes += kernels::BlockBytes(e, cs);
  }
  return bytes;
}

uint64_t Fp16Bytes(const model::KvCacheShape& shape, int n_tokens) {
  return uint64_t{2} * 2 * n_tokens * shape.n_layers * shape.kv_dim();
}

}  // namespace kvq::serving
