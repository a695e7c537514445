// Test helpers: the shared stories260K model and small random models.
#ifndef KVQ_TESTS_MODEL_TEST_MODEL_H_
#define KVQ_TESTS_MODEL_TEST_MODEL_H_

#include <cstdint>

#include "model/model.h"
#include "model/model_loader.h"

namespace kvq::model::testing {

// ../shared/models/stories260K with its tokenizer; aborts if absent.
const LoadedModel& Stories260K();

// SyntheticModel(config, seed), which must succeed.
Model RandomModel(const ModelConfig& config, uint64_t seed);

// A small GQA config: dim 32, 2 layers, 4 heads, 2 KV heads, head_dim 8.
ModelConfig SmallConfig();

}  // namespace kvq::model::testing

#endif  // KVQ_TESTS_MODEL_TEST_MODEL_H_
