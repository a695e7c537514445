// A loaded Llama-family model: its config, its float32 weights (row-major
// (out, in) matrices, whatever the file's dtype was) and its model id
// (design section 4: XXH3-64 over the config and weight bytes).
//
//   KVQ_ASSIGN_OR_RETURN(kvq::model::Model m, kvq::model::LoadLlama2c(path));
//   kvq::model::Transformer t(m);
#ifndef KVQ_MODEL_MODEL_H_
#define KVQ_MODEL_MODEL_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "model/config.h"
#include "model/weights_mode.h"

namespace kvq::model {

struct LayerWeights {
  std::vector<float> rms_att;  // [dim]
  std::vector<float> wq;       // [n_heads * head_dim, dim]
  std::vector<float> wk;       // [n_kv_heads * head_dim, dim]
  std::vector<float> wv;       // [n_kv_heads * head_dim, dim]
  std::vector<float> wo;       // [dim, n_heads * head_dim]
  std::vector<float> rms_ffn;  // [dim]
  std::vector<float> w1;       // [hidden_dim, dim] (gate)
  std::vector<float> w2;       // [dim, hidden_dim] (down)
  std::vector<float> w3;       // [hidden_dim, dim] (up)
};

struct Weights {
  std::vector<float> token_embedding;  // [vocab_size, dim]
  std::vector<LayerWeights> layers;
  std::vector<float> rms_final;   // [dim]
  std::vector<float> classifier;  // [vocab_size, dim]; empty when shared
};

struct Model {
  ModelConfig config;
  Weights weights;  // always float32 here; weights_mode says how they are packed
  // ModelIdWithWeights(ComputeModelId(config, weights), weights_mode).
  uint64_t id = 0;
  // How a Transformer over this model holds its matrices (weights_mode.h).
  WeightsMode weights_mode = WeightsMode::kFp32;
};

// Makes a model loaded as fp32 (weights_mode kFp32, id its fp32 id) be held
// in `mode`: sets weights_mode and the id that goes with it. Aborts if the
// model already has another mode (its fp32 id is then gone).
void SetWeightsMode(Model& model, WeightsMode mode);

// INVALID_ARGUMENT unless every tensor has the size the config implies.
absl::Status CheckWeightShapes(const ModelConfig& config, const Weights& weights);

// XXH3-64 over a canonical encoding: the config fields as little-endian int32
// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len,
// head_dim, rope style, shared classifier) and float32 (rope_theta, norm_eps),
// then every weight tensor's float32 bytes in the order of the structs above.
uint64_t ComputeModelId(const ModelConfig& config, const Weights& weights);

}  // namespace kvq::model

#endif  // KVQ_MODEL_MODEL_H_
