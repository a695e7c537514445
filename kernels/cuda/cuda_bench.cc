#include "kernels/cuda/cuda_bench.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "kernels/block_format.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/kernel_set.h"

namespace kvq::kernels {
namespace cuda_internal {
absl::Status LaunchRead(const void* data, size_t bytes, unsigned* sink,
                        cudaStream_t stream);  // read_bandwidth.cu
}  // namespace cuda_internal

namespace {

using cuda_internal::CudaStatus;

// Device memory freed on destruction.
class DeviceMem {
 public:
  DeviceMem() = default;
  DeviceMem(const DeviceMem&) = delete;
  DeviceMem& operator=(const DeviceMem&) = delete;
  ~DeviceMem() {
    if (p_ != nullptr) cudaFree(p_);
  }
  absl::Status Allocate(size_t bytes) {
    if (p_ != nullptr) cudaFree(p_);
    p_ = nullptr;
    return CudaStatus(cudaMalloc(&p_, std::max<size_t>(bytes, 16)), "bench cudaMalloc");
  }
  uint8_t* bytes() const { return static_cast<uint8_t*>(p_); }
  float* floats() const { return static_cast<float*>(p_); }

 private:
  void* p_ = nullptr;
};

// Times `call` (which enqueues work on the default stream) with events:
// median over reps after 3 warm-up calls, in microseconds.
template <typename F>
absl::StatusOr<double> MedianMicros(int reps, F&& call) {
  cudaEvent_t start, stop;
  KVQ_RETURN_IF_ERROR(CudaStatus(cudaEventCreate(&start), "event"));
  KVQ_RETURN_IF_ERROR(CudaStatus(cudaEventCreate(&stop), "event"));
  std::vector<double> us;
  absl::Status status;
  for (int i = 0; i < reps + 3 && status.ok(); ++i) {
    status.Update(CudaStatus(cudaEventRecord(start), "record"));
    status.Update(call(i));
    status.Update(CudaStatus(cudaEventRecord(stop), "record"));
    status.Update(CudaStatus(cudaEventSynchronize(stop), "synchronize"));
    float ms = 0;
    status.Update(CudaStatus(cudaEventElapsedTime(&ms, start, stop), "elapsed"));
    if (i >= 3) us.push_back(1000.0 * ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  KVQ_RETURN_IF_ERROR(status);
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

// Model-like K/V: N(0, 1), keys with outlier channels (every 16th and 1).
std::vector<float> RandomKv(std::mt19937& rng, size_t rows, int head_dim, bool keys) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(rows * head_dim);
  for (size_t i = 0; i < x.size(); ++i) {
    const int c = static_cast<int>(i % head_dim);
    x[i] = normal(rng);
    if (keys && (c % 16 == 0 || c == 1)) x[i] = 12.0f * x[i] + 3.0f;
  }
  return x;
}

absl::Status CheckOptions(const CudaBenchOptions& o) {
  if (o.reps < 1 || o.working_set < 16 || o.residual < 0 ||
      o.residual % o.block_tokens != 0) {
    return absl::InvalidArgumentError("cuda bench: reps >= 1, R a multiple of B");
  }
  for (int ctx : o.contexts) {
    if (ctx <= o.residual || ctx % o.block_tokens != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cuda bench: context ", ctx, " must be a multiple of B larger than R"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<CudaBenchRow>> RunCudaBench(const CudaBenchOptions& o,
                                                       double* read_gb_per_s) {
  KVQ_RETURN_IF_ERROR(CheckOptions(o));
  const BlockEncoding qenc = BlockEncoding::Quantized(o.bits, o.block_tokens, o.group);
  const BlockEncoding fenc = BlockEncoding::Fp16(o.block_tokens);
  KVQ_RETURN_IF_ERROR(CudaSupports(qenc, o.head_dim));
  KVQ_RETURN_IF_ERROR(CudaAvailable());
  const int H = o.n_kv_heads, D = o.head_dim, B = o.block_tokens;
  const size_t q_part = LayerBytes(qenc, H, D), f_part = LayerBytes(fenc, H, D);
  std::vector<CudaBenchRow> rows;
  CudaWorkspace ws;

  // A pool of distinct blocks, quantized and converted by the kernels.
  constexpr int kPool = 16;
  const size_t block_values = static_cast<size_t>(H) * B * D;
  std::mt19937 rng(42);
  const std::vector<float> k = RandomKv(rng, kPool * static_cast<size_t>(H) * B, D, true);
  const std::vector<float> v =
      RandomKv(rng, kPool * static_cast<size_t>(H) * B, D, false);
  DeviceMem d_k, d_v, q_pool, f_pool;
  KVQ_RETURN_IF_ERROR(d_k.Allocate(k.size() * 4));
  KVQ_RETURN_IF_ERROR(d_v.Allocate(v.size() * 4));
  KVQ_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpy(d_k.floats(), k.data(), k.size() * 4, cudaMemcpyHostToDevice),
                 "upload"));
  KVQ_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpy(d_v.floats(), v.data(), v.size() * 4, cudaMemcpyHostToDevice),
                 "upload"));
  KVQ_RETURN_IF_ERROR(q_pool.Allocate(kPool * q_part));
  KVQ_RETURN_IF_ERROR(f_pool.Allocate(kPool * f_part));
  KVQ_RETURN_IF_ERROR(CudaQuantizeLayers(qenc, H, D, kPool, d_k.floats(), d_v.floats(),
                                         q_pool.bytes(), &ws));
  KVQ_RETURN_IF_ERROR(CudaQuantizeLayers(fenc, H, D, kPool, d_k.floats(), d_v.floats(),
                                         f_pool.bytes(), &ws));

  // Read bandwidth over the working set.
  DeviceMem arena;
  KVQ_RETURN_IF_ERROR(arena.Allocate(o.working_set));
  KVQ_RETURN_IF_ERROR(
      CudaStatus(cudaMemset(arena.bytes(), 1, o.working_set), "bench memset"));
  DeviceMem sink;
  KVQ_RETURN_IF_ERROR(sink.Allocate(16));
  KVQ_ASSIGN_OR_RETURN(const double read_us, MedianMicros(o.reps, [&](int) {
                         return cuda_internal::LaunchRead(
                             arena.bytes(), o.working_set / 16 * 16,
                             reinterpret_cast<unsigned*>(sink.bytes()), nullptr);
                       }));
  const double read_bps = (o.working_set / 16 * 16) / (read_us * 1e-6);
  *read_gb_per_s = read_bps / 1e9;

  // Quantize throughput: the pool's input repeated over the working set.
  {
    const size_t in_block = block_values * 4 * 2;  // K and V floats
    const int n_blocks =
        static_cast<int>(std::max<size_t>(1, o.working_set / 2 / in_block));
    DeviceMem big_k, big_v, parts;
    KVQ_RETURN_IF_ERROR(big_k.Allocate(n_blocks * block_values * 4));
    KVQ_RETURN_IF_ERROR(big_v.Allocate(n_blocks * block_values * 4));
    KVQ_RETURN_IF_ERROR(parts.Allocate(n_blocks * q_part));
    for (int i = 0; i < n_blocks; ++i) {
      const size_t src = (i % kPool) * block_values, dst = i * block_values;
      KVQ_RETURN_IF_ERROR(
          CudaStatus(cudaMemcpy(big_k.floats() + dst, d_k.floats() + src,
                                block_values * 4, cudaMemcpyDeviceToDevice),
                     "fill"));
      KVQ_RETURN_IF_ERROR(
          CudaStatus(cudaMemcpy(big_v.floats() + dst, d_v.floats() + src,
                                block_values * 4, cudaMemcpyDeviceToDevice),
                     "fill"));
    }
    KVQ_ASSIGN_OR_RETURN(const double us, MedianMicros(o.reps, [&](int) {
                           return CudaQuantizeLayers(qenc, H, D, n_blocks, big_k.floats(),
                                                     big_v.floats(), parts.bytes(), &ws);
                         }));
    CudaBenchRow row;
    row.op = "quantize";
    row.kv = absl::StrCat("kivi", o.bits);
    row.us_per_call = us;
    row.bytes_read = static_cast<double>(n_blocks) * in_block;
    row.gb_per_s = row.bytes_read / (us * 1e-6) / 1e9;
    row.bw_fraction = row.bytes_read / (us * 1e-6) / read_bps;
    rows.push_back(row);
  }

  // Attention: one query token per call, sequences visited in turn.
  AttentionParams params;
  params.quantized_encoding = qenc;
  params.block_tokens = B;
  params.n_heads = o.n_heads;
  params.n_kv_heads = H;
  params.head_dim = D;
  DeviceMem q, out;
  KVQ_RETURN_IF_ERROR(q.Allocate(static_cast<size_t>(o.n_heads) * D * 4));
  KVQ_RETURN_IF_ERROR(out.Allocate(static_cast<size_t>(o.n_heads) * D * 4));
  const std::vector<float> hq = RandomKv(rng, o.n_heads, D, false);
  KVQ_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpy(q.floats(), hq.data(), hq.size() * 4, cudaMemcpyHostToDevice),
                 "upload"));
  for (int ctx : o.contexts) {
    double fp16_us = 0;
    for (bool kivi : {false, true}) {
      const int n_blocks = ctx / B;
      const int nq = kivi ? (ctx - o.residual) / B : 0, nf = n_blocks - nq;
      const size_t seq_bytes = nq * q_part + nf * f_part;
      const int copies = static_cast<int>(
          std::max<size_t>(1, (o.working_set + seq_bytes - 1) / seq_bytes));
      DeviceMem caches;
      KVQ_RETURN_IF_ERROR(caches.Allocate(copies * seq_bytes));
      std::vector<std::vector<const uint8_t*>> qptr(copies), fptr(copies);
      std::vector<CudaSequence> seqs(copies);
      for (int c = 0; c < copies; ++c) {
        uint8_t* base = caches.bytes() + c * seq_bytes;
        for (int b = 0; b < n_blocks; ++b) {
          const bool quant = b < nq;
          uint8_t* dst =
              quant ? base + b * q_part : base + nq * q_part + (b - nq) * f_part;
          const uint8_t* src = quant ? q_pool.bytes() + (b % kPool) * q_part
                                     : f_pool.bytes() + (b % kPool) * f_part;
          KVQ_RETURN_IF_ERROR(CudaStatus(
              cudaMemcpy(dst, src, quant ? q_part : f_part, cudaMemcpyDeviceToDevice),
              "fill"));
          (quant ? qptr[c] : fptr[c]).push_back(dst);
        }
        seqs[c].quantized = qptr[c];
        seqs[c].fp16 = fptr[c];
        seqs[c].n_tokens = ctx;
        seqs[c].q = q.floats();
        seqs[c].out = out.floats();
      }
      KVQ_ASSIGN_OR_RETURN(const double us, MedianMicros(o.reps, [&](int i) {
                             return CudaDecodeAttention(params, {seqs[i % copies]}, &ws);
                           }));
      CudaBenchRow row;
      row.op = "attention";
      row.ctx = ctx;
      row.kv = kivi ? absl::StrCat("kivi", o.bits) : "fp16";
      row.us_per_call = us;
      row.bytes_read = static_cast<double>(seq_bytes);
      row.gb_per_s = seq_bytes / (us * 1e-6) / 1e9;
      row.bw_fraction = seq_bytes / (us * 1e-6) / read_bps;
      if (kivi) {
        row.speedup_vs_fp16 = fp16_us / us;
      } else {
        fp16_us = us;
      }
      rows.push_back(row);
    }
  }
  return rows;
}

std::string FormatCudaBench(const std::vector<CudaBenchRow>& rows, double read_gb_per_s,
                            bool json) {
  cudaDeviceProp prop{};
  int device = 0;
  std::string name = "unknown";
  if (cudaGetDevice(&device) == cudaSuccess &&
      cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
    name = prop.name;
  }
  std::string s;
  if (json) {
    absl::StrAppendFormat(&s, "{\"device\": \"%s\", \"read_gb_per_s\": %.1f, \"rows\": [",
                          name, read_gb_per_s);
    for (size_t i = 0; i < rows.size(); ++i) {
      const CudaBenchRow& r = rows[i];
      absl::StrAppendFormat(
          &s,
          "%s\n  {\"op\": \"%s\", \"ctx\": %d, \"kv\": \"%s\", \"us_per_call\": %.2f, "
          "\"bytes_read\": %.0f, \"gb_per_s\": %.1f, \"bw_fraction\": %.3f, "
          "\"speedup_vs_fp16\": %.2f}",
          i ? "," : "", r.op, r.ctx, r.kv, r.us_per_call, r.bytes_read, r.gb_per_s,
          r.bw_fraction, r.speedup_vs_fp16);
    }
    s += "\n]}\n";
    return s;
  }
  absl::StrAppendFormat(&s, "device: %s, read bandwidth %.1f GB/s\n", name,
                        read_gb_per_s);
  absl::StrAppendFormat(&s, "%-10s %7s %-6s %12s %14s %9s %11s %8s\n", "op", "ctx", "kv",
                        "us_per_call", "bytes_read", "GB/s", "bw_fraction", "speedup");
  for (const CudaBenchRow& r : rows) {
    absl::StrAppendFormat(
        &s, "%-10s %7d %-6s %12.2f %14.0f %9.1f %11.3f %8s\n", r.op, r.ctx, r.kv,
        r.us_per_call, r.bytes_read, r.gb_per_s, r.bw_fraction,
        r.speedup_vs_fp16 > 0 ? absl::StrFormat("%.2f", r.speedup_vs_fp16) : "");
  }
  return s;
}

}  // namespace kvq::kernels
