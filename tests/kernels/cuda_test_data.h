// Test data shared by the CUDA kernel tests (cuda_kernels_test on a GPU,
// cuda_emulation_test on the CPU emulator): K/V blocks of model-like,
// adversarial and wide-range values, a byte-diff message, and the attention
// check against the reference.
#ifndef KVQ_TESTS_KERNELS_CUDA_TEST_DATA_H_
#define KVQ_TESTS_KERNELS_CUDA_TEST_DATA_H_

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kernels/block_format.h"
#include "kernels/kernel_set.h"

namespace kvq::kernels::testing {

// K or V of one layer of one block, [n_kv_heads][B][head_dim], of one kind:
// 0 model-like (outlier key channels), 1 adversarial patterns per channel
// (constant groups, signed zeros, subnormals, fp16 extremes, exact ties),
// 2 magnitudes spread over the whole fp16 range.
std::vector<float> MakeData(std::mt19937& rng, int kind, int n_kv_heads, int B,
                            int head_dim, bool keys);

// Format 2 encodings (kernels/README.md) the CUDA tests cover at B and
// head_dim: keys and values at different bit widths, outliers (about 2%,
// odd counts, so most head sections are not word-aligned; also many, all
// and all but one for quantization), u8 scales, and combinations, with
// value groups min(32, head_dim), 2, 1 and head_dim.
std::vector<BlockEncoding> Format2QuantizeEncodings(int B, int head_dim);
std::vector<BlockEncoding> Format2AttentionEncodings(int B, int head_dim);

// "identical", or the first differing byte of two equally long buffers.
std::string FirstDifference(const std::vector<uint8_t>& want,
                            const std::vector<uint8_t>& got);

// Quantization under test, of one layer from fp32 values or from fp16 bit
// patterns; writes LayerBytes(enc, n_kv_heads, head_dim) bytes to `out`.
template <typename In>
using QuantizeRunner = std::function<absl::Status(
    const BlockEncoding& enc, int n_kv_heads, int head_dim, const std::vector<In>& k,
    const std::vector<In>& v, std::vector<uint8_t>* out)>;

// Quantizes one layer of MakeData's `kind` (keys, then values, from `rng`)
// on the reference and with `run_fp32`, and the same values as fp16 with
// `run_fp16`, and expects the reference's bytes from both (the outputs start
// as 0xee, so an unwritten byte shows). Failure messages name the encoding,
// head_dim and kind.
void ExpectQuantizeMatchesReference(std::mt19937& rng, const BlockEncoding& enc,
                                    int n_kv_heads, int head_dim, int kind,
                                    const QuantizeRunner<float>& run_fp32,
                                    const QuantizeRunner<uint16_t>& run_fp16);

// Decode attention under test: fills every task's output.
using AttentionRunner = std::function<absl::Status(
    const AttentionParams& p, const std::vector<AttentionTask>& batch)>;

// Runs one attention configuration on the reference and on `run` over a
// batch of sequences of the given lengths (n_quantized blocks each when
// quantized), and checks every head within 2e-3 of its max|reference|.
// `what` names the configuration in failure messages.
void ExpectAttentionMatchesReference(std::mt19937& rng, const BlockEncoding& enc,
                                     int n_heads, int n_kv_heads, int d,
                                     const std::vector<int>& n_tokens,
                                     const std::vector<int>& n_quantized,
                                     const std::string& what, const AttentionRunner& run);

}  // namespace kvq::kernels::testing

#endif  // KVQ_TESTS_KERNELS_CUDA_TEST_DATA_H_
