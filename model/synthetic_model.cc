#include "model/synthetic_model.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

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

ModelConfig BenchModelConfig() {
  return ModelConfig{.dim = 1024,
                     .hidden_dim = 2816,
                     .n_layers = 8,
                     .n_heads = 16,
                     .n_kv_heads = 4,
                     .vocab_size = 32000,
                     .seq_len = 8192 + 256};
}

bool IsSyntheticSpec(absl::string_view model_path) {
  return model_path == "synthetic" || absl::StartsWith(model_path, "synthetic:");
}

absl::StatusOr<SyntheticSpec> ParseSyntheticSpec(absl::string_view text) {
  SyntheticSpec spec;
  ModelConfig& c = spec.config;
  c = BenchModelConfig();
  absl::string_view rest = text;
  if (!absl::ConsumePrefix(&rest, "synthetic")) {
    return absl::InvalidArgumentError(absl::StrCat("not a synthetic model spec: ", text));
  }
  if (!rest.empty() && !absl::ConsumePrefix(&rest, ":")) {
    return absl::InvalidArgumentError(absl::StrCat("bad synthetic model spec: ", text));
  }
  for (absl::string_view field : absl::StrSplit(rest, ',', absl::SkipEmpty())) {
    std::vector<absl::string_view> kv = absl::StrSplit(field, absl::MaxSplits('=', 1));
    int64_t v;
    if (kv.size() != 2 || !absl::SimpleAtoi(kv[1], &v) || v < 0 ||
        v > (int64_t{1} << 30)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "synthetic model spec: \"", field, "\" is not key=non-negative integer"));
    }
    const int i = static_cast<int>(v);
    if (kv[0] == "dim")
      c.dim = i;
    else if (kv[0] == "hidden")
      c.hidden_dim = i;
    else if (kv[0] == "layers")
      c.n_layers = i;
    else if (kv[0] == "heads")
      c.n_heads = i;
    else if (kv[0] == "kv_heads")
      c.n_kv_heads = i;
    else if (kv[0] == "head_dim")
      c.head_dim = i;
    else if (kv[0] == "vocab")
      c.vocab_size = i;
    else if (kv[0] == "seq_len")
      c.seq_len = i;
    else if (kv[0] == "seed")
      spec.seed = static_cast<uint64_t>(v);
    else {
      return absl::InvalidArgumentError(absl::StrCat(
          "synthetic model spec: unknown key \"", kv[0],
          "\" (dim, hidden, layers, heads, kv_heads, head_dim, vocab, seq_len, seed)"));
    }
  }
  if (absl::Status s = c.Validate(); !s.ok()) return s;
  return spec;
}

}  // namespace kvq::model
