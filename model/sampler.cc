#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace kvq::model {

absl::Status SamplingParams::Validate() const {
  if (!std::isfinite(temperature) || temperature < 0) {
    return absl::InvalidArgumentError("temperature must be finite and >= 0");
  }
  if (!(top_p > 0.0f && top_p <= 1.0f)) {
    return absl::InvalidArgumentError("top_p must be in (0, 1]");
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

int Sampler::Sample(absl::Span<const float> logits) {
  const int n = static_cast<int>(logits.size());
  const int argmax =
      static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  if (params_.temperature == 0.0f) return argmax;
  std::vector<double> p(n);
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    p[i] = std::exp(double(logits[i] - logits[argmax]) / params_.temperature);
    sum += p[i];
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  int keep = n;
  if (params_.top_p < 1.0f) {
    std::sort(order.begin(), order.end(), [&p](int a, int b) { return p[a] > p[b]; });
    double mass = 0;
    for (keep = 0; keep < n;) {
      mass += p[order[keep++]] / sum;
      if (mass >= params_.top_p) break;
    }
    sum = 0;
    for (int i = 0; i < keep; ++i) sum += p[order[i]];
  }
  const double r = std::uniform_real_distribution<double>(0.0, sum)(rng_);
  double acc = 0;
  for (int i = 0; i < keep; ++i) {
    acc += p[order[i]];
    if (r < acc) return order[i];
  }
  return order[keep - 1];
}

}  // namespace kvq::model
