#include "model/internal/bf16_matmul.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "model/internal/ops.h"

namespace kvq::model_internal {

namespace {

constexpr int kP = Bf16Matrix::kPanel;
constexpr int kKc = Bf16Matrix::kBlockK;
constexpr int kMr = 6;
constexpr int kMc = 144;
constexpr double kParallelMinWork = 256.0 * 1024;

using Kernel = void (*)(const float* xp, const uint16_t* pw, int kc, float* y, size_t ldy,
                        bool first);

// PackedMatMul's 6 x 16 register block; each k widens the panel's 16 bf16
// (one 32-byte load) to two fp32 vectors.
template <int R>
__attribute__((target("avx2,fma"))) void KernelAvx2(const float* xp, const uint16_t* pw,
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
    const __m256i h = _mm256_load_si256(reinterpret_cast<const __m256i*>(pw + k * kP));
    const __m256 w0 = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(h)), 16));
    const __m256 w1 = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(h, 1)), 16));
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

template <int R>
void KernelPortable(const float* xp, const uint16_t* pw, int kc, float* y, size_t ldy,
                    bool first) {
  float acc[R][kP];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < kP; ++j) acc[r][j] = first ? 0.0f : y[r * ldy + j];
  }
  for (int k = 0; k < kc; ++k) {
    for (int r = 0; r < R; ++r) {
      const float xv = xp[k * R + r];
      for (int j = 0; j < kP; ++j) acc[r][j] += xv * Bf16ToFloat(pw[k * kP + j]);
    }
  }
  for (int r = 0; r < R; ++r) std::memcpy(y + r * ldy, acc[r], sizeof(acc[r]));
}

constexpr Kernel kAvx2Kernels[kMr] = {KernelAvx2<1>, KernelAvx2<2>, KernelAvx2<3>,
                                      KernelAvx2<4>, KernelAvx2<5>, KernelAvx2<6>};
constexpr Kernel kPortableKernels[kMr] = {KernelPortable<1>, KernelPortable<2>,
                                          KernelPortable<3>, KernelPortable<4>,
                                          KernelPortable<5>, KernelPortable<6>};

void PackRowBlock(const float* x, int n, int in, int b, float* xp) {
  const int r = std::min(kMr, n - b);
  float* dst = xp + size_t(b) * in;
  for (int k = 0; k < in; ++k) {
    for (int a = 0; a < r; ++a) dst[k * r + a] = x[size_t(b + a) * in + k];
  }
}

// As PackedMatMul's RunPanels (packed_matmul.cc).
void RunPanels(const float* x, int n, const Bf16Matrix& w, float* y, int p0, int p1,
               const Kernel* kernels) {
  const int in = w.in(), out = w.out();
  std::unique_ptr<float[]> xp(new float[size_t(std::min(n, kMc)) * in]);
  alignas(32) float tile[kMr * kP] = {};
  for (int r0 = 0; r0 < n; r0 += kMc) {
    const int rows = std::min(kMc, n - r0);
    for (int b = 0; b < rows; b += kMr) {
      PackRowBlock(x + size_t(r0) * in, rows, in, b, xp.get());
    }
    for (int k0 = 0; k0 < in; k0 += kKc) {
      const int kc = std::min(kKc, in - k0);
      const bool first = k0 == 0;
      for (int p = p0; p < p1; ++p) {
        const uint16_t* pw = w.Block(p, k0);
        const int cols = std::min(kP, out - p * kP);
        for (int i = 0; i < rows; i += kMr) {
          const int r = std::min(kMr, rows - i);
          const float* xs = xp.get() + size_t(i) * in + size_t(k0) * r;
          float* ys = y + size_t(r0 + i) * out + size_t(p) * kP;
          if (cols == kP) {
            kernels[r - 1](xs, pw, kc, ys, out, first);
            continue;
          }
          for (int a = 0; a < r && !first; ++a) {
            std::memcpy(tile + a * kP, ys + size_t(a) * out, cols * sizeof(float));
          }
          kernels[r - 1](xs, pw, kc, tile, kP, first);
          for (int a = 0; a < r; ++a) {
            std::memcpy(ys + size_t(a) * out, tile + a * kP, cols * sizeof(float));
          }
        }
      }
    }
  }
}

}  // namespace

Bf16Matrix::Bf16Matrix(const float* w, int out, int in) : out_(out), in_(in) {
  const size_t bytes = (this->bytes() + 63) / 64 * 64;
  data_.reset(static_cast<uint16_t*>(std::aligned_alloc(64, bytes)));
  if (data_ == nullptr) throw std::bad_alloc();
  for (int k0 = 0; k0 < in; k0 += kKc) {
    const int kc = std::min(kKc, in - k0);
    for (int p = 0; p < panels(); ++p) {
      uint16_t* dst = const_cast<uint16_t*>(Block(p, k0));
      for (int j = 0; j < kP; ++j) {
        const int o = p * kP + j;
        for (int k = 0; k < kc; ++k) {
          dst[k * kP + j] = o < out ? FloatToBf16(w[size_t(o) * in + k0 + k]) : 0;
        }
      }
    }
  }
}

void Bf16Matrix::Row(int o, float* dst) const {
  const int p = o / kP, j = o % kP;
  for (int k0 = 0; k0 < in_; k0 += kKc) {
    const int kc = std::min(kKc, in_ - k0);
    const uint16_t* src = Block(p, k0) + j;
    for (int k = 0; k < kc; ++k) dst[k0 + k] = Bf16ToFloat(src[k * kP]);
  }
}

void Bf16MatMul(const float* x, int n, const Bf16Matrix& w, float* y,
                MatMulKernel kernel) {
  if (n <= 0) return;
  const Kernel* kernels =
      kernel != MatMulKernel::kPortable && HasAvx2Fma() ? kAvx2Kernels : kPortableKernels;
  const int panels = w.panels();
  const double work = double(n) * w.in() * w.out();
  const int threads = work < kParallelMinWork ? 1 : std::min(InitThreads(), panels);
  if (threads <= 1) {
    RunPanels(x, n, w, y, 0, panels, kernels);
    return;
  }
  const int chunk = (panels + threads - 1) / threads;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int t = 0; t < threads; ++t) {
    const int p0 = std::min(panels, t * chunk), p1 = std::min(panels, p0 + chunk);
    if (p0 < p1) RunPanels(x, n, w, y, p0, p1, kernels);
  }
}

}  // namespace kvq::model_internal
