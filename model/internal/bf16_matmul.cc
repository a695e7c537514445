#include "model/internal/bf16_matmul.h"

#include <immintrin.h>

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "model/internal/ops.h"
#include "model/internal/panel_driver.h"

namespace kvq::model_internal {

namespace {

using panel::Bf16Pair;
using panel::kMr;
using panel::kP;
using Kernel = panel::Kernel<uint16_t>;
using DotKernel = panel::Kernel<uint16_t, Bf16Pair>;

// ---- fp32 activations: PackedMatMul's chains over the widened weights ----

// lo/hi[r] += x[r] * w_lo/w_hi for r < R.
template <int R>
__attribute__((target("avx2,fma"), always_inline)) inline void StepAvx2(
    const float* x, __m256 w_lo, __m256 w_hi, __m256* lo, __m256* hi) {
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    const __m256 xv = _mm256_broadcast_ss(x + r);
    lo[r] = _mm256_fmadd_ps(w_lo, xv, lo[r]);
    hi[r] = _mm256_fmadd_ps(w_hi, xv, hi[r]);
  }
}

// The odd k's weights of a pair row: the high halves, the low ones cleared
// by two shifts (no mask register).
__attribute__((target("avx2"), always_inline)) inline __m256 OddWeights(__m256i v) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_srli_epi32(v, 16), 16));
}

// PackedMatMul's 6 x 16 register block. Each pair row of the panel (16
// features x 2 k, two 32-byte loads) widens to the even k's weights (the low
// halves shifted up) and the odd k's (OddWeights). Check the disassembly
// for accumulators on the stack after touching this (objdump -d: no ymm
// operand at (%rsp) in the loop); with a mask register and both words kept
// live, 6 rows spilled two of them and ran 0.9x the k-major kernel before it.
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
  const int pairs = kc / 2;
#pragma GCC unroll 2
  for (int i = 0; i < pairs; ++i) {
    const __m256i v0 =
        _mm256_load_si256(reinterpret_cast<const __m256i*>(pw + i * 2 * kP));
    const __m256i v1 =
        _mm256_load_si256(reinterpret_cast<const __m256i*>(pw + i * 2 * kP + kP));
    StepAvx2<R>(xp + 2 * i * R, _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)),
                _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16)), lo, hi);
    // Load the pair row again rather than keep v0 and v1 live across the
    // even step: 6 rows' 12 accumulators, 2 weights and a broadcast leave
    // one register of AVX2's 16.
    __asm__ volatile("" ::: "memory");
    const __m256i u0 =
        _mm256_load_si256(reinterpret_cast<const __m256i*>(pw + i * 2 * kP));
    const __m256i u1 =
        _mm256_load_si256(reinterpret_cast<const __m256i*>(pw + i * 2 * kP + kP));
    StepAvx2<R>(xp + (2 * i + 1) * R, OddWeights(u0), OddWeights(u1), lo, hi);
  }
  if (kc % 2 == 1) {
    const __m256i v0 =
        _mm256_load_si256(reinterpret_cast<const __m256i*>(pw + pairs * 2 * kP));
    const __m256i v1 =
        _mm256_load_si256(reinterpret_cast<const __m256i*>(pw + pairs * 2 * kP + kP));
    StepAvx2<R>(xp + (kc - 1) * R, _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)),
                _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16)), lo, hi);
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(y + r * ldy, lo[r]);
    _mm256_storeu_ps(y + r * ldy + 8, hi[r]);
  }
}

// The same chains on zmm, for CPUs with AVX-512F but not BF16 (Ice Lake,
// Skylake-SP): P panels (panel q's block (kc + 1) / 2 pair rows after panel
// q - 1's) x R rows; each lane runs KernelAvx2's FMA chain, so the results
// are bit-identical to it.
template <int R, int P>
__attribute__((target("avx512f"))) void KernelAvx512(const float* xp, const uint16_t* pw,
                                                     int kc, float* y, size_t ldy,
                                                     bool first) {
  __m512 acc[P][R];
  const int pair_rows = (kc + 1) / 2;
  panel::LoadTile512<R, P>(y, ldy, first, acc);
  for (int i = 0; i < pair_rows; ++i) {
    __m512 even[P], odd[P];
#pragma GCC unroll 2
    for (int q = 0; q < P; ++q) {
      const __m512i v = _mm512_load_si512(pw + (size_t(q) * pair_rows + i) * 2 * kP);
      even[q] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
      odd[q] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_srli_epi32(v, 16), 16));
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_set1_ps(xp[2 * i * R + r]);
#pragma GCC unroll 2
      for (int q = 0; q < P; ++q) acc[q][r] = _mm512_fmadd_ps(even[q], xv, acc[q][r]);
    }
    if (2 * i + 1 < kc) {
#pragma GCC unroll 6
      for (int r = 0; r < R; ++r) {
        const __m512 xv = _mm512_set1_ps(xp[(2 * i + 1) * R + r]);
#pragma GCC unroll 2
        for (int q = 0; q < P; ++q) acc[q][r] = _mm512_fmadd_ps(odd[q], xv, acc[q][r]);
      }
    }
  }
  panel::StoreTile512<R, P>(y, ldy, acc);
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
      for (int j = 0; j < kP; ++j) acc[r][j] += xv * Bf16ToFloat(pw[panel::KPairs(k, j)]);
    }
  }
  for (int r = 0; r < R; ++r) std::memcpy(y + r * ldy, acc[r], sizeof(acc[r]));
}

// ---- bf16 activations: vdpbf16ps and its specification ----

// P panels (16 P features) of R rows. Chain a takes the block's even pairs,
// chain b the odd ones (the header's specification); y = a + b. Panel q's
// block follows panel q - 1's, (kc + 1) / 2 pair rows later.
template <int R, int P>
__attribute__((target("avx512f,avx512bf16"))) void KernelAvx512Bf16(
    const Bf16Pair* xp, const uint16_t* pw, int kc, float* y, size_t ldy, bool first) {
  __m512 a[P][R], b[P][R];
  const int pairs = (kc + 1) / 2;
  panel::LoadTile512<R, P>(y, ldy, first, a);
#pragma GCC unroll 2
  for (int q = 0; q < P; ++q) {
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) b[q][r] = _mm512_setzero_ps();
  }
#define KVQ_WEIGHTS(q, i) \
  reinterpret_cast<__m512bh>(_mm512_load_si512(pw + ((q)*pairs + (i)) * 2 * kP))
#define KVQ_X(i, r) \
  reinterpret_cast<__m512bh>(_mm512_set1_epi32(int(xp[(i)*R + (r)].bits)))
  int i = 0;
  for (; i + 1 < pairs; i += 2) {
    __m512bh w0[P], w1[P];
#pragma GCC unroll 2
    for (int q = 0; q < P; ++q) {
      w0[q] = KVQ_WEIGHTS(q, i);
      w1[q] = KVQ_WEIGHTS(q, i + 1);
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m512bh x0 = KVQ_X(i, r), x1 = KVQ_X(i + 1, r);
#pragma GCC unroll 2
      for (int q = 0; q < P; ++q) {
        a[q][r] = _mm512_dpbf16_ps(a[q][r], x0, w0[q]);
        b[q][r] = _mm512_dpbf16_ps(b[q][r], x1, w1[q]);
      }
    }
  }
  if (i < pairs) {
#pragma GCC unroll 2
    for (int q = 0; q < P; ++q) {
      const __m512bh w0 = KVQ_WEIGHTS(q, i);
#pragma GCC unroll 6
      for (int r = 0; r < R; ++r) a[q][r] = _mm512_dpbf16_ps(a[q][r], KVQ_X(i, r), w0);
    }
  }
#undef KVQ_X
#undef KVQ_WEIGHTS
#pragma GCC unroll 2
  for (int q = 0; q < P; ++q) {
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      _mm512_storeu_ps(y + r * ldy + q * kP, _mm512_add_ps(a[q][r], b[q][r]));
    }
  }
}

// Denormals as vdpbf16ps treats them: zero, sign kept.
inline float Flush(float v) {
  return std::fabs(v) < FLT_MIN ? std::copysign(0.0f, v) : v;
}

// One vdpbf16ps lane: acc + x_odd w_odd, then + x_even w_even.
inline float Dot(float acc, uint32_t x, uint16_t w_even, uint16_t w_odd) {
  const auto fma = [](float acc, uint16_t xb, uint16_t wb) {
    return Flush(std::fma(Flush(Bf16ToFloat(xb)), Flush(Bf16ToFloat(wb)), Flush(acc)));
  };
  return fma(fma(acc, static_cast<uint16_t>(x >> 16), w_odd), static_cast<uint16_t>(x),
             w_even);
}

template <int R>
void KernelDotPortable(const Bf16Pair* xp, const uint16_t* pw, int kc, float* y,
                       size_t ldy, bool first) {
  float a[R][kP], b[R][kP];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < kP; ++j) {
      a[r][j] = first ? 0.0f : y[r * ldy + j];
      b[r][j] = 0.0f;
    }
  }
  for (int i = 0; 2 * i < kc; ++i) {
    for (int r = 0; r < R; ++r) {
      float* acc = i % 2 == 0 ? a[r] : b[r];
      for (int j = 0; j < kP; ++j) {
        acc[j] = Dot(acc[j], xp[i * R + r].bits, pw[panel::KPairs(2 * i, j)],
                     pw[panel::KPairs(2 * i + 1, j)]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < kP; ++j) y[r * ldy + j] = a[r][j] + b[r][j];
  }
}

constexpr Kernel kAvx2Kernels[kMr] = {KernelAvx2<1>, KernelAvx2<2>, KernelAvx2<3>,
                                      KernelAvx2<4>, KernelAvx2<5>, KernelAvx2<6>};
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
constexpr Kernel kPortableKernels[kMr] = {KernelPortable<1>, KernelPortable<2>,
                                          KernelPortable<3>, KernelPortable<4>,
                                          KernelPortable<5>, KernelPortable<6>};
constexpr DotKernel kAvx512Bf16Kernels[kMr] = {
    KernelAvx512Bf16<1, 1>, KernelAvx512Bf16<2, 1>, KernelAvx512Bf16<3, 1>,
    KernelAvx512Bf16<4, 1>, KernelAvx512Bf16<5, 1>, KernelAvx512Bf16<6, 1>};
// 1 and 2 rows: one panel a call, as kAvx512WideKernels.
constexpr DotKernel kAvx512Bf16WideKernels[kMr] = {nullptr,
                                                   nullptr,
                                                   KernelAvx512Bf16<3, 2>,
                                                   KernelAvx512Bf16<4, 2>,
                                                   KernelAvx512Bf16<5, 2>,
                                                   KernelAvx512Bf16<6, 2>};
constexpr DotKernel kDotPortableKernels[kMr] = {
    KernelDotPortable<1>, KernelDotPortable<2>, KernelDotPortable<3>,
    KernelDotPortable<4>, KernelDotPortable<5>, KernelDotPortable<6>};

bool HasAvx512Bf16() {
  static const bool has =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  return has;
}

}  // namespace

bool Bf16KernelSupported(Bf16Kernel kernel) {
  switch (kernel) {
    case Bf16Kernel::kAvx512Bf16:
      return HasAvx512Bf16();
    case Bf16Kernel::kAvx512Fma:
      return HasAvx512F();
    case Bf16Kernel::kAvx2Fma:
      return HasAvx2Fma();
    default:
      return true;
  }
}

namespace {

Bf16Kernel ChooseBf16Kernel() {
  const Bf16Kernel best = HasAvx512Bf16() ? Bf16Kernel::kAvx512Bf16
                          : HasAvx512F()  ? Bf16Kernel::kAvx512Fma
                          : HasAvx2Fma()  ? Bf16Kernel::kAvx2Fma
                                          : Bf16Kernel::kPortable;
  const char* name = std::getenv("KVQ_BF16_KERNEL");
  if (name == nullptr || *name == '\0') return best;
  for (Bf16Kernel k :
       {Bf16Kernel::kAvx512Bf16, Bf16Kernel::kDotPortable, Bf16Kernel::kAvx512Fma,
        Bf16Kernel::kAvx2Fma, Bf16Kernel::kPortable}) {
    if (std::strcmp(name, Bf16KernelName(k)) != 0) continue;
    if (Bf16KernelSupported(k)) return k;
    std::fprintf(stderr, "kvq: KVQ_BF16_KERNEL=%s: this CPU lacks it; using %s\n", name,
                 Bf16KernelName(best));
    return best;
  }
  std::fprintf(
      stderr,
      "kvq: KVQ_BF16_KERNEL=%s is not one of avx512bf16, dot_portable, avx512fma, "
      "avx2fma, portable; using %s\n",
      name, Bf16KernelName(best));
  return best;
}

}  // namespace

Bf16Kernel BestBf16Kernel() {
  static const Bf16Kernel best = ChooseBf16Kernel();
  return best;
}

const char* Bf16KernelName(Bf16Kernel kernel) {
  switch (kernel) {
    case Bf16Kernel::kAuto:
      return Bf16KernelName(BestBf16Kernel());
    case Bf16Kernel::kAvx512Bf16:
      return "avx512bf16";
    case Bf16Kernel::kDotPortable:
      return "dot_portable";
    case Bf16Kernel::kAvx512Fma:
      return "avx512fma";
    case Bf16Kernel::kAvx2Fma:
      return "avx2fma";
    case Bf16Kernel::kPortable:
      return "portable";
  }
  return "?";
}

Bf16Matrix::Bf16Matrix(const float* w, int out, int in) : out_(out), in_(in) {
  const size_t bytes = (this->bytes() + 63) / 64 * 64;
  data_.reset(static_cast<uint16_t*>(std::aligned_alloc(64, bytes)));
  if (data_ == nullptr) throw std::bad_alloc();
  panel::PackPanels<uint16_t>(*this, w, FloatToBf16, panel::KPairs);
}

void Bf16Matrix::Row(int o, float* dst) const {
  panel::PanelRow(*this, o, dst, Bf16ToFloat, panel::KPairs);
}

void Bf16MatMul(const float* x, int n, const Bf16Matrix& w, float* y, Bf16Kernel kernel) {
  if (kernel == Bf16Kernel::kAuto) kernel = BestBf16Kernel();
  switch (kernel) {
    case Bf16Kernel::kAvx512Bf16:
      if (!HasAvx512Bf16()) {
        return panel::MatMul<uint16_t, Bf16Pair>(x, n, w, y, kDotPortableKernels);
      }
      return panel::MatMul<uint16_t, Bf16Pair>(x, n, w, y, kAvx512Bf16Kernels,
                                               kAvx512Bf16WideKernels);
    case Bf16Kernel::kDotPortable:
      return panel::MatMul<uint16_t, Bf16Pair>(x, n, w, y, kDotPortableKernels);
    case Bf16Kernel::kAvx512Fma:
      if (HasAvx512F()) {
        return panel::MatMul<uint16_t>(x, n, w, y, kAvx512Kernels, kAvx512WideKernels);
      }
      [[fallthrough]];
    case Bf16Kernel::kAvx2Fma:
      return panel::MatMul<uint16_t>(x, n, w, y,
                                     HasAvx2Fma() ? kAvx2Kernels : kPortableKernels);
    default:
      return panel::MatMul<uint16_t>(x, n, w, y, kPortableKernels);
  }
}

}  // namespace kvq::model_internal
