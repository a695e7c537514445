// Token sampling, the one sampler of kvq: `kvq generate`, the prefill worker
// (step 0) and the decode worker (steps 1, 2, ...) all call SampleToken, so
// the same seed gives the same tokens on every path. Greedy at temperature
// 0 (argmax, lowest id on ties); otherwise a draw from softmax(logits / T)
// over the top_k most likely tokens, cut to the smallest prefix whose
// probability reaches top_p. The draw of step i depends only on (seed, i)
// (XXH3-64 of the step, seeded): no generator state travels between
// processes, and a request gives the same tokens whether prefill and decode
// run in one process or two.
//
//   kvq::model::Sampling s{.temperature = 0.8f, .top_p = 0.9f, .seed = 42};
//   KVQ_RETURN_IF_ERROR(s.Validate());
//   int token = kvq::model::SampleToken(logits, s, /*step=*/0);
#ifndef KVQ_MODEL_SAMPLER_H_
#define KVQ_MODEL_SAMPLER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace kvq::model {

struct Sampling {
  float temperature = 0.0f;  // 0 = greedy (argmax, lowest id on ties)
  float top_p = 0.0f;        // 0 or 1 = off
  int top_k = 0;             // 0 = off
  uint64_t seed = 0;

  // INVALID_ARGUMENT for a negative or non-finite temperature, top_p outside
  // [0, 1], or a negative top_k.
  absl::Status Validate() const;
};

// Picks a token from `logits` (one per vocabulary entry, non-empty) for
// output step `step` (0 = the first token after the prompt).
int SampleToken(absl::Span<const float> logits, const Sampling& sampling, uint64_t step);

}  // namespace kvq::model

#endif  // KVQ_MODEL_SAMPLER_H_
