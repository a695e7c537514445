#include "model/internal/weight_matrix.h"

#include "model/internal/ops.h"

namespace kvq::model_internal {

using model::WeightsMode;

WeightMatrix::WeightMatrix(const float* w, int out, int in, WeightsMode mode)
    : mode_(mode) {
  switch (mode) {
    case WeightsMode::kFp32:
      fp32_ = PackedMatrix(w, out, in);
      break;
    case WeightsMode::kBf16:
      bf16_ = Bf16Matrix(w, out, in);
      break;
    case WeightsMode::kInt8:
      int8_ = Int8Matrix(w, out, in);
      break;
  }
}

int WeightMatrix::out() const {
  switch (mode_) {
    case WeightsMode::kBf16:
      return bf16_.out();
    case WeightsMode::kInt8:
      return int8_.out();
    default:
      return fp32_.out();
  }
}

int WeightMatrix::in() const {
  switch (mode_) {
    case WeightsMode::kBf16:
      return bf16_.in();
    case WeightsMode::kInt8:
      return int8_.in();
    default:
      return fp32_.in();
  }
}

size_t WeightMatrix::bytes() const {
  switch (mode_) {
    case WeightsMode::kBf16:
      return bf16_.bytes();
    case WeightsMode::kInt8:
      return int8_.bytes();
    default:
      return fp32_.bytes();
  }
}

void WeightMatrix::MatMul(const float* x, int n, float* y) const {
  switch (mode_) {
    case WeightsMode::kBf16:
      return Bf16MatMul(x, n, bf16_, y);
    case WeightsMode::kInt8:
      return Int8MatMul(x, n, int8_, y);
    default:
      return PackedMatMul(x, n, fp32_, y);
  }
}

void WeightMatrix::Row(int o, float* dst) const {
  switch (mode_) {
    case WeightsMode::kBf16:
      return bf16_.Row(o, dst);
    case WeightsMode::kInt8:
      return int8_.Row(o, dst);
    default:
      return fp32_.Row(o, dst);
  }
}

const char* WeightsKernelName(WeightsMode mode) {
  if (mode == WeightsMode::kInt8) return Int8KernelName(Int8Kernel::kAuto);
  if (mode == WeightsMode::kBf16) return Bf16KernelName(Bf16Kernel::kAuto);
  return MatMulKernelName(MatMulKernel::kAuto);
}

}  // namespace kvq::model_internal
