// Definition of LaunchDecodeAttention (launch.h); included only by the
// decode_attention_*bit.cu files that instantiate it.
#ifndef KVQ_KERNELS_CUDA_INTERNAL_DECODE_ATTENTION_LAUNCH_CUH_
#define KVQ_KERNELS_CUDA_INTERNAL_DECODE_ATTENTION_LAUNCH_CUH_

#include <cuda_runtime_api.h>

#include <algorithm>

#include "absl/status/status.h"
#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/internal/decode_attention.cuh"
#include "kernels/cuda/internal/launch.h"
#include "kernels/cuda/internal/params.h"

namespace kvq::kernels::cuda_internal {

template <int kKBits, int kVBits, int kHeadDim, int kB>
absl::Status LaunchDecodeAttention(DecodeParams p, cudaStream_t stream) {
  p.smem_per_warp =
      AttentionStageBytes(kHeadDim, kB, kKBits == 16 ? 0 : p.quantized_head_bytes,
                          kKBits == 16 ? 0 : p.v_outliers);
  const size_t smem = AttentionSmemBytes(kHeadDim, kB, p.smem_per_warp);
  auto* kernel = &DecodeAttentionKernel<kKBits, kVBits, kHeadDim, kB>;
  if (smem > 48 * 1024) {
    KVQ_CUDA_RETURN_IF_ERROR(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem)),
        "decode attention: shared memory size");
  }
  const dim3 grid(p.n_splits, p.n_kv_heads * p.head_chunks, p.batch);
  kernel<<<grid, kAttentionWarps * 32, smem, stream>>>(p);
  KVQ_CUDA_RETURN_IF_ERROR(cudaGetLastError(), "decode attention: launch");
  if (p.n_splits > 1) {
    MergeSplitsKernel<kHeadDim><<<dim3(p.n_heads, p.batch), kHeadDim, 0, stream>>>(p);
    KVQ_CUDA_RETURN_IF_ERROR(cudaGetLastError(), "decode attention: merge launch");
  }
  return absl::OkStatus();
}

}  // namespace kvq::kernels::cuda_internal

// Explicit instantiations of every compiled-in (head_dim, B) at one pair of
// key and value bit widths.
#define KVQ_INSTANTIATE_DECODE_ATTENTION(KBITS, VBITS)                              \
  namespace kvq::kernels::cuda_internal {                                           \
  template absl::Status LaunchDecodeAttention<KBITS, VBITS, 8, 16>(DecodeParams,    \
                                                                   cudaStream_t);   \
  template absl::Status LaunchDecodeAttention<KBITS, VBITS, 8, 32>(DecodeParams,    \
                                                                   cudaStream_t);   \
  template absl::Status LaunchDecodeAttention<KBITS, VBITS, 64, 16>(DecodeParams,   \
                                                                    cudaStream_t);  \
  template absl::Status LaunchDecodeAttention<KBITS, VBITS, 64, 32>(DecodeParams,   \
                                                                    cudaStream_t);  \
  template absl::Status LaunchDecodeAttention<KBITS, VBITS, 128, 16>(DecodeParams,  \
                                                                     cudaStream_t); \
  template absl::Status LaunchDecodeAttention<KBITS, VBITS, 128, 32>(DecodeParams,  \
                                                                     cudaStream_t); \
  }

#endif  // KVQ_KERNELS_CUDA_INTERNAL_DECODE_ATTENTION_LAUNCH_CUH_
