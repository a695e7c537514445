#include "model/internal/int8_matmul.h"

#include <emmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

#include "model/internal/int8_kernels.h"
#include "model/internal/ops.h"

namespace kvq::model_internal {
namespace {

constexpr int kP = Int8Matrix::kPanel;
// Rows per chunk: a chunk's codes (128 x in bytes) and one panel group's
// codes (64 x in bytes) stay in L2 while the chunk's row blocks pass.
constexpr int kMc = 128;
constexpr int kMaxTile = 6 * 4 * kP;  // the largest variant's rows x features
// Below this many multiply-adds threads cost more than they save.
constexpr double kParallelMinWork = 256.0 * 1024;

bool CpuHas(Int8Kernel k) {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2");
  switch (k) {
    case Int8Kernel::kAvx512Vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vnni");
    case Int8Kernel::kAvxVnni: {
      // CPUID.(EAX=7,ECX=1):EAX bit 4 (GCC 12's __builtin_cpu_supports has no
      // "avxvnni").
      unsigned a = 0, b = 0, c = 0, d = 0;
      __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(1));
      return avx2 && (a & (1u << 4)) != 0;
    }
    case Int8Kernel::kAvx2:
      return avx2;
    case Int8Kernel::kAuto:
    case Int8Kernel::kPortable:
      return true;
  }
  return false;
}

const Int8Variant& VariantOf(Int8Kernel k) {
  switch (k) {
    case Int8Kernel::kAvx512Vnni:
      return Int8VariantAvx512Vnni();
    case Int8Kernel::kAvxVnni:
      return Int8VariantAvxVnni();
    case Int8Kernel::kAvx2:
      return Int8VariantAvx2();
    default:
      return Int8VariantPortable();
  }
}

const Int8Variant& Pick(Int8Kernel k) {
  if (k == Int8Kernel::kAuto) k = BestInt8Kernel();
  if (!Int8KernelSupported(k)) {
    std::fprintf(stderr, "kvq: int8 kernel %s is not supported by this CPU\n",
                 Int8KernelName(k));
    std::abort();
  }
  return VariantOf(k);
}

// Columns of panels [p0, p1), all n rows of codes xq[n][ldx]. kFloat: the
// epilogue into y (float*); else the raw sums into acc (int32_t*).
template <bool kFloat>
void RunPanels(const uint8_t* xq, int n, size_t ldx, const float* sx, const Int8Matrix& w,
               const Int8Variant& v, void* out_ptr, int p0, int p1) {
  const int out = w.out(), k4 = w.in4() / 4;
  alignas(64) int32_t tile[kMaxTile];
  for (int r0 = 0; r0 < n; r0 += kMc) {
    const int rows = std::min(kMc, n - r0);
    for (int p = p0; p < p1; p += v.max_panels) {
      const int np = std::min(v.max_panels, p1 - p);
      const int cols = std::min(np * kP, out - p * kP);
      const float* sw = w.scales() + p * kP;
      for (int i = 0; i < rows; i += v.max_rows) {
        const int r = std::min(v.max_rows, rows - i);
        const int row = r0 + i;
        v.kernel(xq + row * ldx, ldx, r, w.Panel(p), w.PanelBytes(), np, k4,
                 w.offsets() + p * kP, tile, np * kP);
        for (int a = 0; a < r; ++a) {
          const int32_t* t = tile + a * np * kP;
          if constexpr (kFloat) {
            float* y = static_cast<float*>(out_ptr) + size_t(row + a) * out + p * kP;
            const float s = sx[row + a];
            for (int c = 0; c < cols; ++c) y[c] = float(t[c]) * (s * sw[c]);
          } else {
            int32_t* acc =
                static_cast<int32_t*>(out_ptr) + size_t(row + a) * out + p * kP;
            std::memcpy(acc, t, cols * sizeof(int32_t));
          }
        }
      }
    }
  }
}

template <bool kFloat>
void Run(const uint8_t* xq, int n, const float* sx, const Int8Matrix& w,
         const Int8Variant& v, void* out) {
  const size_t ldx = w.in4();
  const int panels = w.panels();
  const double work = double(n) * w.in() * w.out();
  const int threads = work < kParallelMinWork ? 1 : std::min(InitThreads(), panels);
  if (threads <= 1) {
    RunPanels<kFloat>(xq, n, ldx, sx, w, v, out, 0, panels);
    return;
  }
  const int chunk = (panels + threads - 1) / threads;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int t = 0; t < threads; ++t) {
    const int p0 = std::min(panels, t * chunk), p1 = std::min(panels, p0 + chunk);
    if (p0 < p1) RunPanels<kFloat>(xq, n, ldx, sx, w, v, out, p0, p1);
  }
}

}  // namespace

void QuantizeRowsInt8(const float* x, int n, int in, int in4, int8_t* q, float* sx) {
  const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  for (int r = 0; r < n; ++r) {
    const float* xr = x + size_t(r) * in;
    int8_t* qr = q + size_t(r) * in4;
    __m128 m = _mm_setzero_ps();
    int k = 0;
    for (; k + 4 <= in; k += 4)
      m = _mm_max_ps(m, _mm_and_ps(abs_mask, _mm_loadu_ps(xr + k)));
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, m);
    float amax = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
    for (; k < in; ++k) amax = std::max(amax, std::fabs(xr[k]));
    std::memset(qr, 0, in4);
    if (!(amax > 0.0f)) {
      sx[r] = 0.0f;
      continue;
    }
    sx[r] = amax / 127.0f;
    const float inv = 127.0f / amax;
    // cvtps2dq rounds to nearest even (the default MXCSR mode), scalar and
    // packed alike.
    const __m128 vinv = _mm_set1_ps(inv);
    const __m128i lo = _mm_set1_epi32(-127), hi = _mm_set1_epi32(127);
    k = 0;
    for (; k + 4 <= in; k += 4) {
      __m128i c = _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(xr + k), vinv));
      // Clamp (SSE2 has no pminsd): c = min(max(c, lo), hi) by compares.
      c = _mm_or_si128(_mm_and_si128(_mm_cmpgt_epi32(c, lo), c),
                       _mm_andnot_si128(_mm_cmpgt_epi32(c, lo), lo));
      c = _mm_or_si128(_mm_and_si128(_mm_cmplt_epi32(c, hi), c),
                       _mm_andnot_si128(_mm_cmplt_epi32(c, hi), hi));
      alignas(16) int32_t ci[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(ci), c);
      for (int i = 0; i < 4; ++i) qr[k + i] = static_cast<int8_t>(ci[i]);
    }
    for (; k < in; ++k) {
      const int c = _mm_cvtss_si32(_mm_set_ss(xr[k] * inv));
      qr[k] = static_cast<int8_t>(std::min(127, std::max(-127, c)));
    }
  }
}

Int8Matrix::Int8Matrix(const float* w, int out, int in) : out_(out), in_(in) {
  if (out <= 0 || in <= 0 || in > kMaxIn) {
    std::fprintf(stderr, "kvq: int8 matrix of %d x %d: out of range\n", out, in);
    std::abort();
  }
  const size_t code_bytes = size_t(panels()) * PanelBytes();
  codes_.reset(static_cast<int8_t*>(std::aligned_alloc(64, (code_bytes + 63) / 64 * 64)));
  if (codes_ == nullptr) throw std::bad_alloc();
  std::memset(codes_.get(), 0, code_bytes);
  const int n_out = panels() * kP;
  scales_.reset(new float[n_out]());
  offsets_.reset(new int32_t[n_out]());
  std::vector<int8_t> row(in4());
  for (int o = 0; o < out; ++o) {
    QuantizeRowsInt8(w + size_t(o) * in, 1, in, in4(), row.data(), &scales_[o]);
    int8_t* panel = codes_.get() + size_t(o / kP) * PanelBytes();
    int32_t sum = 0;
    for (int k = 0; k < in; ++k) {
      panel[size_t(k / 4) * 64 + (o % kP) * 4 + k % 4] = row[k];
      sum += row[k];
    }
    offsets_[o] = 128 * sum;
  }
}

void Int8Matrix::Row(int o, float* dst) const {
  const float s = scales_[o];
  for (int k = 0; k < in_; ++k) dst[k] = float(Code(o, k)) * s;
}

bool Int8KernelSupported(Int8Kernel kernel) {
  static const bool has[] = {true, CpuHas(Int8Kernel::kAvx512Vnni),
                             CpuHas(Int8Kernel::kAvxVnni), CpuHas(Int8Kernel::kAvx2),
                             true};
  return has[static_cast<int>(kernel)];
}

Int8Kernel BestInt8Kernel() {
  for (Int8Kernel k :
       {Int8Kernel::kAvx512Vnni, Int8Kernel::kAvxVnni, Int8Kernel::kAvx2}) {
    if (Int8KernelSupported(k)) return k;
  }
  return Int8Kernel::kPortable;
}

const char* Int8KernelName(Int8Kernel kernel) {
  if (kernel == Int8Kernel::kAuto) kernel = BestInt8Kernel();
  return VariantOf(kernel).name;
}

void Int8MatMul(const float* x, int n, const Int8Matrix& w, float* y, Int8Kernel kernel) {
  if (n <= 0) return;
  const Int8Variant& v = Pick(kernel);
  const int in4 = w.in4();
  std::vector<int8_t> q(size_t(n) * in4);
  std::vector<float> sx(n);
  QuantizeRowsInt8(x, n, w.in(), in4, q.data(), sx.data());
  if (v.offset_x) {
    for (int8_t& c : q) c = static_cast<int8_t>(static_cast<uint8_t>(c) ^ 0x80);
  }
  Run<true>(reinterpret_cast<const uint8_t*>(q.data()), n, sx.data(), w, v, y);
}

void Int8Accumulate(const int8_t* q, int n, const Int8Matrix& w, int32_t* acc,
                    Int8Kernel kernel) {
  if (n <= 0) return;
  const Int8Variant& v = Pick(kernel);
  std::vector<int8_t> xq(q, q + size_t(n) * w.in4());
  if (v.offset_x) {
    for (int8_t& c : xq) c = static_cast<int8_t>(static_cast<uint8_t>(c) ^ 0x80);
  }
  Run<false>(reinterpret_cast<const uint8_t*>(xq.data()), n, nullptr, w, v, acc);
}

}  // namespace kvq::model_internal
