#include "model/sampler.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"

namespace kvq::model {

absl::Status Sampling::Validate() const {
  if (!std::isfinite(temperature) || temperature < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be finite and >= 0, got ", temperature));
  }
  if (!(top_p >= 0 && top_p <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_p must be in [0, 1], got ", top_p));
  }
  if (top_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", top_k));
  }
  return absl::OkStatus();
}

int SampleToken(absl::Span<const float> logits, const Sampling& s, uint64_t step) {
  const int n = static_cast<int>(logits.size());
  if (s.temperature <= 0) {
    return static_cast<int>(std::max_element(logits.begin(), logits.end()) -
                            logits.begin());
  }
  // Candidates by descending logit (ties: lower id first).
  std::vector<int> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(),
                   [&](int a, int b) { return logits[a] > logits[b]; });
  int keep = n;
  if (s.top_k > 0) keep = std::min(keep, s.top_k);
  std::vector<double> p(keep);
  const double mx = logits[ids[0]];
  double sum = 0;
  for (int i = 0; i < keep; ++i) {
    p[i] = std::exp((logits[ids[i]] - mx) / s.temperature);
    sum += p[i];
  }
  if (s.top_p > 0 && s.top_p < 1) {
    double cum = 0;
    for (int i = 0; i < keep; ++i) {
      cum += p[i] / sum;
      if (cum >= s.top_p) {
        keep = i + 1;
        break;
      }
    }
    sum = 0;
    for (int i = 0; i < keep; ++i) sum += p[i];
  }
  const uint64_t h = XXH3_64bits_withSeed(&step, sizeof(step), s.seed);
  const double u = static_cast<double>(h >> 11) * 0x1.0p-53 * sum;
  double cum = 0;
  for (int i = 0; i < keep; ++i) {
    cum += p[i];
    if (u < cum) return ids[i];
  }
  return ids[keep - 1];
}

}  // namespace kvq::model
