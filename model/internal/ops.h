// The transformer's building blocks on float32 rows: the unpacked matrix
// product (the transformer's own is packed_matmul.h), RMSNorm, RoPE in both
// layouts, SwiGLU, softmax.
#ifndef KVQ_MODEL_INTERNAL_OPS_H_
#define KVQ_MODEL_INTERNAL_OPS_H_

#include <functional>
#include <vector>

#include "model/config.h"

namespace kvq::model_internal {

// Makes OpenBLAS single-threaded (all parallelism goes through OpenMP) and
// returns the number of threads the forward pass uses. Idempotent.
int InitThreads();

// Runs fn(i) for i in [0, n) on at most `threads` OpenMP threads (dynamic,
// one index at a time): the model's team, lent to the KV kernels
// (kernels::AttentionParams::parallel_for).
void ParallelFor(int n, int threads, const std::function<void(int)>& fn);

// Whether the CPU has AVX2 and FMA (checked once).
bool HasAvx2Fma();
// Whether it also has AVX-512F: the zmm matrix-product kernels (checked once).
bool HasAvx512F();

// y[n][out] = x[n][in] . w[out][in]^T (row-major, as llama2.c and HF store),
// split over InitThreads() threads when large; AVX2/FMA when available. The
// unpacked path (up to 8 rows: one weight row at a time; more: OpenBLAS's
// sgemm, which copies the weights on every call): the transformer uses
// PackedMatMul (packed_matmul.h); this one stays as its measured baseline.
void MatMul(const float* x, int n, int in, const float* w, int out, float* y);

// out[i] = w[i] * x[i] / sqrt(mean(x^2) + eps) over one row of `size`.
void RmsNorm(const float* x, const float* w, int size, float eps, float* out);

// RoPE frequencies of one head: freq[j] = theta^(-2j/head_dim), j < head_dim/2.
std::vector<float> RopeFrequencies(int head_dim, float theta);

// Rotates every head of one row at position `pos`. Interleaved: pairs
// (2j, 2j+1); half-split: pairs (j, j + head_dim/2); pair j uses freq[j].
void ApplyRope(float* row, int n_heads, int head_dim, int pos,
               const std::vector<float>& freq, model::RopeStyle style);

// gate[i] = silu(gate[i]) * up[i].
void SwiGlu(float* gate, const float* up, int size);

// Softmax of x[0..n) in place (max-subtracted, float32).
void Softmax(float* x, int n);

}  // namespace kvq::model_internal

#endif  // KVQ_MODEL_INTERNAL_OPS_H_
