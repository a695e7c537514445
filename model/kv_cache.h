// A sequence's KV cache, as the transformer sees it: per layer, the keys
// (after RoPE) and values of every token so far, and decode attention over
// them. Implementations: Fp32KvCache (the reference, never quantized) and
// BlockKvCache (fp16 blocks, KIVI blocks; design section 3). Create them with
// NewKvCache (kv_cache_factory.h).
//
//   KVQ_ASSIGN_OR_RETURN(auto cache, NewKvCache(mode, KvCacheShape::Of(config)));
//   KVQ_RETURN_IF_ERROR(cache->Append(layer, 1, k, v));  // the new token's K/V
//   KVQ_RETURN_IF_ERROR(cache->Attend(layer, q, out));   // its attention
#ifndef KVQ_MODEL_KV_CACHE_H_
#define KVQ_MODEL_KV_CACHE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/kernel_set.h"
#include "model/config.h"
#include "model/kv_mode.h"

namespace kvq::model {

struct KvCacheShape {
  int n_layers = 0;
  int n_heads = 0;  // query heads, for attention
  int n_kv_heads = 0;
  int head_dim = 0;

  int kv_dim() const { return n_kv_heads * head_dim; }
  static KvCacheShape Of(const ModelConfig& c) {
    return {c.n_layers, c.n_heads, c.n_kv_heads, c.HeadDim()};
  }
};

// Storage actually held, for bits-per-element and compression reports
// (design 3.5): quantized blocks count their codes, scales and zeros; fp16
// tokens 16 bits per element; fp32 32.
struct KvCacheStats {
  double stored_bits = 0;
  double elements = 0;  // 2 (K and V) * tokens * layers * kv heads * head_dim
  double BitsPerElement() const { return elements > 0 ? stored_bits / elements : 0; }
  KvCacheStats& operator+=(const KvCacheStats& o) {
    stored_bits += o.stored_bits;
    elements += o.elements;
    return *this;
  }
};

class KvCache {
 public:
  virtual ~KvCache() = default;

  virtual const KvMode& mode() const = 0;
  virtual const KvCacheShape& shape() const = 0;
  // Tokens held by every layer.
  virtual int n_tokens() const = 0;
  // Tokens held by `layer` (during a forward pass the earlier layers run ahead).
  virtual int layer_tokens(int layer) const = 0;

  // Appends n tokens' K/V to `layer`: k, v are [n][n_kv_heads * head_dim]
  // float32, keys after RoPE. fp16/kivi caches round them to fp16 and then
  // apply the residual rule (design 3.3) once. INVALID_ARGUMENT for a bad
  // layer or a NaN/Inf/out-of-fp16-range value (nothing appended).
  virtual absl::Status Append(int layer, int n, const float* k, const float* v) = 0;

  // The layer's K/V as attention sees them (quantized blocks dequantized):
  // k, v [layer_tokens(layer)][n_kv_heads * head_dim].
  virtual absl::Status Read(int layer, float* k, float* v) const = 0;

  // Decode attention of one query over all of the layer's tokens:
  // q, out [n_heads][head_dim]. FAILED_PRECONDITION if the layer is empty.
  virtual absl::Status Attend(int layer, const float* q, float* out) const = 0;

  virtual KvCacheStats Stats() const = 0;

  // For batching: the layer as the kernels see it. Returns false when this
  // cache is not made of kernel blocks (then use Attend).
  virtual bool KernelView(int layer, kernels::SequenceCache* view,
                          kernels::AttentionParams* params) const {
    return false;
  }
};

// Decode attention for a batch: caches[i] attends q[i] ([n_heads*head_dim]
// rows) into out[i]. Caches with the same block encoding share one kernel
// call (on n_threads threads: the kernels' own pool, or parallel_for's when
// given); the rest use Attend. All caches must have the same shape.
absl::Status AttendBatch(int layer, absl::Span<KvCache* const> caches, const float* q,
                         float* out, int n_threads,
                         kernels::ParallelForFn parallel_for = nullptr);

}  // namespace kvq::model

#endif  // KVQ_MODEL_KV_CACHE_H_
