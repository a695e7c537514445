// The Llama-family forward pass (design section 2) over pluggable KV caches:
// prefill of a prompt into a cache, and batched decode steps.
//
//   kvq::model::Transformer t(model);
//   KVQ_ASSIGN_OR_RETURN(auto cache, NewKvCache(mode, KvCacheShape::Of(model.config)));
//   KVQ_ASSIGN_OR_RETURN(std::vector<float> logits, t.Prefill(prompt_ids, *cache));
//   KVQ_ASSIGN_OR_RETURN(logits, t.Decode(next_id, *cache));
//
// On an error the caches involved may hold a partial step and should be
// dropped.
#ifndef KVQ_MODEL_TRANSFORMER_H_
#define KVQ_MODEL_TRANSFORMER_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace kvq::model {

struct PrefillOptions {
  // Called after layer `layer` has appended the prompt's K/V to the cache
  // (and the residual rule ran): the moment that layer's block parts can be
  // streamed. An error aborts the prefill.
  std::function<absl::Status(int layer)> on_layer;
};

// What a Transformer does with the model's unpacked weight matrices once it
// has packed them for its matrix products (model/internal/packed_matmul.h).
enum class RawWeights {
  // The model stays whole (it can still be checked, hashed, written, or
  // given to another Transformer); resident weight memory doubles.
  kKeep,
  // Each matrix is freed as soon as it is packed (wq..w3, the classifier,
  // and token_embedding when it is the shared classifier: embedding lookups
  // then read the packed copy). The model keeps its config, id, norm weights
  // and an unshared token_embedding. For processes holding one Transformer
  // per model: serving workers and the kvq tools.
  kRelease,
};

class Transformer {
 public:
  // `model` must outlive the Transformer. Packs the weights (kKeep) as
  // model.weights_mode says; aborts if the matrices were already released.
  explicit Transformer(const Model& model);
  Transformer(Model& model, RawWeights raw);
  ~Transformer();

  const Model& model() const { return model_; }
  // The packed weight matrices' bytes (model.weights_mode decides: 4, 2 or 1
  // byte a weight, plus int8's 8 bytes of scale and offset a row).
  size_t weight_bytes() const { return weight_bytes_; }
  // The kernel variant the matrix products run (WeightsKernelName).
  const char* weights_kernel() const;

  // Runs `tokens` (positions cache.n_tokens() onward) in one pass: attention
  // in float32 over the prompt's own K/V, plus the prefix already in `cache`
  // as it is stored; then appends the prompt's K/V to the cache layer by
  // layer. Returns the logits [vocab_size] after the last token.
  // INVALID_ARGUMENT: empty tokens, an id out of range, more than seq_len
  // positions, a cache of another shape.
  absl::StatusOr<std::vector<float>> Prefill(absl::Span<const int> tokens, KvCache& cache,
                                             const PrefillOptions& options = {}) const;

  // One token per sequence: tokens[i] is appended to caches[i] at position
  // caches[i]->n_tokens(). Writes logits [batch][vocab_size].
  absl::Status DecodeStep(absl::Span<const int> tokens, absl::Span<KvCache* const> caches,
                          std::vector<float>* logits) const;

  // DecodeStep for one sequence.
  absl::StatusOr<std::vector<float>> Decode(int token, KvCache& cache) const;

 private:
  absl::Status CheckCache(const KvCache& cache, int new_tokens) const;
  struct Packed;
  Transformer(const Model& model, Model* release);

  // FFN block of layer l and residual:
  // x[n][dim] += W2(silu(W1 norm(x)) * W3 norm(x)).
  void FeedForward(int l, float* x, int n) const;
  // logits[n][vocab] of the final-normed rows x[n][dim].
  void Logits(const float* x, int n, float* logits) const;

  const Model& model_;
  const std::vector<float> rope_freq_;
  const int n_threads_;
  std::unique_ptr<const Packed> packed_;  // the matrices, packed once
  size_t weight_bytes_ = 0;
};

}  // namespace kvq::model

#endif  // KVQ_MODEL_TRANSFORMER_H_
