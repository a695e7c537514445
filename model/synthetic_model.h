// A model of any shape with seeded random weights, for benchmarks at
// production shapes and for tests: no checkpoint needed.
//
//   kvq::model::ModelConfig c{.dim = 1024, .hidden_dim = 2816, .n_layers = 8,
//                             .n_heads = 16, .n_kv_heads = 4, .vocab_size = 32000,
//                             .seq_len = 8192};
//   KVQ_ASSIGN_OR_RETURN(kvq::model::Model m, kvq::model::SyntheticModel(c, 42));
#ifndef KVQ_MODEL_SYNTHETIC_MODEL_H_
#define KVQ_MODEL_SYNTHETIC_MODEL_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/model.h"

namespace kvq::model {

// Weights: matrices normal with std 1/sqrt(fan_in), embeddings std 1, norm
// weights 1 + 0.1 * normal; the same seed gives the same model (and id).
// INVALID_ARGUMENT for an invalid config.
absl::StatusOr<Model> SyntheticModel(const ModelConfig& config, uint64_t seed);

// The `kvq bench model` shape (dim 1024, 8 layers, 16/4 heads, vocab 32000,
// seq_len 8448), also the default of a synthetic spec below.
ModelConfig BenchModelConfig();

// A --model value naming a synthetic model:
//   synthetic[:dim=1024,hidden=2816,layers=8,heads=16,kv_heads=4,head_dim=64,
//              vocab=32000,seq_len=8448,seed=1]
// Fields left out keep those defaults (the `kvq bench model` shape).
// INVALID_ARGUMENT for unknown keys, non-integers or an invalid config.
struct SyntheticSpec {
  ModelConfig config;
  uint64_t seed = 1;
};
bool IsSyntheticSpec(absl::string_view model_path);
absl::StatusOr<SyntheticSpec> ParseSyntheticSpec(absl::string_view text);

}  // namespace kvq::model

#endif  // KVQ_MODEL_SYNTHETIC_MODEL_H_
