// The blocked driver of the packed matrix products (PackedMatMul: fp32
// panels, packed_matmul.cc; Bf16MatMul: bf16 panels, bf16_matmul.cc): the
// panel layout's packing at load, and the loops around a 6 x 16
// micro-kernel that differ between them only in the weights' element type W,
// the order of k inside a panel's block (Index) and how the rows of x are
// handed to the micro-kernel (X: fp32 values, or bf16 pairs for vdpbf16ps).
#ifndef KVQ_MODEL_INTERNAL_PANEL_DRIVER_H_
#define KVQ_MODEL_INTERNAL_PANEL_DRIVER_H_

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>

#include "model/internal/bf16.h"
#include "model/internal/ops.h"
#include "model/internal/packed_matmul.h"

namespace kvq::model_internal::panel {

constexpr int kP = PackedMatrix::kPanel;
constexpr int kKc = PackedMatrix::kBlockK;
// Rows per micro-kernel call: 6 rows x 16 features = 12 ymm accumulators,
// plus 2 for the weights and 1 for the broadcast x value.
constexpr int kMr = 6;
// Rows per chunk: a chunk's k-block of x (144 x 256 floats, 144 KiB) stays
// in L2 while every panel of the thread streams past it.
constexpr int kMc = 144;
// Below this many multiply-adds threads cost more than they save.
constexpr double kParallelMinWork = 256.0 * 1024;

// Where weight (k, j) of a block lies (k < kc, j < 16), as an element
// offset from Block(p, k0): k-major rows of 16 (PackedMatrix), or pairs of
// k side by side per feature, [kc / 2][16][2] (Bf16Matrix: what vdpbf16ps
// multiplies; an odd kc's last pair is padded with a zero).
inline size_t KMajor(int k, int j) { return size_t(k) * kP + j; }
inline size_t KPairs(int k, int j) { return size_t(k >> 1) * 2 * kP + j * 2 + (k & 1); }

// Two bf16 activations x[2i] (low half) and x[2i + 1] (high half) in one
// word: what the vdpbf16ps micro-kernels broadcast.
struct Bf16Pair {
  uint32_t bits;
};

// One micro-kernel call: y[r][0..16) (r < R, row stride ldy) continues its
// chain with xp[k][r] * pw[k][j] for k = 0..kc in order (xp: R packed rows,
// k-major, already offset to the block's first k), starting from 0 when
// `first`. Kernel tables are indexed by rows - 1.
template <typename W, typename X = float>
using Kernel = void (*)(const X* xp, const W* pw, int kc, float* y, size_t ldy,
                        bool first);

// The zmm micro-kernels' accumulators: acc[q][r] = y[r][16 q .. 16 q + 16)
// (row stride ldy), or 0 when `first`.
template <int R, int P>
__attribute__((target("avx512f"), always_inline)) inline void LoadTile512(
    const float* y, size_t ldy, bool first, __m512 (&acc)[P][R]) {
#pragma GCC unroll 2
  for (int q = 0; q < P; ++q) {
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      acc[q][r] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + r * ldy + q * kP);
    }
  }
}

// Stores the accumulators of LoadTile512's layout back to y.
template <int R, int P>
__attribute__((target("avx512f"), always_inline)) inline void StoreTile512(
    float* y, size_t ldy, const __m512 (&acc)[P][R]) {
#pragma GCC unroll 2
  for (int q = 0; q < P; ++q) {
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) _mm512_storeu_ps(y + r * ldy + q * kP, acc[q][r]);
  }
}

// Packs w[out][in] (row-major fp32) into `m`'s panels (Matrix::Block), each
// weight through convert (zero past the last output feature and in a pair
// layout's padding).
template <typename W, typename Matrix, typename Convert>
void PackPanels(const Matrix& m, const float* w, Convert convert,
                size_t (*index)(int, int) = KMajor) {
  const int out = m.out(), in = m.in();
  for (int k0 = 0; k0 < in; k0 += kKc) {
    const int kc = std::min(kKc, in - k0);
    for (int p = 0; p < m.panels(); ++p) {
      W* dst = const_cast<W*>(m.Block(p, k0));
      for (int j = 0; j < kP; ++j) {
        const int o = p * kP + j;
        for (int k = 0; k < kc; ++k) {
          dst[index(k, j)] = o < out ? convert(w[size_t(o) * in + k0 + k]) : W{0};
        }
        if (index == KPairs && kc % 2 == 1) dst[index(kc, j)] = W{0};
      }
    }
  }
}

// Row o of `m` as fp32 (each weight through widen).
template <typename Matrix, typename Widen>
void PanelRow(const Matrix& m, int o, float* dst, Widen widen,
              size_t (*index)(int, int) = KMajor) {
  const int p = o / kP, j = o % kP;
  for (int k0 = 0; k0 < m.in(); k0 += kKc) {
    const int kc = std::min(kKc, m.in() - k0);
    const auto* src = m.Block(p, k0);
    for (int k = 0; k < kc; ++k) dst[k0 + k] = widen(src[index(k, j)]);
  }
}

// x values per X: a row of x[in] packs into XWords<X>(in) elements.
template <typename X>
constexpr int kPerX = std::is_same_v<X, Bf16Pair> ? 2 : 1;
template <typename X>
int XWords(int in) {
  return (in + kPerX<X> - 1) / kPerX<X>;
}

// Copies rows [b, b + r) of x[n][in] (r = min(6, n - b), b a multiple of 6)
// to xp + b * XWords(in) as [XWords(in)][r]: the micro-kernels' broadcasts
// then read one sequential stream instead of r rows `in` floats apart.
inline void PackRowBlock(const float* x, int n, int in, int b, float* xp) {
  const int r = std::min(kMr, n - b);
  float* dst = xp + size_t(b) * in;
  for (int k = 0; k < in; ++k) {
    for (int a = 0; a < r; ++a) dst[k * r + a] = x[size_t(b + a) * in + k];
  }
}
// The same as bf16 pairs (x[2i] low, x[2i + 1] high; zero past in).
inline void PackRowBlock(const float* x, int n, int in, int b, Bf16Pair* xp) {
  const int r = std::min(kMr, n - b);
  Bf16Pair* dst = xp + size_t(b) * XWords<Bf16Pair>(in);
  for (int i = 0; 2 * i < in; ++i) {
    for (int a = 0; a < r; ++a) {
      const float* row = x + size_t(b + a) * in;
      const uint32_t hi = 2 * i + 1 < in ? FloatToBf16(row[2 * i + 1]) : 0;
      dst[i * r + a].bits = FloatToBf16(row[2 * i]) | hi << 16;
    }
  }
}

// y's columns of panels [p0, p1), all n rows. Each thread packs each row
// chunk of x for itself (n x in floats copied against n x in x 16 x
// (p1 - p0) multiply-adds), so the threads never wait for each other. Loop
// order (BLIS): row chunk, k-block (the chunk's x block stays in L2), panel
// (its weights' block stays in L1 while the 6-row blocks pass), 6-row block.
// Every y[r][o] sees the k-blocks in order, so its chain is the same for any
// n and any row block.
template <typename W, typename X, typename Matrix>
void RunPanels(const float* x, int n, const Matrix& w, float* y, int p0, int p1,
               const Kernel<W, X>* kernels, const Kernel<W, X>* wide) {
  const int in = w.in(), out = w.out(), words = XWords<X>(in);
  std::unique_ptr<X[]> xp(new X[size_t(std::min(n, kMc)) * words]);
  alignas(32) float tile[kMr * kP] = {};  // the last panel when out % 16 != 0
  for (int r0 = 0; r0 < n; r0 += kMc) {
    const int rows = std::min(kMc, n - r0);
    for (int b = 0; b < rows; b += kMr) {
      PackRowBlock(x + size_t(r0) * in, rows, in, b, xp.get());
    }
    for (int k0 = 0; k0 < in; k0 += kKc) {
      const int kc = std::min(kKc, in - k0);
      const bool first = k0 == 0;
      for (int p = p0; p < p1;) {
        const W* pw = w.Block(p, k0);
        const int cols = std::min(kP, out - p * kP);
        const int span = wide != nullptr && p + 1 < p1 && out - p * kP >= 2 * kP ? 2 : 1;
        for (int i = 0; i < rows; i += kMr) {
          const int r = std::min(kMr, rows - i);
          const X* xs = xp.get() + size_t(i) * words + size_t(k0 / kPerX<X>) * r;
          float* ys = y + size_t(r0 + i) * out + size_t(p) * kP;
          if (!first && i + kMr < rows) {
            // The next call's y tile: it went out to L3 since the last k-block.
            for (int a = 0; a < std::min(kMr, rows - i - kMr); ++a) {
              const float* next = ys + size_t(kMr + a) * out;
              for (int c = 0; c < span * kP; c += kP) {
                _mm_prefetch(reinterpret_cast<const char*>(next + c), _MM_HINT_T0);
                _mm_prefetch(reinterpret_cast<const char*>(next + c + kP - 1),
                             _MM_HINT_T0);
              }
            }
          }
          if (span == 2) {
            if (wide[r - 1] != nullptr) {
              wide[r - 1](xs, pw, kc, ys, out, first);
            } else {
              kernels[r - 1](xs, pw, kc, ys, out, first);
              kernels[r - 1](xs, w.Block(p + 1, k0), kc, ys + kP, out, first);
            }
            continue;
          }
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
        p += span;
      }
    }
  }
}

// y[n][w.out()] = x[n][w.in()] . W^T through `kernels`; each thread owns a
// contiguous run of panels (of output features). `wide`, when given, are
// kernels over two adjacent full panels (32 features; panel p + 1's block
// follows panel p's in memory, as every Matrix here lays them out), used
// wherever a thread's run has two: y[r][0..32) with ldy as before. A null
// entry (a row count the wide kernel does not pay for) runs `kernels` on
// each panel instead.
template <typename W, typename X = float, typename Matrix>
void MatMul(const float* x, int n, const Matrix& w, float* y, const Kernel<W, X>* kernels,
            const Kernel<W, X>* wide = nullptr) {
  if (n <= 0) return;
  const int panels = w.panels();
  const double work = double(n) * w.in() * w.out();
  const int threads = work < kParallelMinWork ? 1 : std::min(InitThreads(), panels);
  if (threads <= 1) {
    RunPanels<W, X>(x, n, w, y, 0, panels, kernels, wide);
    return;
  }
  const int chunk = (panels + threads - 1) / threads;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int t = 0; t < threads; ++t) {
    const int p0 = std::min(panels, t * chunk), p1 = std::min(panels, p0 + chunk);
    if (p0 < p1) RunPanels<W, X>(x, n, w, y, p0, p1, kernels, wide);
  }
}

}  // namespace kvq::model_internal::panel

#endif  // KVQ_MODEL_INTERNAL_PANEL_DRIVER_H_
