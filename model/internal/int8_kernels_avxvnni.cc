// AVX-VNNI core: VEX-encoded vpdpbusd on ymm, one panel (2 ymm: features 0-7
// and 8-15) by up to 6 rows (12 of the 16 registers).
#include <immintrin.h>

#include <cstring>

#include "model/internal/int8_kernels.h"

namespace kvq::model_internal {
namespace {

// acc += u8 x s8 sums of 4 (VEX vpdpbusd), as inline assembly: GCC 12's
// builtin for it made the accumulators round-trip through the stack every
// step (as in int8_kernels_avx512vnni.cc).
inline void Dpbusd(__m256i& acc, __m256i x, __m256i w) {
  asm("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(x), "xm"(w));
}

template <int R>
void Kernel(const uint8_t* x, size_t ldx, const int8_t* w, int k4, const int32_t* offsets,
            int32_t* acc, size_t ldacc) {
  __m256i lo[R], hi[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_si256();
  for (int q = 0; q < k4; ++q) {
    const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + q * 64));
    const __m256i w1 =
        _mm256_load_si256(reinterpret_cast<const __m256i*>(w + q * 64 + 32));
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      int32_t x4;
      std::memcpy(&x4, x + r * ldx + 4 * q, 4);
      const __m256i xb = _mm256_set1_epi32(x4);
      Dpbusd(lo[r], xb, w0);
      Dpbusd(hi[r], xb, w1);
    }
  }
  const __m256i off0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(offsets));
  const __m256i off1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(offsets + 8));
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * ldacc),
                        _mm256_sub_epi32(lo[r], off0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * ldacc + 8),
                        _mm256_sub_epi32(hi[r], off1));
  }
}

void Dispatch(const uint8_t* x, size_t ldx, int rows, const int8_t* w,
              size_t /*panel_bytes*/, int /*panels*/, int k4, const int32_t* offsets,
              int32_t* acc, size_t ldacc) {
  switch (rows) {
    case 1:
      return Kernel<1>(x, ldx, w, k4, offsets, acc, ldacc);
    case 2:
      return Kernel<2>(x, ldx, w, k4, offsets, acc, ldacc);
    case 3:
      return Kernel<3>(x, ldx, w, k4, offsets, acc, ldacc);
    case 4:
      return Kernel<4>(x, ldx, w, k4, offsets, acc, ldacc);
    case 5:
      return Kernel<5>(x, ldx, w, k4, offsets, acc, ldacc);
    default:
      return Kernel<6>(x, ldx, w, k4, offsets, acc, ldacc);
  }
}

}  // namespace

const Int8Variant& Int8VariantAvxVnni() {
  static constexpr Int8Variant v{"avxvnni", 6, 1, true, Dispatch};
  return v;
}

}  // namespace kvq::model_internal
