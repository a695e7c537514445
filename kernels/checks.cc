#include "kernels/checks.h"

#include <cmath>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "kernels/fp16.h"

namespace kvq::kernels {

absl::Status CheckQuantizeArgs(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                               const void* k, const void* v, const void* out) {
  KVQ_RETURN_IF_ERROR(Validate(enc, CacheShape{0, n_kv_heads, head_dim}));
  if (enc.edge_layers != 0) {
    return absl::InvalidArgumentError(
        "quantize_layer: a block encoding with edge layers; pass enc.ForLayer(layer, "
        "n_layers)");
  }
  if (k == nullptr || v == nullptr || out == nullptr) {
    return absl::InvalidArgumentError("quantize_layer: null k, v or out");
  }
  return absl::OkStatus();
}

absl::Status CheckFloatsFitHalf(const float* x, size_t n, const char* what) {
  for (size_t i = 0; i < n; ++i) {
    if (!HalfIsFinite(FloatToHalf(x[i]))) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s[%d] = %g is %s", what, i, x[i],
                          std::isfinite(x[i]) ? "outside the fp16 range" : "not finite"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckHalvesFinite(const uint16_t* x, size_t n, const char* what) {
  for (size_t i = 0; i < n; ++i) {
    if (!HalfIsFinite(x[i])) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s[%d] = fp16 0x%04x is not finite", what, i, x[i]));
    }
  }
  return absl::OkStatus();
}

namespace {

absl::Status CheckTask(const AttentionParams& p, const AttentionTask& task) {
  if (task.q == nullptr || task.out == nullptr || task.cache == nullptr) {
    return absl::InvalidArgumentError("null q, out or cache");
  }
  const SequenceCache& c = *task.cache;
  for (const uint8_t* part : c.quantized) {
    if (part == nullptr) return absl::InvalidArgumentError("null quantized block part");
  }
  for (const uint8_t* part : c.fp16) {
    if (part == nullptr) return absl::InvalidArgumentError("null fp16 block part");
  }
  const int64_t B = p.block_tokens;
  const int64_t nq = static_cast<int64_t>(c.quantized.size());
  const int64_t nf = static_cast<int64_t>(c.fp16.size());
  // Quantized blocks are full; fp16 blocks are full except the last, which
  // holds 1..B tokens.
  const int64_t lo = nf == 0 ? nq * B : (nq + nf - 1) * B + 1;
  const int64_t hi = (nq + nf) * B;
  if (c.n_tokens < 1 || c.n_tokens < lo || c.n_tokens > hi) {
    return absl::InvalidArgumentError(absl::StrCat(
        "n_tokens ", c.n_tokens, " does not fit ", nq, " quantized and ", nf,
        " fp16 blocks of ", B, " tokens (want ", lo < 1 ? 1 : lo, "..", hi, ")"));
  }
  const int64_t nq_elems = static_cast<int64_t>(p.n_heads) * p.head_dim;
  for (int64_t i = 0; i < nq_elems; ++i) {
    if (!std::isfinite(task.q[i])) {
      return absl::InvalidArgumentError(
          absl::StrFormat("q[%d] = %g is not finite", i, task.q[i]));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckAttentionArgs(const AttentionParams& p,
                                absl::Span<const AttentionTask> batch) {
  if (p.n_kv_heads < 1 || p.n_kv_heads > kMaxKvHeads) {
    return absl::InvalidArgumentError(absl::StrCat("decode_attention: n_kv_heads ",
                                                   p.n_kv_heads, " is outside [1, ",
                                                   kMaxKvHeads, "]"));
  }
  if (p.n_heads < 1 || p.n_heads % p.n_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode_attention: n_heads ", p.n_heads,
                     " is not a positive multiple of n_kv_heads ", p.n_kv_heads));
  }
  if (p.head_dim < 1 || p.head_dim > kMaxHeadDim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "decode_attention: head_dim ", p.head_dim, " is outside [1, ", kMaxHeadDim, "]"));
  }
  if (p.block_tokens < 1 || p.block_tokens > kMaxBlockTokens) {
    return absl::InvalidArgumentError(absl::StrCat("decode_attention: block_tokens ",
                                                   p.block_tokens, " is outside [1, ",
                                                   kMaxBlockTokens, "]"));
  }
  if (p.n_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode_attention: n_threads ", p.n_threads, " < 1"));
  }
  bool any_quantized = false;
  for (const AttentionTask& task : batch) {
    if (task.cache != nullptr && !task.cache->quantized.empty()) any_quantized = true;
  }
  if (any_quantized) {
    const BlockEncoding& enc = p.quantized_encoding;
    if (enc.is_fp16()) {
      return absl::InvalidArgumentError(
          "decode_attention: quantized blocks given but quantized_encoding is fp16");
    }
    if (absl::Status s = Validate(enc, CacheShape{0, p.n_kv_heads, p.head_dim});
        !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("decode_attention: quantized_encoding: ", s.message()));
    }
    if (enc.edge_layers != 0) {
      return absl::InvalidArgumentError(
          "decode_attention: quantized_encoding has edge layers; pass its ForLayer()");
    }
    if (enc.block_tokens != p.block_tokens) {
      return absl::InvalidArgumentError(
          absl::StrCat("decode_attention: quantized_encoding B ", enc.block_tokens,
                       " != block_tokens ", p.block_tokens));
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (absl::Status s = CheckTask(p, batch[i]); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("decode_attention: batch[", i, "]: ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace kvq::kernels
