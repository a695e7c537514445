#include "tests/model/test_model.h"

#include <cstdlib>

#include "common/paths.h"
#include "gtest/gtest.h"
#include "model/synthetic_model.h"

namespace kvq::model::testing {

const LoadedModel& Stories260K() {
  static const LoadedModel* loaded = [] {
    absl::StatusOr<LoadedModel> m = LoadModel(DefaultModelDir());
    if (!m.ok()) {
      std::fprintf(stderr, "cannot load stories260K: %s\n",
                   m.status().ToString().c_str());
      std::abort();
    }
    return new LoadedModel(std::move(*m));
  }();
  return *loaded;
}

Model RandomModel(const ModelConfig& config, uint64_t seed) {
  absl::StatusOr<Model> m = SyntheticModel(config, seed);
  if (!m.ok()) {
    std::fprintf(stderr, "SyntheticModel: %s\n", m.status().ToString().c_str());
    std::abort();
  }
  return std::move(*m);
}

ModelConfig SmallConfig() {
  return ModelConfig{.dim = 32,
                     .hidden_dim = 48,
                     .n_layers = 2,
                     .n_heads = 4,
                     .n_kv_heads = 2,
                     .vocab_size = 64,
                     .seq_len = 128};
}

}  // namespace kvq::model::testing
