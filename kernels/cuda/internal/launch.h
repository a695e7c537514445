// Host launchers of the CUDA kernels, one instantiation per compiled-in
// shape. Declared here for the dispatchers (kernels/cuda/*.cu); defined in
// decode_attention_launch.cuh and instantiated in decode_attention_*bit.cu,
// so each nvcc invocation compiles a share of the instantiations.
#ifndef KVQ_KERNELS_CUDA_INTERNAL_LAUNCH_H_
#define KVQ_KERNELS_CUDA_INTERNAL_LAUNCH_H_

#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "kernels/cuda/internal/params.h"

namespace kvq::kernels::cuda_internal {

// Launches DecodeAttentionKernel (and MergeSplitsKernel when p.n_splits > 1)
// on `stream`. p is complete except smem_per_warp, which the launcher sets.
// kKBits, kVBits: key and value bits of the quantized blocks; 16 and 16:
// caches of fp16 blocks only.
template <int kKBits, int kVBits, int kHeadDim, int kB>
absl::Status LaunchDecodeAttention(DecodeParams p, cudaStream_t stream);

}  // namespace kvq::kernels::cuda_internal

#endif  // KVQ_KERNELS_CUDA_INTERNAL_LAUNCH_H_
