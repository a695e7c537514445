// absl::Status from CUDA runtime errors, for the host side of the CUDA
// kernels (.cu launchers and .cc wrappers).
//
//   KVQ_CUDA_RETURN_IF_ERROR(cudaMemcpy(...), "copying the queries");
#ifndef KVQ_KERNELS_CUDA_INTERNAL_CUDA_STATUS_H_
#define KVQ_KERNELS_CUDA_INTERNAL_CUDA_STATUS_H_

#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kvq::kernels::cuda_internal {

// OK for cudaSuccess; RESOURCE_EXHAUSTED for out-of-memory errors; INTERNAL
// otherwise, naming `what` and the CUDA error.
inline absl::Status CudaStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  const std::string message = absl::StrCat("cuda: ", what, ": ", cudaGetErrorName(e),
                                           ": ", cudaGetErrorString(e));
  if (e == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

}  // namespace kvq::kernels::cuda_internal

#define KVQ_CUDA_RETURN_IF_ERROR(expr, what)                       \
  do {                                                             \
    const ::absl::Status kvq_cuda_status_ =                        \
        ::kvq::kernels::cuda_internal::CudaStatus((expr), (what)); \
    if (!kvq_cuda_status_.ok()) return kvq_cuda_status_;           \
  } while (0)

#endif  // KVQ_KERNELS_CUDA_INTERNAL_CUDA_STATUS_H_
