#include "model/internal/ops.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

namespace kvq::model_internal {

namespace {

// Below this many multiply-adds threads cost more than they save: a plain
// loop on the calling thread.
constexpr double kParallelMinWork = 256.0 * 1024;
// Up to this many rows, a matrix product streams each weight row once
// through FMA registers (OpenBLAS's sgemm would first copy the weights).
constexpr int kSmallBatch = 8;

float Dot(const float* a, const float* b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float s =
      ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void MatMulLoop(const float* x, int n, int in, const float* w, int o_begin, int o_end,
                int out, float* y) {
  for (int r = 0; r < n; ++r) {
    for (int o = o_begin; o < o_end; ++o) {
      y[size_t(r) * out + o] = Dot(x + size_t(r) * in, w + size_t(o) * in, in);
    }
  }
}

// y[r][o] for R rows of x and weight rows [o_begin, o_end), AVX2 + FMA.
template <int R>
__attribute__((target("avx2,fma"))) void SmallBatchAvx2(const float* x, int in,
                                                        const float* w, int o_begin,
                                                        int o_end, int out, float* y) {
  for (int o = o_begin; o < o_end; ++o) {
    const float* wo = w + size_t(o) * in;
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= in; i += 8) {
      const __m256 wv = _mm256_loadu_ps(wo + i);
      for (int r = 0; r < R; ++r) {
        acc[r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + size_t(r) * in + i), acc[r]);
      }
    }
    for (int r = 0; r < R; ++r) {
      const __m128 h =
          _mm_add_ps(_mm256_castps256_ps128(acc[r]), _mm256_extractf128_ps(acc[r], 1));
      const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
      float s = _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
      for (int j = i; j < in; ++j) s += wo[j] * x[size_t(r) * in + j];
      y[size_t(r) * out + o] = s;
    }
  }
}

void SmallBatch(const float* x, int n, int in, const float* w, int o_begin, int o_end,
                int out, float* y) {
  switch (n) {
#define KVQ_SMALL_BATCH_CASE(R) \
  case R:                       \
    return SmallBatchAvx2<R>(x, in, w, o_begin, o_end, out, y);
    KVQ_SMALL_BATCH_CASE(1)
    KVQ_SMALL_BATCH_CASE(2)
    KVQ_SMALL_BATCH_CASE(3)
    KVQ_SMALL_BATCH_CASE(4)
    KVQ_SMALL_BATCH_CASE(5)
    KVQ_SMALL_BATCH_CASE(6)
    KVQ_SMALL_BATCH_CASE(7)
    KVQ_SMALL_BATCH_CASE(8)
#undef KVQ_SMALL_BATCH_CASE
  }
}

}  // namespace

bool HasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

bool HasAvx512F() {
  static const bool has = HasAvx2Fma() && __builtin_cpu_supports("avx512f");
  return has;
}

int InitThreads() {
  // One thread pool for everything (OpenMP, which the kernels use too):
  // OpenBLAS's own threads would fight it for the cores.
  static const int threads = [] {
    openblas_set_num_threads(1);
    return omp_get_max_threads();
  }();
  return threads;
}

void ParallelFor(int n, int threads, const std::function<void(int)>& fn) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int i = 0; i < n; ++i) fn(i);
}

void MatMul(const float* x, int n, int in, const float* w, int out, float* y) {
  const double work = double(n) * in * out;
  if (work < kParallelMinWork) {
    MatMulLoop(x, n, in, w, 0, out, out, y);
    return;
  }
  const int threads = InitThreads();
  // Each thread owns a contiguous slice of the output features.
  const int chunk = ((out + threads - 1) / threads + 15) / 16 * 16;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int t = 0; t < threads; ++t) {
    const int o0 = std::min(out, t * chunk), o1 = std::min(out, o0 + chunk);
    if (o0 >= o1) continue;
    if (n <= kSmallBatch && HasAvx2Fma()) {
      SmallBatch(x, n, in, w, o0, o1, out, y);
    } else if (n <= kSmallBatch) {
      MatMulLoop(x, n, in, w, o0, o1, out, y);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, o1 - o0, in, 1.0f, x, in,
                  w + size_t(o0) * in, in, 0.0f, y + o0, out);
    }
  }
}

void RmsNorm(const float* x, const float* w, int size, float eps, float* out) {
  float ss = 0.0f;
  for (int i = 0; i < size; ++i) ss += x[i] * x[i];
  ss = 1.0f / std::sqrt(ss / size + eps);
  for (int i = 0; i < size; ++i) out[i] = w[i] * (ss * x[i]);
}

std::vector<float> RopeFrequencies(int head_dim, float theta) {
  std::vector<float> freq(head_dim / 2);
  for (int j = 0; j < head_dim / 2; ++j) {
    freq[j] = 1.0f / std::pow(theta, static_cast<float>(2 * j) / head_dim);
  }
  return freq;
}

void ApplyRope(float* row, int n_heads, int head_dim, int pos,
               const std::vector<float>& freq, model::RopeStyle style) {
  const int half = head_dim / 2;
  for (int j = 0; j < half; ++j) {
    const float angle = pos * freq[j];
    const float c = std::cos(angle), s = std::sin(angle);
    for (int h = 0; h < n_heads; ++h) {
      float* x = row + h * head_dim;
      float* a = style == model::RopeStyle::kInterleaved ? x + 2 * j : x + j;
      float* b = style == model::RopeStyle::kInterleaved ? x + 2 * j + 1 : x + j + half;
      const float a0 = *a, b0 = *b;
      *a = a0 * c - b0 * s;
      *b = a0 * s + b0 * c;
    }
  }
}

void SwiGlu(float* gate, const float* up, int size) {
  for (int i = 0; i < size; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void Softmax(float* x, int n) {
  const float mx = *std::max_element(x, x + n);
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace kvq::model_internal
