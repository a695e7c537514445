// The specification's integer core: plain int32 sums.
#include "model/internal/int8_kernels.h"

namespace kvq::model_internal {
namespace {

void KernelPortable(const uint8_t* x, size_t ldx, int rows, const int8_t* w,
                    size_t panel_bytes, int panels, int k4, const int32_t* /*offsets*/,
                    int32_t* acc, size_t ldacc) {
  for (int r = 0; r < rows; ++r) {
    const int8_t* xr = reinterpret_cast<const int8_t*>(x + r * ldx);
    for (int p = 0; p < panels; ++p) {
      const int8_t* wp = w + p * panel_bytes;
      int32_t sum[16] = {};
      for (int q = 0; q < k4; ++q) {
        for (int j = 0; j < 16; ++j) {
          for (int i = 0; i < 4; ++i) {
            sum[j] += int32_t(xr[4 * q + i]) * int32_t(wp[q * 64 + j * 4 + i]);
          }
        }
      }
      for (int j = 0; j < 16; ++j) acc[r * ldacc + p * 16 + j] = sum[j];
    }
  }
}

}  // namespace

const Int8Variant& Int8VariantPortable() {
  static constexpr Int8Variant v{"portable", 4, 4, false, KernelPortable};
  return v;
}

}  // namespace kvq::model_internal
