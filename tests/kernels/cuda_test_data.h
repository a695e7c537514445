// Test data shared by the CUDA kernel tests (cuda_kernels_test on a GPU,
// cuda_emulation_test on the CPU emulator): K/V blocks of model-like,
// adversarial and wide-range values, and a byte-diff message.
#ifndef KVQ_TESTS_KERNELS_CUDA_TEST_DATA_H_
#define KVQ_TESTS_KERNELS_CUDA_TEST_DATA_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace kvq::kernels::testing {

// K or V of one layer of one block, [n_kv_heads][B][head_dim], of one kind:
// 0 model-like (outlier key channels), 1 adversarial patterns per channel
// (constant groups, signed zeros, subnormals, fp16 extremes, exact ties),
// 2 magnitudes spread over the whole fp16 range.
std::vector<float> MakeData(std::mt19937& rng, int kind, int n_kv_heads, int B,
                            int head_dim, bool keys);

// "identical", or the first differing byte of two equally long buffers.
std::string FirstDifference(const std::vector<uint8_t>& want,
                            const std::vector<uint8_t>& got);

}  // namespace kvq::kernels::testing

#endif  // KVQ_TESTS_KERNELS_CUDA_TEST_DATA_H_
