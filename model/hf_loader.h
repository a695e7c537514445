// Loads a Hugging Face Llama checkpoint directory: config.json plus one or
// more *.safetensors files (F32, F16 or BF16 tensors, widened to float32).
// RoPE there rotates halves (RopeStyle::kHalfSplit).
//
//   KVQ_ASSIGN_OR_RETURN(kvq::model::Model m, kvq::model::LoadHuggingFace(dir));
#ifndef KVQ_MODEL_HF_LOADER_H_
#define KVQ_MODEL_HF_LOADER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/config.h"
#include "model/model.h"

namespace kvq::model {

// True when `dir` holds a config.json.
bool IsHuggingFaceDir(const std::string& dir);

// The model config of a config.json's text. INVALID_ARGUMENT for malformed
// JSON, missing or non-integer sizes, a model_type other than llama, an
// activation other than silu, or rope_scaling (not supported).
absl::StatusOr<ModelConfig> ParseHuggingFaceConfig(absl::string_view json);

// NOT_FOUND: no config.json or no *.safetensors, or a tensor missing from
// every file; INVALID_ARGUMENT: a bad config, a tensor of the wrong shape or
// an unsupported dtype, a tensor in two files; DATA_LOSS: NaN/Inf weights.
absl::StatusOr<Model> LoadHuggingFace(const std::string& dir);

}  // namespace kvq::model

#endif  // KVQ_MODEL_HF_LOADER_H_
