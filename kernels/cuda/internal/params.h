// Parameter structs of the CUDA kernels: plain data shared by the host
// launchers (kernels/cuda/*.cu, *.cc) and the device code
// (kernels/cuda/internal/*.cuh). Every pointer here is a device pointer.
#ifndef KVQ_KERNELS_CUDA_INTERNAL_PARAMS_H_
#define KVQ_KERNELS_CUDA_INTERNAL_PARAMS_H_

#include <cstddef>
#include <cstdint>

namespace kvq::kernels::cuda_internal {

// Quantization of `n_blocks` blocks' layer parts at once (design 3.2).
struct QuantizeParams {
  const void* k;  // [n_blocks, n_kv_heads, B, head_dim] float or fp16 bits
  const void* v;  // [n_blocks, n_kv_heads, B, head_dim] float or fp16 bits
  uint8_t* out;   // [n_blocks, n_kv_heads, head_bytes]: n_blocks layer parts
  int* error;     // [1] set to 1 by the check kernel on NaN/Inf input
  int n_blocks = 0;
  int n_kv_heads = 0;
  int group = 0;  // G: value channels per scale/zero
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
  int group = 0;        // G of the quantized blocks' values
  int head_chunks = 0;  // ceil((n_heads / n_kv_heads) / kMaxHeadsPerCta)
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

}  // namespace kvq::kernels::cuda_internal

#endif  // KVQ_KERNELS_CUDA_INTERNAL_PARAMS_H_
