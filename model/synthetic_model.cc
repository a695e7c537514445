#include "model/synthetic_model.h"

#include <cmath>
#include <random>

namespace kvq::model {

absl::StatusOr<Model> SyntheticModel(const ModelConfig& c, uint64_t seed) {
  if (absl::Status s = c.Validate(); !s.ok()) return s;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto fill = [&](std::vector<float>& t, size_t n, float scale, float offset) {
    t.resize(n);
    for (float& x : t) x = offset + scale * normal(rng);
  };
  Model m;
  m.config = c;
  const size_t dim = c.dim, hidden = c.hidden_dim, q = c.QDim(), kv = c.KvDim();
  const float s = 1.0f / std::sqrt(static_cast<float>(dim));
  const float s_q = 1.0f / std::sqrt(static_cast<float>(q));
  const float s_h = 1.0f / std::sqrt(static_cast<float>(hidden));
  fill(m.weights.token_embedding, size_t(c.vocab_size) * dim, 1.0f, 0.0f);
  m.weights.layers.resize(c.n_layers);
  for (LayerWeights& L : m.weights.layers) {
    fill(L.rms_att, dim, 0.1f, 1.0f);
    fill(L.wq, q * dim, s, 0.0f);
    fill(L.wk, kv * dim, s, 0.0f);
    fill(L.wv, kv * dim, s, 0.0f);
    fill(L.wo, dim * q, s_q, 0.0f);
    fill(L.rms_ffn, dim, 0.1f, 1.0f);
    fill(L.w1, hidden * dim, s, 0.0f);
    fill(L.w2, dim * hidden, s_h, 0.0f);
    fill(L.w3, hidden * dim, s, 0.0f);
  }
  fill(m.weights.rms_final, dim, 0.1f, 1.0f);
  if (!c.shared_classifier) fill(m.weights.classifier, size_t(c.vocab_size) * dim, s, 0);
  m.id = ComputeModelId(m.config, m.weights);
  return m;
}

}  // namespace kvq::model
