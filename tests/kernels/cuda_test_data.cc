#include "tests/kernels/cuda_test_data.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/kernels/test_util.h"

namespace kvq::kernels::testing {

std::vector<float> MakeData(std::mt19937& rng, int kind, int n_kv_heads, int B,
                            int head_dim, bool keys) {
  const size_t rows = static_cast<size_t>(n_kv_heads) * B;
  if (kind == 0) return RandomKv(rng, rows, head_dim, keys);
  std::vector<float> x(rows * head_dim);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (size_t r = 0; r < rows; ++r) {
    const int t = static_cast<int>(r % B);
    for (int c = 0; c < head_dim; ++c) {
      float& y = x[r * head_dim + c];
      if (kind == 2) {
        const float mag = std::ldexp(1.0f + u(rng), static_cast<int>(u(rng) * 40) - 24);
        y = std::min(mag, 65000.0f) * (u(rng) < 0.5f ? -1.0f : 1.0f);
        continue;
      }
      switch ((c + (keys ? 0 : t)) % 6) {
        case 0:
          y = 1.5f;
          break;  // constant
        case 1:
          y = (t % 2) ? -0.0f : 0.0f;
          break;  // signed zeros
        case 2:
          y = std::ldexp(static_cast<float>(t % 5), -24);
          break;  // subnormal
        case 3:
          y = (t % 3 == 0) ? -65504.0f : (t % 3 == 1 ? 65519.0f : 3.0f);
          break;
        case 4:
          y = 0.5f * static_cast<float>(t % 7);
          break;  // ties at 2 bits
        default:
          y = 1e-3f * static_cast<float>(t) - 0.01f;
          break;
      }
    }
  }
  return x;
}

std::string FirstDifference(const std::vector<uint8_t>& want,
                            const std::vector<uint8_t>& got) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] != got[i]) {
      return absl::StrCat("byte ", i, ": reference ", want[i], ", cuda ", got[i]);
    }
  }
  return "identical";
}

}  // namespace kvq::kernels::testing
