// Token sampling for the serving path. Deterministic per request step: the
// random draw of step i (0 = the first output token, sampled by the prefill
// worker) depends only on (seed, i), so a request gives the same tokens
// whether prefill and decode run in one process or two.
//
//   Sampling s{.temperature = 0.8f, .top_p = 0.9f, .seed = 42};
//   KVQ_RETURN_IF_ERROR(s.Validate());
//   int token = SampleToken(logits, s, step);
#ifndef KVQ_SERVICES_SERVING_SAMPLER_H_
#define KVQ_SERVICES_SERVING_SAMPLER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace kvq::serving {

struct Sampling {
  float temperature = 0.0f;  // 0 = greedy (argmax, lowest id on ties)
  float top_p = 0.0f;        // 0 or 1 = off
  int top_k = 0;             // 0 = off
  uint64_t seed = 0;

  // INVALID_ARGUMENT for a negative or non-finite temperature, top_p outside
  // [0, 1], or a negative top_k.
  absl::Status Validate() const;
};

// Picks a token from `logits` (one per vocabulary entry, non-empty).
int SampleToken(absl::Span<const float> logits, const Sampling& sampling, uint64_t step);

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_SAMPLER_H_
