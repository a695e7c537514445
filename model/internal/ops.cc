#include "model/internal/ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

namespace kvq::model_internal {

namespace {

// Below this many multiply-adds OpenBLAS's threads cost more than they save
// (and on a loaded machine they spin): a plain loop wins.
constexpr double kBlasMinWork = 256.0 * 1024;

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

}  // namespace

void MatMul(const float* x, int n, int in, const float* w, int out, float* y) {
  if (double(n) * in * out < kBlasMinWork) {
    for (int r = 0; r < n; ++r) {
      for (int o = 0; o < out; ++o) {
        y[size_t(r) * out + o] = Dot(x + size_t(r) * in, w + size_t(o) * in, in);
      }
    }
    return;
  }
  if (n == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, 0.0f, y, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in,
              0.0f, y, out);
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
