// The scalar reference kernels: the executable specification of the block
// format (block_format.h) and of every KernelSet function (kernel_set.h).
// Quantization here is bit-exact by definition (design section 3.2); every
// other variant must produce identical bytes, and attention within the
// tolerance stated in kernels/README.md. Written for clarity, not speed.
//
//   namespace ref = kvq::kernels::reference;
//   // K, V: [n_kv_heads][B][head_dim] floats of one layer of one block.
//   std::vector<uint8_t> part(LayerBytes(enc, n_kv_heads, head_dim));
//   KVQ_RETURN_IF_ERROR(ref::QuantizeLayer(enc, n_kv_heads, head_dim, K, V,
//   part.data())); KVQ_RETURN_IF_ERROR(ref::DequantizeLayer(enc, n_kv_heads, head_dim,
//   part.data(), K2, V2));
//
// Every function validates its arguments first (kernels/checks.h) and on
// error returns INVALID_ARGUMENT having written nothing.
#ifndef KVQ_KERNELS_REFERENCE_H_
#define KVQ_KERNELS_REFERENCE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/block_format.h"
#include "kernels/kernel_set.h"

namespace kvq::kernels::reference {

// ---- The quantizer of design 3.2, one group at a time. ----

// fp16 scale and zero of one group, as bit patterns.
struct GroupParams {
  uint16_t scale;
  uint16_t zero;
};

// Scale and zero of the n fp16 values x[0], x[stride], ..., (finite, n >= 1)
// at `bits` bits: mn = min, mx = max (as fp32; a zero of either sign counts
// as +0), scale = fp16((mx - mn) / (2^bits - 1)) with one fp32 subtraction and
// one fp32 division, zero = fp16(mn) (exact: mn is an fp16 value). The scale
// cannot overflow (mx - mn <= 131008, so scale <= 43670 < 65504); it rounds
// to 0 or a subnormal when mx - mn is tiny (README.md, "Edge cases").
GroupParams ComputeGroupParams(const uint16_t* x, int n, int stride, int bits);

// Code of fp16 value x: 0 when scale == 0, else clamp(round_half_even((x -
// zero) / scale), 0, 2^bits - 1) with fp32 subtraction and division.
uint8_t QuantizeValue(uint16_t x, GroupParams params, int bits);

// code * scale + zero in fp32 (a multiply then an add, not fused).
float DequantizeValue(int code, GroupParams params);

// Round half to even, independent of the floating-point rounding mode.
float RoundHalfEven(float v);

// ---- KernelSet functions (signatures of kernel_set.h). ----

// Quantizes (or, for an fp16 encoding, converts) one layer of one block.
// k, v: [n_kv_heads][B][head_dim] float32, each rounded to fp16 first; a value
// that is NaN, Inf or outside the fp16 range is INVALID_ARGUMENT.
// out: LayerBytes(enc, n_kv_heads, head_dim) bytes.
absl::Status QuantizeLayer(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                           const float* k, const float* v, uint8_t* out);

// As QuantizeLayer, from fp16 bit patterns (NaN/Inf: INVALID_ARGUMENT).
absl::Status QuantizeLayerFp16(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                               const uint16_t* k, const uint16_t* v, uint8_t* out);

// Decode attention for a batch of sequences (kernel_set.h). Per task and
// query head h (KV head h / (n_heads / n_kv_heads)): s_t = (q . k_t) /
// sqrt(head_dim) over every cached token t (dequantized keys of the
// quantized blocks, then the fp16 keys), p = softmax(s) in fp32, out =
// sum_t p_t v_t. The cache's bytes are trusted (they were written by
// quantize_layer and checksummed in transit); q must be finite.
absl::Status DecodeAttention(const AttentionParams& params,
                             absl::Span<const AttentionTask> batch);

// ---- Beyond the KernelSet. ----

// The fp16-cache attention: DecodeAttention over caches that hold only fp16
// blocks (params.quantized_encoding is ignored). A task with quantized blocks
// is INVALID_ARGUMENT.
absl::Status DecodeAttentionFp16(const AttentionParams& params,
                                 absl::Span<const AttentionTask> batch);

// Inverse of QuantizeLayer: k, v [n_kv_heads][B][head_dim] float32. Quantized:
// DequantizeValue of every code; fp16: widened values. A part whose scales,
// zeros or fp16 values are NaN/Inf (corrupt) is INVALID_ARGUMENT.
absl::Status DequantizeLayer(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                             const uint8_t* part, float* k, float* v);

// Writes tokens [first_token, first_token + n_tokens) of an fp16 block part
// in place (how a decode worker appends to its partial fp16 block); the rest
// of the part is untouched. k, v: [n_kv_heads][n_tokens][head_dim] float32,
// rounded to fp16 (NaN/Inf/out of range: INVALID_ARGUMENT). enc must be fp16.
absl::Status WriteFp16Tokens(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                             int first_token, int n_tokens, const float* k,
                             const float* v, uint8_t* part);

// The reference as a KernelSet named "reference".
const KernelSet& Kernels();

}  // namespace kvq::kernels::reference

#endif  // KVQ_KERNELS_REFERENCE_H_
