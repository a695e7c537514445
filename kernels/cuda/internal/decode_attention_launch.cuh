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

template <int kBits, int kHeadDim, int kB>
absl::Status LaunchDecodeAttention(DecodeParams p, cudaStream_t stream) {
  using T = AttentionTraits<kBits, kHeadDim, kB>;
  p.smem_per_warp =
      std::max<size_t>(kBits == 16 ? 0 : p.quantized_head_bytes, T::kFp16Staged);
  const size_t smem =
      AttentionSmemHeader<kHeadDim, kB>() +
      std::max(kAttentionWarps * p.smem_per_warp, AttentionSmemMerge<kHeadDim>());
  auto* kernel = &DecodeAttentionKernel<kBits, kHeadDim, kB>;
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

// Explicit instantiations of every compiled-in (head_dim, B) at one bit width.
#define KVQ_INSTANTIATE_DECODE_ATTENTION(BITS)                                           \
  namespace kvq::kernels::cuda_internal {                                                \
  template absl::Status LaunchDecodeAttention<BITS, 8, 16>(DecodeParams, cudaStream_t);  \
  template absl::Status LaunchDecodeAttention<BITS, 8, 32>(DecodeParams, cudaStream_t);  \
  template absl::Status LaunchDecodeAttention<BITS, 64, 16>(DecodeParams, cudaStream_t); \
  template absl::Status LaunchDecodeAttention<BITS, 64, 32>(DecodeParams, cudaStream_t); \
  template absl::Status LaunchDecodeAttention<BITS, 128, 16>(DecodeParams,               \
                                                             cudaStream_t);              \
  template absl::Status LaunchDecodeAttention<BITS, 128, 32>(DecodeParams,               \
                                                             cudaStream_t);              \
  }

#endif  // KVQ_KERNELS_CUDA_INTERNAL_DECODE_ATTENTION_LAUNCH_CUH_
