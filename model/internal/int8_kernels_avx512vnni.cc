// AVX-512 VNNI core: vpdpbusd on zmm, one zmm per panel (16 features x 4 k),
// up to 6 rows x 4 panels of accumulators (24 of the 32 registers).
#include <immintrin.h>

#include <cstring>

#include "model/internal/int8_kernels.h"

namespace kvq::model_internal {
namespace {

// acc += u8 x s8 sums of 4 (vpdpbusd), as inline assembly: GCC 12's builtin
// for it made the 6 x 4 accumulators round-trip through the stack every step.
inline void Dpbusd(__m512i& acc, __m512i x, __m512i w) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "vm"(w));
}

template <int R, int P>
void Kernel(const uint8_t* x, size_t ldx, const int8_t* w, size_t panel_bytes, int k4,
            const int32_t* offsets, int32_t* acc, size_t ldacc) {
  // Fully unrolled, so that the accumulators live in registers (GCC 12
  // otherwise keeps the array in memory and stores all of it every step).
  __m512i a[R][P];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) a[r][p] = _mm512_setzero_si512();
  }
  for (int q = 0; q < k4; ++q) {
    __m512i wv[P];
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) {
      wv[p] =
          _mm512_load_si512(reinterpret_cast<const void*>(w + p * panel_bytes + q * 64));
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      int32_t x4;
      std::memcpy(&x4, x + r * ldx + 4 * q, 4);
      const __m512i xb = _mm512_set1_epi32(x4);
#pragma GCC unroll 4
      for (int p = 0; p < P; ++p) Dpbusd(a[r][p], xb, wv[p]);
    }
  }
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) {
    const __m512i off = _mm512_loadu_si512(offsets + p * 16);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      _mm512_storeu_si512(acc + r * ldacc + p * 16, _mm512_sub_epi32(a[r][p], off));
    }
  }
}

template <int R>
void RowsKernel(const uint8_t* x, size_t ldx, const int8_t* w, size_t panel_bytes,
                int panels, int k4, const int32_t* offsets, int32_t* acc, size_t ldacc) {
  switch (panels) {
    case 1:
      return Kernel<R, 1>(x, ldx, w, panel_bytes, k4, offsets, acc, ldacc);
    case 2:
      return Kernel<R, 2>(x, ldx, w, panel_bytes, k4, offsets, acc, ldacc);
    case 3:
      return Kernel<R, 3>(x, ldx, w, panel_bytes, k4, offsets, acc, ldacc);
    default:
      return Kernel<R, 4>(x, ldx, w, panel_bytes, k4, offsets, acc, ldacc);
  }
}

void Dispatch(const uint8_t* x, size_t ldx, int rows, const int8_t* w, size_t panel_bytes,
              int panels, int k4, const int32_t* offsets, int32_t* acc, size_t ldacc) {
  switch (rows) {
    case 1:
      return RowsKernel<1>(x, ldx, w, panel_bytes, panels, k4, offsets, acc, ldacc);
    case 2:
      return RowsKernel<2>(x, ldx, w, panel_bytes, panels, k4, offsets, acc, ldacc);
    case 3:
      return RowsKernel<3>(x, ldx, w, panel_bytes, panels, k4, offsets, acc, ldacc);
    case 4:
      return RowsKernel<4>(x, ldx, w, panel_bytes, panels, k4, offsets, acc, ldacc);
    case 5:
      return RowsKernel<5>(x, ldx, w, panel_bytes, panels, k4, offsets, acc, ldacc);
    default:
      return RowsKernel<6>(x, ldx, w, panel_bytes, panels, k4, offsets, acc, ldacc);
  }
}

}  // namespace

const Int8Variant& Int8VariantAvx512Vnni() {
  static constexpr Int8Variant v{"avx512vnni", 6, 4, true, Dispatch};
  return v;
}

}  // namespace kvq::model_internal
