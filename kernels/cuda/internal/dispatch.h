// Runtime values -> template arguments, the one place per operation where
// the compiled-in shapes are chosen (FlashInfer's DISPATCH_* idiom, as fold
// expressions). A value outside the list is INVALID_ARGUMENT.
//
//   return DispatchInt<2, 4, 8>(bits, "bits", [&](auto b) {
//     return Launch<decltype(b)::value>(params);
//   });
#ifndef KVQ_KERNELS_CUDA_INTERNAL_DISPATCH_H_
#define KVQ_KERNELS_CUDA_INTERNAL_DISPATCH_H_

#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/block_format.h"
#include "kernels/cuda/internal/params.h"

namespace kvq::kernels::cuda_internal {

// Calls f(std::integral_constant<int, v>) for the kValues entry v equal to
// `value` and returns its status.
template <int... kValues, typename F>
absl::Status DispatchInt(int value, const char* what, F&& f) {
  absl::Status status;
  const bool found =
      ((value == kValues
            ? (status.Update(f(std::integral_constant<int, kValues>{})), true)
            : false) ||
       ...);
  if (found) return status;
  return absl::InvalidArgumentError(absl::StrCat(
      "cuda kernels: ", what, " ", value,
      " is not compiled in (supported: ", absl::StrJoin({kValues...}, ", "), ")"));
}

// The compiled-in shapes, listed once. Quantize: f(bits, v_bits, head_dim,
// B); attention: f(bits, v_bits, head_dim, B), where bits == v_bits == 16
// means a cache of fp16 blocks; all std::integral_constant arguments.
// Extending a list means adding instantiations to
// decode_attention_launch.cuh (KVQ_INSTANTIATE_DECODE_ATTENTION) too.
template <typename F>
absl::Status DispatchQuantizeShape(int bits, int v_bits, int head_dim, int block_tokens,
                                   F&& f) {
  return DispatchInt<2, 4, 8>(bits, "bits", [&](auto b) {
    return DispatchInt<2, 4, 8>(v_bits, "v_bits", [&](auto vb) {
      return DispatchInt<8, 64, 128>(head_dim, "head_dim", [&](auto d) {
        return DispatchInt<16, 32>(block_tokens, "B",
                                   [&](auto t) { return f(b, vb, d, t); });
      });
    });
  });
}

template <typename F>
absl::Status DispatchAttentionShape(int bits, int v_bits, int head_dim, int block_tokens,
                                    F&& f) {
  auto shape = [&](auto b, auto vb) {
    return DispatchInt<8, 64, 128>(head_dim, "head_dim", [&](auto d) {
      return DispatchInt<16, 32>(block_tokens, "B",
                                 [&](auto t) { return f(b, vb, d, t); });
    });
  };
  return DispatchInt<2, 4, 8, 16>(bits, "bits", [&](auto b) {
    if constexpr (decltype(b)::value == 16) {
      return DispatchInt<16>(v_bits, "v_bits of an fp16 cache",
                             [&](auto vb) { return shape(b, vb); });
    } else {
      return DispatchInt<2, 4, 8>(v_bits, "v_bits",
                                  [&](auto vb) { return shape(b, vb); });
    }
  });
}

// OK when attention over quantized blocks of `enc` (a per-layer encoding)
// fits the attention kernel's shared memory (kMaxAttentionSmem): a format 2
// encoding with very many outliers may not. INVALID_ARGUMENT otherwise.
inline absl::Status CheckAttentionSmem(const BlockEncoding& enc, int head_dim) {
  const size_t head_bytes = GetHeadLayout(enc, head_dim).head_bytes;
  const size_t smem = AttentionSmemBytes(
      head_dim, enc.block_tokens,
      AttentionStageBytes(head_dim, enc.block_tokens, head_bytes, enc.v_outliers));
  if (smem <= kMaxAttentionSmem) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("cuda kernels: a quantized head section of ", head_bytes, " bytes (",
                   enc.k_outliers, "/", enc.v_outliers, " outliers) needs ", smem,
                   " bytes of shared memory per attention CTA, more than the ",
                   kMaxAttentionSmem, " supported"));
}

}  // namespace kvq::kernels::cuda_internal

#endif  // KVQ_KERNELS_CUDA_INTERNAL_DISPATCH_H_
