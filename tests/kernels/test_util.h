// Test helpers for the kernels: seeded KV data shaped like a real model's
// (keys with a few outlier channels), sequence caches built with the
// reference quantizer, and a naive fp64 attention over dequantized values.
#ifndef KVQ_TESTS_KERNELS_TEST_UTIL_H_
#define KVQ_TESTS_KERNELS_TEST_UTIL_H_

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/block_format.h"
#include "kernels/kernel_set.h"

namespace kvq::kernels::testing {

// n values ~ N(0, 1) laid out [rows][head_dim]; for keys, every 16th channel
// (and channel 1) is an outlier channel: scaled by 12 and offset by 3, as the
// outlier key channels KIVI quantizes per channel for.
std::vector<float> RandomKv(std::mt19937& rng, size_t rows, int head_dim, bool keys);

// One sequence's cache for one layer: `n_quantized` blocks in `enc` then
// fp16 blocks holding the remaining tokens (the last one partial, its unused
// rows zero). Owns the bytes `cache` points into, plus the dequantized K and V
// that the cache holds, per KV head: [n_kv_heads][n_tokens][head_dim].
struct TestCache {
  std::vector<std::vector<uint8_t>> parts;
  SequenceCache cache;
  std::vector<double> k, v;
};

// Builds a TestCache of n_tokens random tokens (quantized with the
// reference). enc gives B and the quantization; enc may be fp16 only when
// n_quantized == 0.
TestCache BuildCache(std::mt19937& rng, const BlockEncoding& enc, int n_kv_heads,
                     int head_dim, int n_tokens, int n_quantized);

// softmax(q . k_t / sqrt(head_dim)) . v in double over the dequantized cache.
// q: [n_heads][head_dim]; returns [n_heads][head_dim].
std::vector<double> NaiveAttention(const TestCache& c, int n_heads, int n_kv_heads,
                                   int head_dim, const std::vector<float>& q);

// x as fp16 bit patterns (FloatToHalf of each value).
std::vector<uint16_t> ToHalf(const std::vector<float>& x);

// Attention params for a cache built with `enc`.
AttentionParams Params(const BlockEncoding& enc, int n_heads, int n_kv_heads,
                       int head_dim);

}  // namespace kvq::kernels::testing

#endif  // KVQ_TESTS_KERNELS_TEST_UTIL_H_
