#include "model/model.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "xxhash.h"

namespace kvq::model {
namespace {

absl::Status CheckSize(const std::vector<float>& t, size_t want,
                       const std::string& name) {
  if (t.size() != want) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tensor %s has %d elements, the config needs %d", name, t.size(), want));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckWeightShapes(const ModelConfig& c, const Weights& w) {
  const size_t dim = c.dim, hidden = c.hidden_dim, q = c.QDim(), kv = c.KvDim();
  absl::Status s =
      CheckSize(w.token_embedding, size_t(c.vocab_size) * dim, "token_embedding");
  if (!s.ok()) return s;
  if (w.layers.size() != size_t(c.n_layers)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "weights hold %d layers, the config says %d", w.layers.size(), c.n_layers));
  }
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& L = w.layers[l];
    const std::string p = absl::StrFormat("layers.%d.", l);
    for (auto [t, n, name] :
         {std::tuple{&L.rms_att, dim, "rms_att"}, std::tuple{&L.wq, q * dim, "wq"},
          std::tuple{&L.wk, kv * dim, "wk"}, std::tuple{&L.wv, kv * dim, "wv"},
          std::tuple{&L.wo, dim * q, "wo"}, std::tuple{&L.rms_ffn, dim, "rms_ffn"},
          std::tuple{&L.w1, hidden * dim, "w1"}, std::tuple{&L.w2, dim * hidden, "w2"},
          std::tuple{&L.w3, hidden * dim, "w3"}}) {
      s = CheckSize(*t, n, p + name);
      if (!s.ok()) return s;
    }
  }
  s = CheckSize(w.rms_final, dim, "rms_final");
  if (!s.ok()) return s;
  return CheckSize(w.classifier, c.shared_classifier ? 0 : size_t(c.vocab_size) * dim,
                   "classifier");
}

uint64_t ComputeModelId(const ModelConfig& c, const Weights& w) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  auto put_i32 = [&](int32_t v) {
    uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
    XXH3_64bits_update(state, b, 4);
  };
  auto put_f32 = [&](float f) {
    int32_t v;
    std::memcpy(&v, &f, 4);
    put_i32(v);
  };
  // x86-64 is little-endian, so float tensors hash as their bytes.
  auto put_tensor = [&](const std::vector<float>& t) {
    XXH3_64bits_update(state, t.data(), t.size() * sizeof(float));
  };
  for (int v :
       {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len,
        c.HeadDim(), static_cast<int>(c.rope), c.shared_classifier ? 1 : 0}) {
    put_i32(v);
  }
  put_f32(c.rope_theta);
  put_f32(c.norm_eps);
  put_tensor(w.token_embedding);
  for (const LayerWeights& L : w.layers) {
    for (const auto* t :
         {&L.rms_att, &L.wq, &L.wk, &L.wv, &L.wo, &L.rms_ffn, &L.w1, &L.w2, &L.w3}) {
      put_tensor(*t);
    }
  }
  put_tensor(w.rms_final);
  put_tensor(w.classifier);
  const uint64_t id = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return id;
}

void SetWeightsMode(Model& model, WeightsMode mode) {
  if (model.weights_mode == mode) return;
  if (model.weights_mode != WeightsMode::kFp32) {
    std::fprintf(stderr, "kvq: SetWeightsMode(%s) on a model already held as %s\n",
                 WeightsModeName(mode), WeightsModeName(model.weights_mode));
    std::abort();
  }
  model.id = ModelIdWithWeights(model.id, mode);
  model.weights_mode = mode;
}

}  // namespace kvq::model
