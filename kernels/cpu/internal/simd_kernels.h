// Internal interface between the ISA-neutral CPU kernel driver
// (kernels/cpu/cpu_kernels.cc: argument checks, threading, the merge of
// split-context partial softmax) and the per-ISA inner loops
// (avx2_kernels.cc, avx512_kernels.cc, both compiled from
// simd_kernels_impl.inc with their own -m flags into their own namespace).
//
// The inner loops take plain pointers and never allocate, throw or touch the
// STL, so that nothing compiled with AVX-512 flags can leak into code that
// runs on a CPU without it (no shared inline or template instantiations).
//
//   const IsaKernels& isa = avx2::Kernels();
//   if (isa.attention_supported(D, B, bits, G)) isa.attend_range(args, state, scratch);
#ifndef KVQ_KERNELS_CPU_INTERNAL_SIMD_KERNELS_H_
#define KVQ_KERNELS_CPU_INTERNAL_SIMD_KERNELS_H_

#include <cstddef>
#include <cstdint>

namespace kvq::kernels::cpu_internal {

// `n_kv` consecutive KV heads of one sequence over a contiguous range of its
// blocks: first `n_quantized` quantized blocks, then `n_fp16` fp16 blocks (the
// last one holding `last_rows` tokens). Block pointers are layer parts
// already offset to the first of the KV heads; KV head j's section is j head
// sections further (block_format.h HeadLayout). A block's heads are visited
// one after the other, so a range streams through contiguous memory.
struct RangeArgs {
  int head_dim = 0;          // D, a multiple of 8
  int block_tokens = 0;      // B, a multiple of 8
  int bits = 2;              // key bits of the quantized blocks: 2, 4 or 8
  int v_bits = 2;            // their value bits: 2, 4 or 8
  int group = 0;             // G of the quantized blocks, a multiple of 8
  int n_rep = 0;             // query heads per KV head
  int n_kv = 0;              // KV heads in the range
  float score_scale = 0.0f;  // 1 / sqrt(D)
  const float* q = nullptr;  // [n_kv][n_rep][D]
  const uint8_t* const* quantized = nullptr;
  int n_quantized = 0;
  const uint8_t* const* fp16 = nullptr;
  int n_fp16 = 0;
  int last_rows = 0;  // tokens in the last fp16 block (1..B); B if none
  // The quantized blocks' head section (block_format.h GetHeadLayout): its
  // size, the byte offsets of its sections, the scale format (u8_scales:
  // scales and zeros are u8 codes against k_range / v_range) and format 2
  // outliers (counts, position width).
  size_t quantized_head_bytes = 0;
  size_t k_scale = 0, k_zero = 0, v_codes = 0, v_scale = 0, v_zero = 0;
  bool u8_scales = false;
  size_t k_range = 0, v_range = 0;
  int k_outliers = 0, v_outliers = 0;
  size_t index_bytes = 1, k_out = 0, v_out = 0, k_out_at = 0, v_out_at = 0;
};

// Partial softmax state of one query head, as written by attend_range:
// state[0] = running max m of the scaled scores, state[1] = sum of
// exp(s - m), state[2 .. 2 + D) = sum of exp(s - m) * v (unnormalized).
inline constexpr int kStateHeader = 2;
inline size_t StateFloats(int head_dim) { return kStateHeader + head_dim; }

// Where attend_range keeps its per-call temporaries inside `scratch` (float
// offsets, each 64-byte aligned). Defined once, in ISA-neutral code.
inline constexpr int kOutlierTermArrays = 2;
struct ScratchLayout {
  size_t keys;    // [B][D] fp16 keys of one block, widened
  size_t q_t;     // [n_kv][D][n_rep] query / sqrt(D), channel-major
  size_t q;       // [D][n_rep] q_t folded with one block's key scales
  size_t q_zero;  // [n_rep] query . key zeros
  size_t scores;  // [n_rep][B]
  size_t p;       // [n_rep][B][groups] probabilities times value scales
  size_t acc_q;   // [n_kv][n_rep][D] value sums of quantized blocks (code units)
  size_t z_sum;   // [n_kv][n_rep][groups] probabilities times value zeros
  size_t out_t;   // [kOutlierTermArrays][B][n_rep] key outliers' score terms,
                  // token-major (format 2; zero between blocks)
  size_t p_t;     // [B][n_rep] one block's probabilities, token-major
  size_t acc_o;   // [n_kv][D][n_rep] value outliers' sums, channel-major
  size_t total;
};
ScratchLayout GetScratchLayout(int head_dim, int block_tokens, int n_rep, int n_kv,
                               int groups);

struct IsaKernels {
  // Quantizes one KV head of a block from fp16 input [B][D] (finite, as
  // checked by the caller) into `head` (block_format.h layout), bit-identical
  // to the reference. Requires QuantizeSupported(D, G).
  void (*quantize_head)(int block_tokens, int bits, int group, int head_dim,
                        const uint16_t* k, const uint16_t* v, uint8_t* head);
  // Copies an fp16 head ([B][D] k then v) into `head`.
  void (*copy_head_fp16)(int block_tokens, int head_dim, const uint16_t* k,
                         const uint16_t* v, uint8_t* head);
  // Rounds x[0..n) to fp16 (round to nearest even, as F16C). Returns false when
  // some result is not finite (NaN, Inf, or |x| >= 65520).
  bool (*floats_to_halves)(const float* x, size_t n, uint16_t* out);
  // Attention of the n_kv * n_rep query heads of a range; writes their
  // partial states ([n_kv][n_rep], StateFloats(D) floats each) to `state`.
  // `scratch` holds AttendScratchFloats(...) floats, 64-byte aligned.
  void (*attend_range)(const RangeArgs& args, float* state, float* scratch);
  // Floats of scratch attend_range needs; nullptr: GetScratchLayout(...).total.
  size_t (*scratch_floats)(int head_dim, int block_tokens, int n_rep, int n_kv,
                           int groups) = nullptr;
  // Whether attend_range takes every shape the block format allows (the
  // integer variants); else only AttentionSupported() shapes.
  bool all_shapes = false;
  // Whether attend_range takes every per-layer quantized encoding of format
  // 2 (outliers, key and value bits apart, u8 scales: the fp32 SIMD
  // variants); else only KIVI encodings.
  bool format2 = false;
};

// Shapes the SIMD loops handle; others go to the reference.
inline bool QuantizeSupported(int head_dim, int group) {
  return head_dim % 8 == 0 && group % 8 == 0;
}
inline bool AttentionSupported(int head_dim, int block_tokens, int group) {
  return head_dim % 8 == 0 && block_tokens % 8 == 0 && (group == 0 || group % 8 == 0);
}

namespace avx2 {
const IsaKernels& Kernels();
}
namespace avx512 {
const IsaKernels& Kernels();
}
// The integer-dot-product attention (int_attention_impl.inc): attend_range
// only (quantize through the matching fp32 variant).
namespace int_portable {
const IsaKernels& Kernels();
}
namespace int_avx2 {
const IsaKernels& Kernels();
}
namespace int_avxvnni {
const IsaKernels& Kernels();
}
namespace int_avx512vnni {
const IsaKernels& Kernels();
}

}  // namespace kvq::kernels::cpu_internal

#endif  // KVQ_KERNELS_CPU_INTERNAL_SIMD_KERNELS_H_
