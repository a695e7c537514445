// The shape and hyper-parameters of a Llama-family decoder (design section 2),
// shared by every loader and by the transformer.
//
//   kvq::model::ModelConfig c{.dim = 64, .hidden_dim = 172, .n_layers = 5,
//                             .n_heads = 8, .n_kv_heads = 4, .vocab_size = 512,
//                             .seq_len = 512};
//   KVQ_RETURN_IF_ERROR(c.Validate());
#ifndef KVQ_MODEL_CONFIG_H_
#define KVQ_MODEL_CONFIG_H_

#include <string>

#include "absl/status/status.h"

namespace kvq::model {

// How RoPE pairs the channels of a head: llama2.c rotates (2i, 2i+1);
// Hugging Face rotates (i, i + head_dim/2).
enum class RopeStyle { kInterleaved = 0, kHalfSplit = 1 };

struct ModelConfig {
  int dim = 0;
  int hidden_dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab_size = 0;
  int seq_len = 0;
  int head_dim = 0;  // 0 means dim / n_heads
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
  RopeStyle rope = RopeStyle::kInterleaved;
  bool shared_classifier = true;  // the classifier is the token embedding

  int HeadDim() const { return head_dim > 0 ? head_dim : dim / n_heads; }
  int QDim() const { return n_heads * HeadDim(); }
  int KvDim() const { return n_kv_heads * HeadDim(); }

  // INVALID_ARGUMENT unless every size is positive and bounded, n_kv_heads
  // divides n_heads, and the head dimension is even.
  absl::Status Validate() const;
  std::string DebugString() const;
};

}  // namespace kvq::model

#endif  // KVQ_MODEL_CONFIG_H_
