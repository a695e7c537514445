// Matrix products against bf16 weights (2 bytes a weight), packed once at
// load in PackedMatMul's layout (packed_matmul.h): panels of 16 output
// features, k-major, k-blocks of 256. Weights are rounded to bf16 (nearest
// even; exact for a bf16 checkpoint) and widened back to fp32 in registers;
// activations stay fp32 and every product is an fp32 multiply-add.
//
//   Bf16Matrix w1(w.w1.data(), /*out=*/hidden, /*in=*/dim);  // at load
//   Bf16MatMul(x, n, w1, y);                                 // y[n][hidden]
//
// Batch invariance as PackedMatMul's: every y[r][o] is one multiply-add
// chain over k = 0 .. in-1 in order, starting from 0, whatever the batch.
// kAvx2Fma gives exactly PackedMatMul(kAvx2Fma) over the rounded weights;
// kPortable (separate multiply and add) is the specification.
#ifndef KVQ_MODEL_INTERNAL_BF16_MATMUL_H_
#define KVQ_MODEL_INTERNAL_BF16_MATMUL_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "model/internal/packed_matmul.h"

namespace kvq::model_internal {

// fp32 -> bf16, round to nearest even (NaN stays NaN).
inline uint16_t FloatToBf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float Bf16ToFloat(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

class Bf16Matrix {
 public:
  static constexpr int kPanel = PackedMatrix::kPanel;
  static constexpr int kBlockK = PackedMatrix::kBlockK;

  Bf16Matrix() = default;
  // Rounds and packs w[out][in] (row-major). out, in > 0.
  Bf16Matrix(const float* w, int out, int in);

  int out() const { return out_; }
  int in() const { return in_; }
  int panels() const { return (out_ + kPanel - 1) / kPanel; }
  size_t bytes() const { return size_t(panels()) * kPanel * in_ * sizeof(uint16_t); }

  // Block [k0, k0 + kc) of panel p: kc rows of 16 bf16 (as PackedMatrix).
  const uint16_t* Block(int p, int k0) const {
    const int kc = in_ - k0 < kBlockK ? in_ - k0 : kBlockK;
    return data_.get() + size_t(k0) * kPanel * panels() + size_t(p) * kc * kPanel;
  }

  // Row o widened to fp32 into dst[in].
  void Row(int o, float* dst) const;

 private:
  struct Free {
    void operator()(uint16_t* p) const { std::free(p); }
  };
  int out_ = 0;
  int in_ = 0;
  std::unique_ptr<uint16_t[], Free> data_;  // [k-block][panel][kc][16], 64-byte aligned
};

// y[n][w.out()] = x[n][w.in()] . W^T (y overwritten), panels split over
// InitThreads() threads when large. kAuto: kAvx2Fma when the CPU has them.
void Bf16MatMul(const float* x, int n, const Bf16Matrix& w, float* y,
                MatMulKernel kernel = MatMulKernel::kAuto);

}  // namespace kvq::model_internal

#endif  // KVQ_MODEL_INTERNAL_BF16_MATMUL_H_
