// Loads a llama2.c checkpoint (legacy v0 format, design section 2): a header
// of 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; a negative vocab_size means a separate classifier follows), then
// float32 tensors token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2,
// w3, rms_final, two legacy RoPE tables (skipped), [classifier].
//
//   KVQ_ASSIGN_OR_RETURN(kvq::model::Model m,
//                        kvq::model::LoadLlama2c("stories260K.bin"));
#ifndef KVQ_MODEL_LLAMA2C_LOADER_H_
#define KVQ_MODEL_LLAMA2C_LOADER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/model.h"

namespace kvq::model {

// NOT_FOUND when the file is missing; INVALID_ARGUMENT when the header is out
// of range or the file size disagrees with it (truncated or trailing bytes);
// DATA_LOSS when a weight is NaN or infinite.
absl::StatusOr<Model> LoadLlama2c(const std::string& path);
absl::StatusOr<Model> ParseLlama2c(absl::string_view bytes);

// The bytes of a llama2.c checkpoint holding `model` (for tests and tools).
std::string SerializeLlama2c(const Model& model);

}  // namespace kvq::model

#endif  // KVQ_MODEL_LLAMA2C_LOADER_H_
