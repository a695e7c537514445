#include "model/generate.h"

#include "common/status_macros.h"
#include "model/kv_cache_factory.h"

namespace kvq::model {

absl::StatusOr<std::vector<int>> Generate(const Transformer& transformer,
                                          absl::Span<const int> prompt,
                                          const GenerateOptions& options) {
  const ModelConfig& c = transformer.model().config;
  if (prompt.empty()) {
    return absl::InvalidArgumentError("the prompt must hold at least one token (BOS)");
  }
  if (options.steps < 0) return absl::InvalidArgumentError("steps must be >= 0");
  KVQ_RETURN_IF_ERROR(options.sampling.Validate());
  KVQ_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                       NewKvCache(options.kv, KvCacheShape::Of(c)));
  std::vector<int> out;
  if (options.steps == 0) return out;
  KVQ_ASSIGN_OR_RETURN(std::vector<float> logits, transformer.Prefill(prompt, *cache));
  for (uint64_t step = 0;; ++step) {
    const int next = SampleToken(logits, options.sampling, step);
    if (next == options.bos_id || next == options.eos_id) break;
    out.push_back(next);
    if (options.on_token) options.on_token(next);
    if (static_cast<int>(out.size()) == options.steps || cache->n_tokens() >= c.seq_len) {
      break;
    }
    KVQ_ASSIGN_OR_RETURN(logits, transformer.Decode(next, *cache));
  }
  return out;
}

}  // namespace kvq::model
