// One weight matrix of the transformer, packed once at load in the
// WeightsMode it was asked for (model/weights_mode.h): fp32 (PackedMatMul,
// unchanged), bf16 (Bf16MatMul) or int8 (Int8MatMul).
//
//   WeightMatrix wq(w.wq.data(), qdim, dim, WeightsMode::kInt8);
//   wq.MatMul(x, n, y);  // y[n][qdim]
//
// Every mode is batch invariant: a row's result does not depend on the
// other rows of the batch.
#ifndef KVQ_MODEL_INTERNAL_WEIGHT_MATRIX_H_
#define KVQ_MODEL_INTERNAL_WEIGHT_MATRIX_H_

#include <cstddef>

#include "model/internal/bf16_matmul.h"
#include "model/internal/int8_matmul.h"
#include "model/internal/packed_matmul.h"
#include "model/weights_mode.h"

namespace kvq::model_internal {

class WeightMatrix {
 public:
  WeightMatrix() = default;
  // Packs w[out][in] (row-major); see the modes' headers for the limits.
  WeightMatrix(const float* w, int out, int in, model::WeightsMode mode);

  model::WeightsMode mode() const { return mode_; }
  int out() const;
  int in() const;
  // The packed bytes held (codes, scales and padding included).
  size_t bytes() const;

  // y[n][out] = x[n][in] . W^T in this mode (y overwritten).
  void MatMul(const float* x, int n, float* y) const;
  // Row o as the products see it (dequantized for int8) into dst[in].
  void Row(int o, float* dst) const;

 private:
  model::WeightsMode mode_ = model::WeightsMode::kFp32;
  PackedMatrix fp32_;
  Bf16Matrix bf16_;
  Int8Matrix int8_;
};

// The kernel names a mode's products run on this CPU: "avx2fma" or
// "portable" (fp32, bf16); "avx512vnni", "avxvnni", "avx2" or "portable"
// (int8).
const char* WeightsKernelName(model::WeightsMode mode);

}  // namespace kvq::model_internal

#endif  // KVQ_MODEL_INTERNAL_WEIGHT_MATRIX_H_
