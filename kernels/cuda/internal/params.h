// Parameter structs of the CUDA kernels: plain data shared by the host
// launchers (kernels/cuda/*.cu, *.cc) and the device code
// (kernels/cuda/internal/*.cuh). Every pointer here is a device pointer.
#ifndef KVQ_KERNELS_CUDA_INTERNAL_PARAMS_H_
#define KVQ_KERNELS_CUDA_INTERNAL_PARAMS_H_

#include <cstddef>
#include <cstdint>

#include "kernels/block_format.h"

namespace kvq::kernels::cuda_internal {

// Quantization of `n_blocks` blocks' layer parts at once (design 3.2).
struct QuantizeParams {
  const void* k;  // [n_blocks, n_kv_heads, B, head_dim] float or fp16 bits
  const void* v;  // [n_blocks, n_kv_heads, B, head_dim] float or fp16 bits
  uint8_t* out;   // [n_blocks, n_kv_heads, head_bytes]: n_blocks layer parts
  int* error;     // [1] set to 1 by the check kernel on NaN/Inf input
  int n_blocks = 0;
  int n_kv_heads = 0;
  int group = 0;       // G: value channels per scale/zero
  int k_outliers = 0;  // nk, nv of the encoding (format 2)
  int v_outliers = 0;
  bool u8_scales = false;  // ScaleFormat::kU8
  size_t head_bytes = 0;
};

// One sequence of a decode-attention batch, as the kernel reads it.
struct SequenceDesc {
  const uint8_t* const* blocks;  // [n_quantized + n_fp16] layer parts, quantized first
  const float* q;                // [n_heads, head_dim]
  float* out;                    // [n_heads, head_dim]
  int n_quantized;
  int n_fp16;
  int n_tokens;
  int n_splits;  // splits this sequence uses (<= DecodeParams::n_splits)
};

// Decode attention over a batch (design 3.4), flash-decoding style: the
// blocks of each sequence are cut into n_splits ranges of blocks_per_split
// blocks; each range yields a partial (max, sum, unnormalised output) per
// query head, merged by a second kernel when n_splits > 1.
struct DecodeParams {
  const SequenceDesc* seqs;  // [batch]
  float* partial_o;          // [batch, n_heads, n_splits, head_dim]
  float* partial_ml;         // [batch, n_heads, n_splits, 2]: (max, sum)
  int batch = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int group = 0;       // G of the quantized blocks' values
  int k_outliers = 0;  // nk, nv of the quantized encoding (format 2)
  int v_outliers = 0;
  bool u8_scales = false;  // ScaleFormat::kU8
  int head_chunks = 0;     // ceil((n_heads / n_kv_heads) / kMaxHeadsPerCta)
  int n_splits = 1;
  int blocks_per_split = 0;
  float scale_log2 = 0;  // log2(e) / sqrt(head_dim)
  size_t quantized_head_bytes = 0;
  size_t fp16_head_bytes = 0;
  size_t smem_per_warp = 0;  // bytes of the per-warp staging buffer
};

// Query heads one CTA handles for one KV head (GQA groups beyond this are
// split over several CTAs).
inline constexpr int kMaxHeadsPerCta = 8;
// Warps per attention CTA; each warp walks its own blocks.
inline constexpr int kAttentionWarps = 4;
// Padding (bytes) after each fp16 key row staged in shared memory, so that
// lanes reading different rows hit different banks.
inline constexpr int kKeyRowPad = 16;
// Most dynamic shared memory an attention CTA may use (fits sm_80 to sm_90
// with the opt-in; an encoding that needs more is INVALID_ARGUMENT).
inline constexpr size_t kMaxAttentionSmem = 96 * 1024;

KVQ_HOST_DEVICE constexpr size_t AlignUp16(size_t n) { return (n + 15) / 16 * 16; }

// Bytes of an fp16 head section staged with padded key rows.
KVQ_HOST_DEVICE constexpr size_t Fp16StagedBytes(int head_dim, int block_tokens) {
  return static_cast<size_t>(block_tokens) * (2 * head_dim + kKeyRowPad) +
         static_cast<size_t>(block_tokens) * head_dim * 2;
}

// Bytes of one warp's staging buffer: an fp16 section, or a quantized one
// (quantized_head_bytes, 0 for fp16-only caches) followed, when the blocks
// have value outliers, by a [kMaxHeadsPerCta][head_dim] float buffer for
// their corrections. A multiple of 16.
KVQ_HOST_DEVICE constexpr size_t AttentionStageBytes(int head_dim, int block_tokens,
                                                     size_t quantized_head_bytes,
                                                     int v_outliers) {
  const size_t q = quantized_head_bytes == 0
                       ? 0
                       : AlignUp16(quantized_head_bytes) +
                             (v_outliers > 0 ? sizeof(float) * kMaxHeadsPerCta *
                                                   static_cast<size_t>(head_dim)
                                             : 0);
  const size_t f = Fp16StagedBytes(head_dim, block_tokens);
  return q > f ? q : f;
}

// Bytes of dynamic shared memory before the staging buffers: the query heads
// and each warp's probabilities.
KVQ_HOST_DEVICE constexpr size_t AttentionSmemHeader(int head_dim, int block_tokens) {
  return sizeof(float) *
         (kMaxHeadsPerCta * static_cast<size_t>(head_dim) +
          kAttentionWarps * kMaxHeadsPerCta * static_cast<size_t>(block_tokens));
}
// Bytes of the merge area that reuses the staging buffers.
KVQ_HOST_DEVICE constexpr size_t AttentionSmemMerge(int head_dim) {
  return sizeof(float) * kAttentionWarps * kMaxHeadsPerCta *
         (static_cast<size_t>(head_dim) + 2);
}
// Dynamic shared memory of an attention CTA with staging buffers of
// stage_bytes (AttentionStageBytes).
KVQ_HOST_DEVICE constexpr size_t AttentionSmemBytes(int head_dim, int block_tokens,
                                                    size_t stage_bytes) {
  const size_t stages = kAttentionWarps * stage_bytes;
  const size_t merge = AttentionSmemMerge(head_dim);
  return AttentionSmemHeader(head_dim, block_tokens) + (stages > merge ? stages : merge);
}

}  // namespace kvq::kernels::cuda_internal

#endif  // KVQ_KERNELS_CUDA_INTERNAL_PARAMS_H_
