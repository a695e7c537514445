// The per-ISA cores of Int8MatMul (int8_matmul.h), each compiled with its own
// -m flags in its own file; only int8_matmul.cc calls them, after a run-time
// CPU check.
#ifndef KVQ_MODEL_INTERNAL_INT8_KERNELS_H_
#define KVQ_MODEL_INTERNAL_INT8_KERNELS_H_

#include <cstddef>
#include <cstdint>

namespace kvq::model_internal {

// One call: for r < rows (<= max_rows) and p < panels (<= max_panels),
//   acc[r * ldacc + p * 16 + j] = sum_{k < 4 * k4} x(r, k) * w_p[k][j]
// where x(r, k) = x[r * ldx + k] read as int8, or, when offset_x, as
// uint8 holding code + 128 (the kernel then subtracts offsets[p * 16 + j],
// 128 * sum_k w, so acc is the same exact sum). w_p = w + p * panel_bytes,
// laid out [k4][16][4] (Int8Matrix::Panel).
using Int8KernelFn = void (*)(const uint8_t* x, size_t ldx, int rows, const int8_t* w,
                              size_t panel_bytes, int panels, int k4,
                              const int32_t* offsets, int32_t* acc, size_t ldacc);

struct Int8Variant {
  const char* name;
  int max_rows;
  int max_panels;
  bool offset_x;
  Int8KernelFn kernel;
};

const Int8Variant& Int8VariantPortable();
const Int8Variant& Int8VariantAvx2();        // needs AVX2
const Int8Variant& Int8VariantAvxVnni();     // needs AVX2 + AVX-VNNI
const Int8Variant& Int8VariantAvx512Vnni();  // needs AVX-512 F/BW + VNNI

}  // namespace kvq::model_internal

#endif  // KVQ_MODEL_INTERNAL_INT8_KERNELS_H_
