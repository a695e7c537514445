// Argument checks shared by every kernel variant, so that the scalar
// reference and the SIMD/CUDA variants reject exactly the same inputs with
// the same INVALID_ARGUMENT messages. A variant calls these first and writes
// nothing when one fails.
//
//   absl::Status MyQuantizeLayer(const BlockEncoding& enc, int n_kv_heads,
//                                int head_dim, const float* k, const float* v,
//                                uint8_t* out) {
//     KVQ_RETURN_IF_ERROR(CheckQuantizeArgs(enc, n_kv_heads, head_dim, k, v, out));
//     KVQ_RETURN_IF_ERROR(CheckFloatsFitHalf(k, LayerValues(enc, n_kv_heads, head_dim),
//     "k"));
//     ...
#ifndef KVQ_KERNELS_CHECKS_H_
#define KVQ_KERNELS_CHECKS_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/block_format.h"
#include "kernels/kernel_set.h"

namespace kvq::kernels {

// Number of K (or V) input values of one layer of one block:
// n_kv_heads * B * head_dim.
inline size_t LayerValues(const BlockEncoding& enc, int n_kv_heads, int head_dim) {
  return static_cast<size_t>(n_kv_heads) * enc.block_tokens * head_dim;
}

// Validate(enc, {0, n_kv_heads, head_dim}) plus non-null k, v and out.
absl::Status CheckQuantizeArgs(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                               const void* k, const void* v, const void* out);

// INVALID_ARGUMENT naming the first of x[0..n) that is NaN, infinite, or
// finite but rounds to an fp16 infinity (|x| >= 65520).
absl::Status CheckFloatsFitHalf(const float* x, size_t n, const char* what);

// INVALID_ARGUMENT naming the first of x[0..n) that is an fp16 NaN or Inf.
absl::Status CheckHalvesFinite(const uint16_t* x, size_t n, const char* what);

// Everything decode_attention requires before it may write an output:
// head counts (n_heads a multiple of n_kv_heads), head_dim and B in range,
// n_threads >= 1; when any task has quantized blocks, a valid quantized
// encoding whose B equals params.block_tokens; per task non-null q, cache,
// out and block pointers, n_tokens >= 1 and consistent with the block counts
// (quantized blocks are full; the fp16 blocks hold the rest, all full but
// the last, which holds 1..B tokens), and a finite query.
absl::Status CheckAttentionArgs(const AttentionParams& params,
                                absl::Span<const AttentionTask> batch);

}  // namespace kvq::kernels

#endif  // KVQ_KERNELS_CHECKS_H_
