// A streaming read kernel: what "memory bandwidth" means for cuda_bench.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/internal/cuda_status.h"

namespace kvq::kernels::cuda_internal {
namespace {

__global__ void ReadKernel(const uint4* __restrict__ p, size_t n, unsigned* sink) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint4 v = __ldcs(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;  // keeps the loads; practically never true
}

}  // namespace

// Enqueues one read of `bytes` bytes (a multiple of 16) at `data`.
absl::Status LaunchRead(const void* data, size_t bytes, unsigned* sink,
                        cudaStream_t stream) {
  int device = 0, sms = 0;
  KVQ_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device), "cudaGetDevice");
  KVQ_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "SM count");
  ReadKernel<<<sms * 8, 512, 0, stream>>>(static_cast<const uint4*>(data), bytes / 16,
                                          sink);
  return CudaStatus(cudaGetLastError(), "read kernel launch");
}

}  // namespace kvq::kernels::cuda_internal
