// Picks the next token from logits: greedy (temperature 0), or sampling at
// a temperature with optional nucleus (top-p) truncation, from a seeded RNG
// so runs are reproducible.
//
//   kvq::model::Sampler s({.temperature = 0.8f, .top_p = 0.9f, .seed = 42});
//   int next = s.Sample(logits);
#ifndef KVQ_MODEL_SAMPLER_H_
#define KVQ_MODEL_SAMPLER_H_

#include <cstdint>
#include <random>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace kvq::model {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy
  float top_p = 1.0f;        // in (0, 1]; 1: no truncation
  uint64_t seed = 0;

  // INVALID_ARGUMENT for a negative or non-finite temperature, or top_p
  // outside (0, 1].
  absl::Status Validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // The first maximum when greedy; otherwise a draw from
  // softmax(logits / temperature) restricted to the smallest set of most
  // likely tokens whose probability reaches top_p.
  int Sample(absl::Span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace kvq::model

#endif  // KVQ_MODEL_SAMPLER_H_
