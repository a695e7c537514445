// CUDA variants of the KV-cache kernels (issue 3): quantizing K/V into block
// parts and decode attention over a cache of quantized + fp16 blocks, with
// the semantics of the scalar reference (kernels/reference.h). Quantization
// is bit-identical to the reference; attention agrees within 2e-3 of
// max|reference| per head (tests/kernels/cuda_kernels_test.cc).
//
// Two layers:
//  - Device API: device pointers, a CudaWorkspace and a stream. What a GPU
//    decode worker calls; nothing is copied between host and device except
//    small descriptors and status flags.
//  - Host API: the KernelSet signatures (kernels/kernel_set.h) over host
//    buffers, copying to and from the device on every call. For tests, for
//    `kvq eval` comparisons, and for checking a GPU against the reference.
//
// Compiled-in shapes (anything else is INVALID_ARGUMENT): key bits and value
// bits each {2, 4, 8} (format 2: apart), and fp16, head_dim {8, 64, 128},
// B {16, 32}, any G dividing head_dim, any GQA ratio; fp16 or u8 scales and
// fp16 outliers (format 2) as long as a head section fits the attention
// kernel's shared memory. Encodings are per layer: a block encoding with
// edge layers is INVALID_ARGUMENT (pass enc.ForLayer(layer, n_layers)). Without a usable
// GPU every call that would touch one returns FAILED_PRECONDITION explaining why
// (CudaAvailable()); argument errors are reported first, so they are testable without a
// GPU.
//
//   KVQ_RETURN_IF_ERROR(kvq::kernels::CudaAvailable());
//   kvq::kernels::CudaWorkspace ws;
//   KVQ_RETURN_IF_ERROR(kvq::kernels::CudaQuantizeLayers(
//       enc, n_kv_heads, head_dim, n_blocks, d_k, d_v, d_parts, &ws, stream));
//   KVQ_RETURN_IF_ERROR(kvq::kernels::CudaDecodeAttention(params, seqs, &ws, stream));
#ifndef KVQ_KERNELS_CUDA_CUDA_KERNELS_H_
#define KVQ_KERNELS_CUDA_CUDA_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/block_format.h"
#include "kernels/kernel_set.h"

struct CUstream_st;
struct CUevent_st;

namespace kvq::kernels {

// The CUDA runtime's cudaStream_t; nullptr is the default stream.
using CudaStream = CUstream_st*;

// OK when a CUDA device of compute capability >= 8.0 is usable;
// FAILED_PRECONDITION saying why not otherwise ("no CUDA device: ...").
absl::Status CudaAvailable();

// OK when quantization into `enc` (a per-layer encoding) and attention over
// its blocks are compiled in for head_dim (an fp16 encoding: attention over
// fp16 blocks); INVALID_ARGUMENT naming the unsupported value otherwise
// (an invalid encoding, edge layers, a shape not compiled in, a section too
// large for attention's shared memory; quantization alone takes any outlier
// count). Needs no GPU.
absl::Status CudaSupports(const BlockEncoding& enc, int head_dim);

// Device memory reused across calls (descriptors, split partials, status
// flags). Grows on demand; growing synchronizes the device. Use one workspace
// per stream; not thread-safe.
class CudaWorkspace {
 public:
  CudaWorkspace() = default;
  CudaWorkspace(const CudaWorkspace&) = delete;
  CudaWorkspace& operator=(const CudaWorkspace&) = delete;
  ~CudaWorkspace();

  // A device buffer of at least `bytes` bytes (256-byte aligned), valid until
  // the next Reserve.
  absl::Status Reserve(size_t bytes, void** device);
  // Pinned host memory of at least `bytes` bytes for descriptors; waits until
  // the device has read the previous Upload.
  absl::Status Staging(size_t bytes, uint8_t** host);
  // Enqueues a copy of the first `bytes` staging bytes to `device`.
  absl::Status Upload(void* device, size_t bytes, CudaStream stream);

 private:
  void* device_ = nullptr;
  size_t capacity_ = 0;
  uint8_t* host_ = nullptr;  // pinned
  size_t host_capacity_ = 0;
  CUevent_st* uploaded_ = nullptr;  // recorded after the last Upload
};

// ---- Device API. All pointers are device pointers, 16-byte aligned. ----

// Quantizes (or, for an fp16 encoding, converts) one layer of n_blocks
// blocks. k, v: [n_blocks][n_kv_heads][B][head_dim] float32, each rounded to
// fp16 first (the Fp16 variant: fp16 bit patterns). out: n_blocks layer parts,
// [n_blocks][LayerBytes(enc, n_kv_heads, head_dim)]. Synchronizes `stream`
// to learn whether the input was valid: a NaN, an Inf or a float outside the
// fp16 range is INVALID_ARGUMENT with nothing written.
absl::Status CudaQuantizeLayers(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                                int n_blocks, const float* k, const float* v,
                                uint8_t* out, CudaWorkspace* workspace,
                                CudaStream stream = nullptr);
absl::Status CudaQuantizeLayersFp16(const BlockEncoding& enc, int n_kv_heads,
                                    int head_dim, int n_blocks, const uint16_t* k,
                                    const uint16_t* v, uint8_t* out,
                                    CudaWorkspace* workspace,
                                    CudaStream stream = nullptr);

// One sequence of a device-resident decode batch (SequenceCache of
// kernel_set.h with device pointers). The block pointer arrays are host
// arrays of device pointers (each block's part for this layer).
struct CudaSequence {
  absl::Span<const uint8_t* const> quantized;  // oldest first, full blocks
  absl::Span<const uint8_t* const> fp16;       // then fp16 blocks, last partial
  int n_tokens = 0;
  const float* q = nullptr;  // device [n_heads][head_dim]
  float* out = nullptr;      // device [n_heads][head_dim]
};

// Decode attention (one query token per sequence) enqueued on `stream`;
// returns after the launch, without synchronizing. Argument errors
// (shapes, counts, null or misaligned pointers) are INVALID_ARGUMENT before
// anything is enqueued. params.n_threads is ignored.
absl::Status CudaDecodeAttention(const AttentionParams& params,
                                 absl::Span<const CudaSequence> batch,
                                 CudaWorkspace* workspace, CudaStream stream = nullptr);

// ---- Host API: KernelSet signatures over host buffers (synchronous). ----

absl::Status CudaQuantizeLayerHost(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                                   const float* k, const float* v, uint8_t* out);
absl::Status CudaQuantizeLayerFp16Host(const BlockEncoding& enc, int n_kv_heads,
                                       int head_dim, const uint16_t* k, const uint16_t* v,
                                       uint8_t* out);
absl::Status CudaDecodeAttentionHost(const AttentionParams& params,
                                     absl::Span<const AttentionTask> batch);

// The host API as a KernelSet named "cuda". Not registered in
// kvq::kernels::Available() (the CPU binary does not link CUDA kernels).
const KernelSet& CudaKernels();

}  // namespace kvq::kernels

#endif  // KVQ_KERNELS_CUDA_CUDA_KERNELS_H_
