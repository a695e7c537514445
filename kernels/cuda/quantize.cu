// CudaQuantizeLayers (cuda_kernels.h): argument checks, the one dispatch from
// (bits, v_bits, head_dim, B) to a QuantizeKernel instantiation, and the launch
// sequence: reset the error flag, check the inputs, quantize (a no-op when
// the check failed), read the flag back.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/block_format.h"
#include "kernels/checks.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/internal/dispatch.h"
#include "kernels/cuda/internal/params.h"
#include "kernels/cuda/internal/quantize.cuh"

namespace kvq::kernels {
namespace {

using cuda_internal::QuantizeParams;

bool Aligned(const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

int GridFor(size_t n, int threads) {
  return static_cast<int>(std::clamp<size_t>((n + threads - 1) / threads, 1, 1024));
}

template <typename In>
absl::Status QuantizeLayers(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                            int n_blocks, const In* k, const In* v, uint8_t* out,
                            CudaWorkspace* workspace, cudaStream_t stream) {
  KVQ_RETURN_IF_ERROR(CheckQuantizeArgs(enc, n_kv_heads, head_dim, k, v, out));
  if (n_blocks < 1 || workspace == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cuda quantize_layer: n_blocks ",
                                                   n_blocks, " < 1 or null workspace"));
  }
  if (!Aligned(k, sizeof(In)) || !Aligned(v, sizeof(In)) || !Aligned(out, 16)) {
    return absl::InvalidArgumentError(
        "cuda quantize_layer: k/v not element-aligned or out not 16-byte aligned");
  }
  // The one dispatch: runtime shape -> compiled-in kernel.
  using Kernel = void (*)(QuantizeParams);
  Kernel kernel = nullptr;
  if (!enc.is_fp16()) {
    const absl::Status dispatched = cuda_internal::DispatchQuantizeShape(
        enc.bits, enc.v_bits, head_dim, enc.block_tokens,
        [&](auto b, auto vb, auto d, auto t) {
          kernel =
              &cuda_internal::QuantizeKernel<In, decltype(b)::value, decltype(vb)::value,
                                             decltype(d)::value, decltype(t)::value>;
          return absl::OkStatus();
        });
    if (!dispatched.ok()) return dispatched;
  }
  KVQ_RETURN_IF_ERROR(CudaAvailable());

  void* flag = nullptr;
  KVQ_RETURN_IF_ERROR(workspace->Reserve(sizeof(int), &flag));
  QuantizeParams p;
  p.k = k;
  p.v = v;
  p.out = out;
  p.error = static_cast<int*>(flag);
  p.n_blocks = n_blocks;
  p.n_kv_heads = n_kv_heads;
  p.group = enc.group;
  p.k_outliers = enc.k_outliers;
  p.v_outliers = enc.v_outliers;
  p.u8_scales = enc.u8_scales();
  p.head_bytes = GetHeadLayout(enc, head_dim).head_bytes;
  const size_t head_values = static_cast<size_t>(enc.block_tokens) * head_dim;
  const size_t n = head_values * n_kv_heads * n_blocks;

  KVQ_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(p.error, 0, sizeof(int), stream),
                           "quantize: reset flag");
  cuda_internal::CheckFiniteKernel<In>
      <<<GridFor(n, 256), 256, 0, stream>>>(k, n, p.error);
  cuda_internal::CheckFiniteKernel<In>
      <<<GridFor(n, 256), 256, 0, stream>>>(v, n, p.error);
  KVQ_CUDA_RETURN_IF_ERROR(cudaGetLastError(), "quantize: check launch");
  if (kernel != nullptr) {
    const unsigned grid = static_cast<unsigned>(n_blocks) * n_kv_heads;
    kernel<<<grid, cuda_internal::kQuantizeThreads, 0, stream>>>(p);
  } else {
    cuda_internal::ConvertFp16Kernel<In>
        <<<GridFor(n, 256), 256, 0, stream>>>(p, head_values);
  }
  KVQ_CUDA_RETURN_IF_ERROR(cudaGetLastError(), "quantize: launch");
  int error = 0;
  KVQ_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(&error, p.error, sizeof(int), cudaMemcpyDeviceToHost, stream),
      "quantize: read flag");
  KVQ_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream), "quantize: synchronize");
  if (error != 0) {
    return absl::InvalidArgumentError(
        "cuda quantize_layer: k or v holds a NaN, an Inf or a value outside the fp16 "
        "range; nothing written");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CudaQuantizeLayers(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                                int n_blocks, const float* k, const float* v,
                                uint8_t* out, CudaWorkspace* workspace,
                                CudaStream stream) {
  return QuantizeLayers<float>(enc, n_kv_heads, head_dim, n_blocks, k, v, out, workspace,
                               stream);
}

absl::Status CudaQuantizeLayersFp16(const BlockEncoding& enc, int n_kv_heads,
                                    int head_dim, int n_blocks, const uint16_t* k,
                                    const uint16_t* v, uint8_t* out,
                                    CudaWorkspace* workspace, CudaStream stream) {
  return QuantizeLayers<uint16_t>(enc, n_kv_heads, head_dim, n_blocks, k, v, out,
                                  workspace, stream);
}

}  // namespace kvq::kernels
