// AVX2 core: vpmaddubsw multiplies u8 by s8 and adds pairs into int16 with
// saturation, so it gets |x| (<= 127) and sign(x) * w (|w| <= 127): a pair
// is at most 2 * 127 * 127 = 32258 and never saturates. vpmaddwd by ones
// widens the pairs to int32. One panel (2 ymm) by up to 4 rows.
#include <immintrin.h>

#include <cstring>

#include "model/internal/int8_kernels.h"

namespace kvq::model_internal {
namespace {

template <int R>
void Kernel(const uint8_t* x, size_t ldx, const int8_t* w, int k4, int32_t* acc,
            size_t ldacc) {
  // Fully unrolled, so that the accumulators live in registers (GCC 12
  // otherwise stores the arrays to the stack every step).
  __m256i lo[R], hi[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int q = 0; q < k4; ++q) {
    const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + q * 64));
    const __m256i w1 =
        _mm256_load_si256(reinterpret_cast<const __m256i*>(w + q * 64 + 32));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      int32_t x4;
      std::memcpy(&x4, x + r * ldx + 4 * q, 4);
      const __m256i xb = _mm256_set1_epi32(x4);
      const __m256i ax = _mm256_sign_epi8(xb, xb);
      const __m256i p0 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w0, xb));
      const __m256i p1 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w1, xb));
      lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(p0, ones));
      hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(p1, ones));
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * ldacc), lo[r]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * ldacc + 8), hi[r]);
  }
}

void Dispatch(const uint8_t* x, size_t ldx, int rows, const int8_t* w,
              size_t /*panel_bytes*/, int /*panels*/, int k4, const int32_t* /*offsets*/,
              int32_t* acc, size_t ldacc) {
  switch (rows) {
    case 1:
      return Kernel<1>(x, ldx, w, k4, acc, ldacc);
    case 2:
      return Kernel<2>(x, ldx, w, k4, acc, ldacc);
    case 3:
      return Kernel<3>(x, ldx, w, k4, acc, ldacc);
    default:
      return Kernel<4>(x, ldx, w, k4, acc, ldacc);
  }
}

}  // namespace

const Int8Variant& Int8VariantAvx2() {
  static constexpr Int8Variant v{"avx2", 4, 1, false, Dispatch};
  return v;
}

}  // namespace kvq::model_internal
