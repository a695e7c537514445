// bf16 <-> fp32: the weights of --weights bf16 (bf16_matmul.h) and, on CPUs
// with AVX-512 BF16, the activations that vdpbf16ps multiplies them with.
#ifndef KVQ_MODEL_INTERNAL_BF16_H_
#define KVQ_MODEL_INTERNAL_BF16_H_

#include <cstdint>

namespace kvq::model_internal {

// fp32 -> bf16, round to nearest even (NaN stays NaN): vcvtne2ps2bf16's
// rounding.
inline uint16_t FloatToBf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float Bf16ToFloat(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

}  // namespace kvq::model_internal

#endif  // KVQ_MODEL_INTERNAL_BF16_H_
