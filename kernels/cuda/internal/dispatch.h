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

// The compiled-in shapes, listed once. f(bits, head_dim, B) receives
// std::integral_constant arguments; bits 16 (attention only) means a cache
// of fp16 blocks. Extending a list means adding instantiations to
// decode_attention_launch.cuh (KVQ_INSTANTIATE_DECODE_ATTENTION) too.
template <typename F>
absl::Status DispatchQuantizeShape(int bits, int head_dim, int block_tokens, F&& f) {
  return DispatchInt<2, 4, 8>(bits, "bits", [&](auto b) {
    return DispatchInt<8, 64, 128>(head_dim, "head_dim", [&](auto d) {
      return DispatchInt<16, 32>(block_tokens, "B", [&](auto t) { return f(b, d, t); });
    });
  });
}

template <typename F>
absl::Status DispatchAttentionShape(int bits, int head_dim, int block_tokens, F&& f) {
  return DispatchInt<2, 4, 8, 16>(bits, "bits", [&](auto b) {
    return DispatchInt<8, 64, 128>(head_dim, "head_dim", [&](auto d) {
      return DispatchInt<16, 32>(block_tokens, "B", [&](auto t) { return f(b, d, t); });
    });
  });
}

}  // namespace kvq::kernels::cuda_internal

#endif  // KVQ_KERNELS_CUDA_INTERNAL_DISPATCH_H_
