// Exact IEEE 754 binary16 <-> binary32 conversion in portable scalar code,
// usable from host C++ and CUDA. Float -> half rounds to nearest, ties to
// even, handles subnormals, overflows to infinity and keeps NaNs NaN, so it
// matches x86 F16C (VCVTPS2PH with imm8 = 0) and CUDA __float2half_rn bit for
// bit on every input. Half -> float is exact.
//
//   uint16_t h = kvq::kernels::FloatToHalf(0.1f);   // 0x2e66
//   float f = kvq::kernels::HalfToFloat(h);          // 0.0999755859375f
//
// fp16 values throughout kvq are these bit patterns held in uint16_t.
#ifndef KVQ_KERNELS_FP16_H_
#define KVQ_KERNELS_FP16_H_

#include <cstdint>
#include <cstring>

#ifndef KVQ_HOST_DEVICE
#if defined(__CUDACC__)
#define KVQ_HOST_DEVICE __host__ __device__
#else
#define KVQ_HOST_DEVICE
#endif
#endif

namespace kvq::kernels {

inline constexpr uint16_t kHalfMaxFinite = 0x7bff;  // 65504
inline constexpr uint16_t kHalfInf = 0x7c00;

KVQ_HOST_DEVICE inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

KVQ_HOST_DEVICE inline float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// True unless `h` is an infinity or a NaN (exponent field all ones).
KVQ_HOST_DEVICE constexpr bool HalfIsFinite(uint16_t h) { return (h & 0x7c00) != 0x7c00; }

// Round-to-nearest-even conversion. NaN inputs give a quiet NaN that keeps
// the sign and the top 9 payload bits (as F16C does); finite values of
// magnitude >= 65520 give infinity.
KVQ_HOST_DEVICE inline uint16_t FloatToHalf(float f) {
  const uint32_t x = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) {  // Inf or NaN.
    if (abs == 0x7f800000) return sign | kHalfInf;
    return static_cast<uint16_t>(sign | 0x7e00 | ((abs >> 13) & 0x3ff));
  }
  if (abs >= 0x477ff000) return sign | kHalfInf;  // >= 65520 rounds up to Inf.
  if (abs >= 0x38800000) {                        // Normal half (>= 2^-14).
    uint32_t r = abs - 0x38000000;                // Rebias exponent 127 -> 15.
    r += 0xfff + ((r >> 13) & 1);                 // Round half to even.
    return static_cast<uint16_t>(sign | (r >> 13));
  }
  if (abs < 0x33000000) return sign;  // < 2^-25: rounds to (signed) zero.
  // Subnormal half: the value in units of 2^-24 is m * 2^(e - 126) with the
  // 24-bit significand m and biased exponent e in [102, 112].
  const int e = static_cast<int>(abs >> 23);
  const uint32_t m = (abs & 0x7fffff) | 0x800000;
  const int shift = 126 - e;  // 14..24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1))) ++q;  // May carry to 0x400 (normal).
  return static_cast<uint16_t>(sign | q);
}

// Exact widening. NaN payloads are kept (shifted into the float mantissa).
KVQ_HOST_DEVICE inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return BitsToFloat(sign | 0x7f800000 | (mant << 13));
  if (exp != 0) return BitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return BitsToFloat(sign);
  uint32_t e = 113;  // Subnormal: normalize; value = mant * 2^-24.
  while ((mant & 0x400) == 0) {
    mant <<= 1;
    --e;
  }
  return BitsToFloat(sign | (e << 23) | ((mant & 0x3ff) << 13));
}

// fp32 -> fp16 -> fp32: the value an fp16 cache holds for `f`.
KVQ_HOST_DEVICE inline float RoundToHalf(float f) { return HalfToFloat(FloatToHalf(f)); }

}  // namespace kvq::kernels

#endif  // KVQ_KERNELS_FP16_H_
