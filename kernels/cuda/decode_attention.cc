// CudaDecodeAttention (cuda_kernels.h): argument checks, the split plan,
// descriptor upload, and the one dispatch from (bits, v_bits, head_dim, B) to a
// compiled-in LaunchDecodeAttention instantiation (decode_attention_*bit.cu).
// Host code only, compiled by the C++ toolchain.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/block_format.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/internal/dispatch.h"
#include "kernels/cuda/internal/launch.h"
#include "kernels/cuda/internal/params.h"

namespace kvq::kernels {
namespace {

using cuda_internal::DecodeParams;
using cuda_internal::SequenceDesc;

constexpr size_t kAlign = 256;
size_t AlignUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

bool Aligned(const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

absl::Status Invalid(size_t i, const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("cuda decode_attention: batch[", i, "]: ", what));
}

absl::Status CheckSequence(const AttentionParams& p, size_t i, const CudaSequence& s) {
  const int B = p.block_tokens;
  const int64_t nq = s.quantized.size(), nf = s.fp16.size();
  if (s.q == nullptr || s.out == nullptr) return Invalid(i, "null q or out");
  if (!Aligned(s.q, 4) || !Aligned(s.out, 4)) return Invalid(i, "misaligned q or out");
  if (s.n_tokens < 1) return Invalid(i, absl::StrCat("n_tokens ", s.n_tokens, " < 1"));
  const bool consistent =
      nf == 0 ? s.n_tokens == nq * B
              : s.n_tokens > (nq + nf - 1) * B && s.n_tokens <= (nq + nf) * B;
  if (!consistent) {
    return Invalid(i, absl::StrCat("n_tokens ", s.n_tokens, " does not fit ", nq,
                                   " quantized and ", nf, " fp16 blocks of ", B));
  }
  for (absl::Span<const uint8_t* const> blocks : {s.quantized, s.fp16}) {
    for (const uint8_t* part : blocks) {
      if (part == nullptr || !Aligned(part, 16)) {
        return Invalid(i, "null or not 16-byte aligned block part");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckParams(const AttentionParams& p, bool any_quantized) {
  if (p.n_kv_heads < 1 || p.n_heads < 1 || p.n_heads % p.n_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuda decode_attention: n_heads ", p.n_heads,
                     " is not a positive multiple of n_kv_heads ", p.n_kv_heads));
  }
  KVQ_RETURN_IF_ERROR(Validate(BlockEncoding::Fp16(p.block_tokens),
                               CacheShape{0, p.n_kv_heads, p.head_dim}));
  if (any_quantized) {
    const BlockEncoding& enc = p.quantized_encoding;
    KVQ_RETURN_IF_ERROR(Validate(enc, CacheShape{0, p.n_kv_heads, p.head_dim}));
    if (enc.is_fp16() || enc.block_tokens != p.block_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cuda decode_attention: quantized blocks need a quantized encoding with B = ",
          p.block_tokens));
    }
    if (enc.edge_layers != 0) {
      return absl::InvalidArgumentError(
          "cuda decode_attention: quantized_encoding has edge layers; pass its "
          "ForLayer()");
    }
  }
  return absl::OkStatus();
}

// Picks the number of splits so that the grid has a few CTAs per SM.
void PlanSplits(int sm_count, int max_blocks, DecodeParams* p) {
  const int64_t base = int64_t{p->batch} * p->n_kv_heads * p->head_chunks;
  const int64_t want = (4 * int64_t{sm_count} + base - 1) / base;
  const int64_t most = std::max<int64_t>(1, max_blocks / cuda_internal::kAttentionWarps);
  const int splits = static_cast<int>(std::clamp<int64_t>(want, 1, most));
  p->blocks_per_split = (max_blocks + splits - 1) / splits;
  p->n_splits = (max_blocks + p->blocks_per_split - 1) / p->blocks_per_split;
}

}  // namespace

absl::Status CudaDecodeAttention(const AttentionParams& params,
                                 absl::Span<const CudaSequence> batch,
                                 CudaWorkspace* workspace, CudaStream stream) {
  if (workspace == nullptr) {
    return absl::InvalidArgumentError("cuda decode_attention: null workspace");
  }
  bool any_quantized = false;
  int max_blocks = 0;
  size_t n_pointers = 0;
  for (const CudaSequence& s : batch) {
    any_quantized |= !s.quantized.empty();
    max_blocks = std::max<int>(max_blocks, s.quantized.size() + s.fp16.size());
    n_pointers += s.quantized.size() + s.fp16.size();
  }
  KVQ_RETURN_IF_ERROR(CheckParams(params, any_quantized));
  for (size_t i = 0; i < batch.size(); ++i) {
    KVQ_RETURN_IF_ERROR(CheckSequence(params, i, batch[i]));
  }
  if (batch.size() > 65535) {
    return absl::InvalidArgumentError("cuda decode_attention: batch larger than 65535");
  }

  // The one dispatch: runtime shape -> compiled-in launcher.
  using Launcher = absl::Status (*)(DecodeParams, cudaStream_t);
  Launcher launch = nullptr;
  const BlockEncoding& enc = params.quantized_encoding;
  const absl::Status dispatched = cuda_internal::DispatchAttentionShape(
      any_quantized ? enc.bits : 16, any_quantized ? enc.v_bits : 16, params.head_dim,
      params.block_tokens, [&](auto b, auto vb, auto d, auto t) {
        launch =
            &cuda_internal::LaunchDecodeAttention<decltype(b)::value, decltype(vb)::value,
                                                  decltype(d)::value, decltype(t)::value>;
        return absl::OkStatus();
      });
  if (!dispatched.ok()) return dispatched;
  if (any_quantized) {
    KVQ_RETURN_IF_ERROR(cuda_internal::CheckAttentionSmem(enc, params.head_dim));
  }
  if (batch.empty()) return absl::OkStatus();
  KVQ_RETURN_IF_ERROR(CudaAvailable());

  DecodeParams p;
  p.batch = static_cast<int>(batch.size());
  p.n_heads = params.n_heads;
  p.n_kv_heads = params.n_kv_heads;
  p.group = any_quantized ? enc.group : 0;
  p.k_outliers = any_quantized ? enc.k_outliers : 0;
  p.v_outliers = any_quantized ? enc.v_outliers : 0;
  p.u8_scales = any_quantized && enc.u8_scales();
  const int group_size = params.n_heads / params.n_kv_heads;
  p.head_chunks =
      (group_size + cuda_internal::kMaxHeadsPerCta - 1) / cuda_internal::kMaxHeadsPerCta;
  p.scale_log2 = static_cast<float>(1.4426950408889634 /
                                    std::sqrt(static_cast<double>(params.head_dim)));
  p.quantized_head_bytes =
      any_quantized ? GetHeadLayout(params.quantized_encoding, params.head_dim).head_bytes
                    : 0;
  p.fp16_head_bytes =
      GetHeadLayout(BlockEncoding::Fp16(params.block_tokens), params.head_dim).head_bytes;

  int device = 0, sm_count = 0;
  KVQ_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device), "cudaGetDevice");
  KVQ_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device),
      "multiprocessor count");
  PlanSplits(sm_count, max_blocks, &p);

  // Workspace: [descs][block pointers][partial_o][partial_ml].
  const size_t desc_bytes = AlignUp(sizeof(SequenceDesc) * batch.size());
  const size_t ptr_bytes = AlignUp(sizeof(const uint8_t*) * n_pointers);
  const size_t slots = size_t{batch.size()} * p.n_heads * p.n_splits;
  const size_t o_bytes =
      p.n_splits > 1 ? AlignUp(sizeof(float) * slots * params.head_dim) : 0;
  const size_t ml_bytes = p.n_splits > 1 ? AlignUp(sizeof(float) * slots * 2) : 0;
  void* base = nullptr;
  KVQ_RETURN_IF_ERROR(
      workspace->Reserve(desc_bytes + ptr_bytes + o_bytes + ml_bytes, &base));
  uint8_t* d = static_cast<uint8_t*>(base);
  p.seqs = reinterpret_cast<const SequenceDesc*>(d);
  const uint8_t** d_ptrs = reinterpret_cast<const uint8_t**>(d + desc_bytes);
  p.partial_o = reinterpret_cast<float*>(d + desc_bytes + ptr_bytes);
  p.partial_ml = reinterpret_cast<float*>(d + desc_bytes + ptr_bytes + o_bytes);

  uint8_t* staging = nullptr;
  KVQ_RETURN_IF_ERROR(workspace->Staging(desc_bytes + ptr_bytes, &staging));
  SequenceDesc* descs = reinterpret_cast<SequenceDesc*>(staging);
  const uint8_t** ptrs = reinterpret_cast<const uint8_t**>(staging + desc_bytes);
  size_t next = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const CudaSequence& s = batch[i];
    const int n_blocks = static_cast<int>(s.quantized.size() + s.fp16.size());
    descs[i].blocks = d_ptrs + next;
    for (const uint8_t* part : s.quantized) ptrs[next++] = part;
    for (const uint8_t* part : s.fp16) ptrs[next++] = part;
    descs[i].q = s.q;
    descs[i].out = s.out;
    descs[i].n_quantized = static_cast<int>(s.quantized.size());
    descs[i].n_fp16 = static_cast<int>(s.fp16.size());
    descs[i].n_tokens = s.n_tokens;
    descs[i].n_splits = (n_blocks + p.blocks_per_split - 1) / p.blocks_per_split;
  }
  KVQ_RETURN_IF_ERROR(workspace->Upload(base, desc_bytes + ptr_bytes, stream));
  return launch(p, stream);
}

}  // namespace kvq::kernels
