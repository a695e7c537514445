// The kernel API types shared by every implementation: the arguments of
// quantize_layer / quantize_layer_fp16 / decode_attention and the KernelSet
// that bundles one implementation's entry points. A variant's library
// (kernels/cpu/..., the scalar reference) depends only on this header's
// target, //kernels:kernel_set; the dispatcher that picks among variants is
// kernels/kernels.h (//kernels:kernels), which depends on the variants.
//
//   const kvq::kernels::KernelSet& k = kvq::kernels::Best();  // kernels/kernels.h
//   KVQ_RETURN_IF_ERROR(k.quantize_layer(enc, n_kv_heads, head_dim, K, V, part));
//   KVQ_RETURN_IF_ERROR(k.decode_attention(params, batch));
//
// Errors (absl::Status, INVALID_ARGUMENT, nothing written): NaN or Inf input,
// G not dividing head_dim, unsupported bits, mismatched shapes. The scalar
// reference (kernels/reference.h) is the specification of every function.
#ifndef KVQ_KERNELS_KERNEL_SET_H_
#define KVQ_KERNELS_KERNEL_SET_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/block_format.h"

namespace kvq::kernels {

// One sequence's cache as seen by one layer's attention: `quantized` blocks
// (oldest first) then `fp16` blocks; all blocks but the last fp16 one hold B
// tokens, the last holds the rest of `n_tokens`. Each pointer is that block's
// part for this layer (block_format.h layout). Attention does not depend on
// the tokens' order, so a cache whose first blocks stay fp16 (attention
// sinks, model/kv_mode.h) lists them first among `fp16`: every kernel
// handles sinks with no code of its own.
struct SequenceCache {
  std::vector<const uint8_t*> quantized;  // kivi blocks' layer parts
  std::vector<const uint8_t*> fp16;       // fp16 blocks' layer parts
  int n_tokens = 0;                       // total tokens, quantized + fp16
};

// Runs fn(i) for every i in [0, n), each once, on at most `threads` threads
// (the caller's among them), and returns when all have finished.
using ParallelForFn = void (*)(int n, int threads, const std::function<void(int)>& fn);

struct AttentionParams {
  BlockEncoding quantized_encoding;  // encoding of the `quantized` blocks
  int block_tokens = 32;             // B of every block (quantized and fp16)
  int n_heads = 0;                   // query heads; a multiple of n_kv_heads
  int n_kv_heads = 0;
  int head_dim = 0;
  int n_threads = 1;  // threads the kernel may use (optimized variants)
  // How the CPU kernels run their n_threads: nullptr, their own pool of
  // blocking workers; else the caller's loop, so that a caller with a thread
  // pool of its own (the model's OpenMP team) lends those threads rather than
  // leaving them to spin beside a second pool on the same cores.
  ParallelForFn parallel_for = nullptr;
};

struct AttentionTask {
  const float* q = nullptr;  // [n_heads, head_dim], RoPE already applied
  const SequenceCache* cache = nullptr;
  float* out = nullptr;  // [n_heads, head_dim]
};

// Quantizes one layer of one block: K and V are [n_kv_heads][B][head_dim]
// (keys after RoPE), float32 values that are first rounded to fp16 (design
// 3.1), or fp16 bit patterns. Writes LayerBytes(enc, ...) bytes to `out`.
using QuantizeLayerFn = absl::Status (*)(const BlockEncoding& enc, int n_kv_heads,
                                         int head_dim, const float* k, const float* v,
                                         uint8_t* out);
using QuantizeLayerFp16Fn = absl::Status (*)(const BlockEncoding& enc, int n_kv_heads,
                                             int head_dim, const uint16_t* k,
                                             const uint16_t* v, uint8_t* out);

// Decode attention for a batch of sequences, one query token each; softmax in
// fp32, scores scaled by 1/sqrt(head_dim); query head h reads KV head
// h / (n_heads / n_kv_heads).
using DecodeAttentionFn = absl::Status (*)(const AttentionParams& params,
                                           absl::Span<const AttentionTask> batch);

struct KernelSet {
  std::string name;  // "reference", "avx2", "avx512vnni", ...
  QuantizeLayerFn quantize_layer;
  QuantizeLayerFp16Fn quantize_layer_fp16;
  DecodeAttentionFn decode_attention;
  // Attention over quantized blocks by integer dot products (int8 query and
  // probabilities; kernels/cpu/README.md): its tolerance against the
  // reference is the integer path's, not the fp32 variants'.
  bool integer_attention = false;
  // For an integer variant, the fp32 variant it hands everything else to
  // (quantization, fp16-only sequences, non-KIVI encodings): "avx512" for
  // "int_avx512vnni". nullptr for the fp32 variants themselves.
  const KernelSet* fp32 = nullptr;
};

}  // namespace kvq::kernels

#endif  // KVQ_KERNELS_KERNEL_SET_H_
