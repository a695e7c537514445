#include "model/internal/packed_matmul.h"

#include <immintrin.h>

#include <cstring>
#include <new>

#include "model/internal/ops.h"
#include "model/internal/panel_driver.h"

namespace kvq::model_internal {

namespace {

using panel::kMr;
using panel::kP;
using Kernel = panel::Kernel<float>;

template <int R>
__attribute__((target("avx2,fma"))) void KernelAvx2(const float* xp, const float* pw,
                                                    int kc, float* y, size_t ldy,
                                                    bool first) {
  __m256 lo[R], hi[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    lo[r] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(y + r * ldy);
    hi[r] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(y + r * ldy + 8);
  }
#pragma GCC unroll 4
  for (int k = 0; k < kc; ++k) {
    const __m256 w0 = _mm256_load_ps(pw + k * kP);
    const __m256 w1 = _mm256_load_ps(pw + k * kP + 8);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_broadcast_ss(xp + k * R + r);
      lo[r] = _mm256_fmadd_ps(w0, xv, lo[r]);
      hi[r] = _mm256_fmadd_ps(w1, xv, hi[r]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(y + r * ldy, lo[r]);
    _mm256_storeu_ps(y + r * ldy + 8, hi[r]);
  }
}

// The same chains on zmm: P panels (16 P features, panel q's block
// following panel q - 1's, kc rows later) of R rows; each lane runs exactly
// the ymm kernel's FMA chain, so the results are bit-identical to it.
template <int R, int P>
__attribute__((target("avx512f"))) void KernelAvx512(const float* xp, const float* pw,
                                                     int kc, float* y, size_t ldy,
                                                     bool first) {
  __m512 acc[P][R];
  panel::LoadTile512<R, P>(y, ldy, first, acc);
#pragma GCC unroll 2
  for (int k = 0; k < kc; ++k) {
    __m512 w[P];
#pragma GCC unroll 2
    for (int q = 0; q < P; ++q) w[q] = _mm512_load_ps(pw + (size_t(q) * kc + k) * kP);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_set1_ps(xp[k * R + r]);
#pragma GCC unroll 2
      for (int q = 0; q < P; ++q) acc[q][r] = _mm512_fmadd_ps(w[q], xv, acc[q][r]);
    }
  }
  panel::StoreTile512<R, P>(y, ldy, acc);
}

// The same chains with a separate multiply and add (no FMA needed).
template <int R>
void KernelPortable(const float* xp, const float* pw, int kc, float* y, size_t ldy,
                    bool first) {
  float acc[R][kP];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < kP; ++j) acc[r][j] = first ? 0.0f : y[r * ldy + j];
  }
  for (int k = 0; k < kc; ++k) {
    for (int r = 0; r < R; ++r) {
      const float xv = xp[k * R + r];
      for (int j = 0; j < kP; ++j) acc[r][j] += xv * pw[k * kP + j];
    }
  }
  for (int r = 0; r < R; ++r) std::memcpy(y + r * ldy, acc[r], sizeof(acc[r]));
}

// Indexed by rows - 1.
constexpr Kernel kAvx2Kernels[kMr] = {KernelAvx2<1>, KernelAvx2<2>, KernelAvx2<3>,
                                      KernelAvx2<4>, KernelAvx2<5>, KernelAvx2<6>};
constexpr Kernel kPortableKernels[kMr] = {KernelPortable<1>, KernelPortable<2>,
                                          KernelPortable<3>, KernelPortable<4>,
                                          KernelPortable<5>, KernelPortable<6>};
constexpr Kernel kAvx512Kernels[kMr] = {KernelAvx512<1, 1>, KernelAvx512<2, 1>,
                                        KernelAvx512<3, 1>, KernelAvx512<4, 1>,
                                        KernelAvx512<5, 1>, KernelAvx512<6, 1>};
// 1 and 2 rows take one panel a call (session 12, Zen 5: two panels a call
// at 1 row ran 1.2-2x the time, weights streaming at decode's batch 1).
constexpr Kernel kAvx512WideKernels[kMr] = {nullptr,
                                            nullptr,
                                            KernelAvx512<3, 2>,
                                            KernelAvx512<4, 2>,
                                            KernelAvx512<5, 2>,
                                            KernelAvx512<6, 2>};

}  // namespace

bool MatMulKernelSupported(MatMulKernel kernel) {
  switch (kernel) {
    case MatMulKernel::kAvx512Fma:
      return HasAvx512F();
    case MatMulKernel::kAvx2Fma:
      return HasAvx2Fma();
    default:
      return true;
  }
}

MatMulKernel BestMatMulKernel() {
  return HasAvx512F()   ? MatMulKernel::kAvx512Fma
         : HasAvx2Fma() ? MatMulKernel::kAvx2Fma
                        : MatMulKernel::kPortable;
}

const char* MatMulKernelName(MatMulKernel kernel) {
  switch (kernel) {
    case MatMulKernel::kAuto:
      return MatMulKernelName(BestMatMulKernel());
    case MatMulKernel::kAvx512Fma:
      return "avx512fma";
    case MatMulKernel::kAvx2Fma:
      return "avx2fma";
    case MatMulKernel::kPortable:
      return "portable";
  }
  return "?";
}

PackedMatrix::PackedMatrix(const float* w, int out, int in) : out_(out), in_(in) {
  const size_t bytes = (this->bytes() + 63) / 64 * 64;
  data_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
  if (data_ == nullptr) throw std::bad_alloc();
  panel::PackPanels<float>(*this, w, [](float v) { return v; });
}

void PackedMatrix::Row(int o, float* dst) const {
  panel::PanelRow(*this, o, dst, [](float v) { return v; });
}

void PackedMatMul(const float* x, int n, const PackedMatrix& w, float* y,
                  MatMulKernel kernel) {
  if (kernel == MatMulKernel::kAuto) kernel = BestMatMulKernel();
  if (!MatMulKernelSupported(kernel)) kernel = MatMulKernel::kPortable;
  switch (kernel) {
    case MatMulKernel::kAvx512Fma:
      return panel::MatMul<float>(x, n, w, y, kAvx512Kernels, kAvx512WideKernels);
    case MatMulKernel::kAvx2Fma:
      return panel::MatMul<float>(x, n, w, y, kAvx2Kernels);
    default:
      return panel::MatMul<float>(x, n, w, y, kPortableKernels);
  }
}

}  // namespace kvq::model_internal
