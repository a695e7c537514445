// Host side of the CUDA kernels that needs no nvcc: device discovery, the
// workspace, and the KernelSet-signature wrappers over host buffers.
#include "kernels/cuda/cuda_kernels.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/block_format.h"
#include "kernels/checks.h"
#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/internal/dispatch.h"

namespace kvq::kernels {
namespace {

absl::Status ProbeDevice() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    return absl::FailedPreconditionError(
        absl::StrCat("no CUDA device: cudaGetDeviceCount: ", cudaGetErrorName(e), " (",
                     static_cast<int>(e), "): ", cudaGetErrorString(e)));
  }
  if (count == 0) return absl::FailedPreconditionError("no CUDA device: count is 0");
  int device = 0, major = 0, minor = 0;
  KVQ_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device), "cudaGetDevice");
  KVQ_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cc");
  KVQ_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device), "cc");
  if (major < 8) {
    return absl::FailedPreconditionError(
        absl::StrCat("no CUDA device: device ", device, " has compute capability ", major,
                     ".", minor, "; the kernels are built for sm_90 and compute_80"));
  }
  return absl::OkStatus();
}

// A device allocation freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  absl::Status Allocate(size_t bytes) {
    return cuda_internal::CudaStatus(cudaMalloc(&ptr_, std::max<size_t>(bytes, 1)),
                                     "cudaMalloc");
  }
  absl::Status Upload(const void* src, size_t bytes) {
    KVQ_RETURN_IF_ERROR(Allocate(bytes));
    return cuda_internal::CudaStatus(cudaMemcpy(ptr_, src, bytes, cudaMemcpyHostToDevice),
                                     "copy to device");
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
};

// The workspace the host wrappers share.
std::mutex& HostMutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}
CudaWorkspace& HostWorkspace() {
  static CudaWorkspace* ws = new CudaWorkspace;
  return *ws;
}

// OK when quantization into `enc` (valid) is compiled in: a per-layer
// encoding of compiled-in bits, v_bits, head_dim and B (any outlier count,
// either scale format).
absl::Status QuantizeSupported(const BlockEncoding& enc, int head_dim) {
  if (enc.edge_layers != 0) {
    return absl::InvalidArgumentError(
        "cuda kernels: a block encoding with edge layers; pass each layer's "
        "enc.ForLayer(layer, n_layers)");
  }
  return cuda_internal::DispatchQuantizeShape(
      enc.bits, enc.v_bits, head_dim, enc.block_tokens,
      [](auto, auto, auto, auto) { return absl::OkStatus(); });
}

template <typename In>
absl::Status QuantizeHost(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                          const In* k, const In* v, uint8_t* out) {
  KVQ_RETURN_IF_ERROR(CheckQuantizeArgs(enc, n_kv_heads, head_dim, k, v, out));
  const size_t n = LayerValues(enc, n_kv_heads, head_dim);
  if constexpr (std::is_same_v<In, float>) {
    KVQ_RETURN_IF_ERROR(CheckFloatsFitHalf(k, n, "quantize_layer: k"));
    KVQ_RETURN_IF_ERROR(CheckFloatsFitHalf(v, n, "quantize_layer: v"));
  } else {
    KVQ_RETURN_IF_ERROR(CheckHalvesFinite(k, n, "quantize_layer: k"));
    KVQ_RETURN_IF_ERROR(CheckHalvesFinite(v, n, "quantize_layer: v"));
  }
  if (!enc.is_fp16()) KVQ_RETURN_IF_ERROR(QuantizeSupported(enc, head_dim));
  KVQ_RETURN_IF_ERROR(CudaAvailable());
  const size_t bytes = LayerBytes(enc, n_kv_heads, head_dim);
  DeviceBuffer dk, dv, dout;
  KVQ_RETURN_IF_ERROR(dk.Upload(k, n * sizeof(In)));
  KVQ_RETURN_IF_ERROR(dv.Upload(v, n * sizeof(In)));
  KVQ_RETURN_IF_ERROR(dout.Allocate(bytes));
  {
    std::lock_guard<std::mutex> lock(HostMutex());
    if constexpr (std::is_same_v<In, float>) {
      KVQ_RETURN_IF_ERROR(CudaQuantizeLayers(enc, n_kv_heads, head_dim, 1, dk.as<float>(),
                                             dv.as<float>(), dout.as<uint8_t>(),
                                             &HostWorkspace()));
    } else {
      KVQ_RETURN_IF_ERROR(CudaQuantizeLayersFp16(enc, n_kv_heads, head_dim, 1,
                                                 dk.as<uint16_t>(), dv.as<uint16_t>(),
                                                 dout.as<uint8_t>(), &HostWorkspace()));
    }
  }
  return cuda_internal::CudaStatus(
      cudaMemcpy(out, dout.as<uint8_t>(), bytes, cudaMemcpyDeviceToHost), "copy to host");
}

}  // namespace

absl::Status CudaSupports(const BlockEncoding& enc, int head_dim) {
  KVQ_RETURN_IF_ERROR(Validate(enc, CacheShape{0, 1, head_dim}));
  auto compiled = [](auto, auto, auto, auto) { return absl::OkStatus(); };
  if (enc.is_fp16()) {
    return cuda_internal::DispatchAttentionShape(16, 16, head_dim, enc.block_tokens,
                                                 compiled);
  }
  KVQ_RETURN_IF_ERROR(QuantizeSupported(enc, head_dim));
  KVQ_RETURN_IF_ERROR(cuda_internal::DispatchAttentionShape(
      enc.bits, enc.v_bits, head_dim, enc.block_tokens, compiled));
  return cuda_internal::CheckAttentionSmem(enc, head_dim);
}

absl::Status CudaAvailable() {
  static const absl::Status* const status = new absl::Status(ProbeDevice());
  return *status;
}

CudaWorkspace::~CudaWorkspace() {
  if (device_ != nullptr) cudaFree(device_);
  if (uploaded_ != nullptr) {
    cudaEventSynchronize(uploaded_);
    cudaEventDestroy(uploaded_);
  }
  if (host_ != nullptr) cudaFreeHost(host_);
}

absl::Status CudaWorkspace::Reserve(size_t bytes, void** device) {
  if (bytes > capacity_) {
    if (device_ != nullptr) {
      // Work still queued may read the old buffer.
      KVQ_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize(), "workspace: synchronize");
      KVQ_CUDA_RETURN_IF_ERROR(cudaFree(device_), "workspace: cudaFree");
      device_ = nullptr;
      capacity_ = 0;
    }
    const size_t grown = std::max(bytes, 2 * capacity_);
    KVQ_CUDA_RETURN_IF_ERROR(cudaMalloc(&device_, grown), "workspace: cudaMalloc");
    capacity_ = grown;
  }
  *device = device_;
  return absl::OkStatus();
}

absl::Status CudaWorkspace::Staging(size_t bytes, uint8_t** host) {
  if (uploaded_ != nullptr) {
    KVQ_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(uploaded_), "workspace: upload wait");
  }
  if (bytes > host_capacity_) {
    if (host_ != nullptr) {
      KVQ_CUDA_RETURN_IF_ERROR(cudaFreeHost(host_), "workspace: cudaFreeHost");
      host_ = nullptr;
      host_capacity_ = 0;
    }
    const size_t grown = std::max(bytes, 2 * host_capacity_);
    void* p = nullptr;
    KVQ_CUDA_RETURN_IF_ERROR(cudaMallocHost(&p, grown), "workspace: cudaMallocHost");
    host_ = static_cast<uint8_t*>(p);
    host_capacity_ = grown;
  }
  *host = host_;
  return absl::OkStatus();
}

absl::Status CudaWorkspace::Upload(void* device, size_t bytes, CudaStream stream) {
  if (uploaded_ == nullptr) {
    KVQ_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&uploaded_, cudaEventDisableTiming),
                             "workspace: event");
  }
  KVQ_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(device, host_, bytes, cudaMemcpyHostToDevice, stream),
      "workspace: upload");
  KVQ_CUDA_RETURN_IF_ERROR(cudaEventRecord(uploaded_, stream), "workspace: record");
  return absl::OkStatus();
}

absl::Status CudaQuantizeLayerHost(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                                   const float* k, const float* v, uint8_t* out) {
  return QuantizeHost<float>(enc, n_kv_heads, head_dim, k, v, out);
}

absl::Status CudaQuantizeLayerFp16Host(const BlockEncoding& enc, int n_kv_heads,
                                       int head_dim, const uint16_t* k, const uint16_t* v,
                                       uint8_t* out) {
  return QuantizeHost<uint16_t>(enc, n_kv_heads, head_dim, k, v, out);
}

absl::Status CudaDecodeAttentionHost(const AttentionParams& params,
                                     absl::Span<const AttentionTask> batch) {
  KVQ_RETURN_IF_ERROR(CheckAttentionArgs(params, batch));
  bool any_quantized = false;
  for (const AttentionTask& t : batch) any_quantized |= !t.cache->quantized.empty();
  KVQ_RETURN_IF_ERROR(CudaSupports(any_quantized
                                       ? params.quantized_encoding
                                       : BlockEncoding::Fp16(params.block_tokens),
                                   params.head_dim));
  if (batch.empty()) return absl::OkStatus();
  KVQ_RETURN_IF_ERROR(CudaAvailable());
  const size_t q_bytes =
      LayerBytes(params.quantized_encoding, params.n_kv_heads, params.head_dim);
  const size_t f_bytes = LayerBytes(BlockEncoding::Fp16(params.block_tokens),
                                    params.n_kv_heads, params.head_dim);
  // Every distinct part once, packed into one upload (offsets are multiples
  // of 16 because part sizes are).
  std::unordered_map<const uint8_t*, size_t> offsets;
  std::vector<uint8_t> packed;
  auto add = [&](const uint8_t* part, size_t bytes) {
    if (offsets.emplace(part, packed.size()).second) {
      packed.insert(packed.end(), part, part + bytes);
      packed.resize((packed.size() + 15) / 16 * 16);
    }
  };
  for (const AttentionTask& t : batch) {
    for (const uint8_t* part : t.cache->quantized) add(part, q_bytes);
    for (const uint8_t* part : t.cache->fp16) add(part, f_bytes);
  }
  const size_t qo = static_cast<size_t>(params.n_heads) * params.head_dim;
  std::vector<float> queries(qo * batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    std::memcpy(&queries[i * qo], batch[i].q, qo * sizeof(float));
  }
  DeviceBuffer d_parts, d_q, d_out;
  KVQ_RETURN_IF_ERROR(d_parts.Upload(packed.data(), packed.size()));
  KVQ_RETURN_IF_ERROR(d_q.Upload(queries.data(), queries.size() * sizeof(float)));
  KVQ_RETURN_IF_ERROR(d_out.Allocate(queries.size() * sizeof(float)));

  std::vector<std::vector<const uint8_t*>> quantized(batch.size()), fp16(batch.size());
  std::vector<CudaSequence> seqs(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    for (const uint8_t* part : batch[i].cache->quantized) {
      quantized[i].push_back(d_parts.as<uint8_t>() + offsets.at(part));
    }
    for (const uint8_t* part : batch[i].cache->fp16) {
      fp16[i].push_back(d_parts.as<uint8_t>() + offsets.at(part));
    }
    seqs[i].quantized = quantized[i];
    seqs[i].fp16 = fp16[i];
    seqs[i].n_tokens = batch[i].cache->n_tokens;
    seqs[i].q = d_q.as<float>() + i * qo;
    seqs[i].out = d_out.as<float>() + i * qo;
  }
  {
    std::lock_guard<std::mutex> lock(HostMutex());
    KVQ_RETURN_IF_ERROR(CudaDecodeAttention(params, seqs, &HostWorkspace()));
    KVQ_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize(), "decode attention");
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    KVQ_CUDA_RETURN_IF_ERROR(cudaMemcpy(batch[i].out, d_out.as<float>() + i * qo,
                                        qo * sizeof(float), cudaMemcpyDeviceToHost),
                             "copy to host");
  }
  return absl::OkStatus();
}

const KernelSet& CudaKernels() {
  static const KernelSet* const kSet =
      new KernelSet{"cuda", &CudaQuantizeLayerHost, &CudaQuantizeLayerFp16Host,
                    &CudaDecodeAttentionHost};
  return *kSet;
}

}  // namespace kvq::kernels
