// Matrix products against bf16 weights (2 bytes a weight), packed once at
// load in PackedMatMul's panels (packed_matmul.h: 16 output features, k-blocks
// of 256) with each feature's weights in pairs of k, [kc / 2][16][2]: the
// operand layout of AVX-512 BF16's vdpbf16ps. Weights are rounded to bf16
// (nearest even; exact for a bf16 checkpoint).
//
//   Bf16Matrix w1(w.w1.data(), /*out=*/hidden, /*in=*/dim);  // at load
//   Bf16MatMul(x, n, w1, y);                                 // y[n][hidden]
//
// Two algorithms, each with a portable specification:
//   fp32 activations (kAvx512Fma, kAvx2Fma, kPortable): the weights widened to fp32,
//   every
//     y[r][o] one multiply-add chain over k = 0 .. in-1 in order from 0:
//     exactly PackedMatMul over the rounded weights with the same kernel.
//   bf16 activations (kAvx512Bf16, kDotPortable): x rounded to bf16 too
//     (nearest even), taken in pairs (k = 2i, 2i + 1; zero past in). Per
//     k-block of 256, y[r][o] continues as
//       a = (first block ? 0 : y),  b = 0
//       for each pair i of the block: (i even ? a : b) = Dot(that, pair i)
//       y = a + b                                            (fp32 add)
//     Dot(acc, pair) = Fma(Fma(acc, x_odd, w_odd), x_even, w_even), each Fma
//     one rounding (the bf16 products are exact in fp32) with denormal
//     inputs, acc included, read as zero and denormal results flushed to
//     zero: vdpbf16ps as the Intel SDM defines it, and as an AMD Zen 5
//     computes it (bit for bit, tested wherever the CPU has the instruction).
//     Two chains a row keep 12 vdpbf16ps in flight at 6 rows.
// Both are batch invariant: a row's result is identical alone or in any
// batch, on any thread count.
#ifndef KVQ_MODEL_INTERNAL_BF16_MATMUL_H_
#define KVQ_MODEL_INTERNAL_BF16_MATMUL_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "model/internal/bf16.h"
#include "model/internal/packed_matmul.h"

namespace kvq::model_internal {

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
  // The packed weights, padding included (out rounded up to 16, in to 2).
  size_t bytes() const {
    return size_t(panels()) * kPanel * ((in_ + 1) & ~1) * sizeof(uint16_t);
  }

  // Block [k0, k0 + kc) of panel p: (kc + 1) / 2 rows of 16 pairs of k
  // (panel::KPairs). k0 is a multiple of kBlockK; kc = min(kBlockK, in - k0).
  const uint16_t* Block(int p, int k0) const {
    const int kc = in_ - k0 < kBlockK ? in_ - k0 : kBlockK;
    return data_.get() + size_t(k0) * kPanel * panels() +
           size_t(p) * ((kc + 1) & ~1) * kPanel;
  }

  // Row o widened to fp32 into dst[in].
  void Row(int o, float* dst) const;

 private:
  struct Free {
    void operator()(uint16_t* p) const { std::free(p); }
  };
  int out_ = 0;
  int in_ = 0;
  std::unique_ptr<uint16_t[], Free>
      data_;  // [k-block][panel][kc/2][16][2], 64-byte aligned
};

// Which micro-kernels Bf16MatMul runs (see the top of this file).
enum class Bf16Kernel {
  kAuto,         // BestBf16Kernel()
  kAvx512Bf16,   // bf16 activations, vdpbf16ps on zmm; needs AVX-512 F + BF16
  kDotPortable,  // kAvx512Bf16's specification in plain C++
  kAvx512Fma,    // fp32 activations and FMAs on zmm; needs AVX-512F
  kAvx2Fma,      // fp32 activations and FMAs; needs AVX2 + FMA
  kPortable,     // fp32 activations, separate multiply and add
};

// Whether this CPU runs `kernel` (kAuto and the portable ones: always).
bool Bf16KernelSupported(Bf16Kernel kernel);
// What kAuto runs here: the first supported of kAvx512Bf16, kAvx512Fma,
// kAvx2Fma, kPortable; the environment's KVQ_BF16_KERNEL (a name below,
// e.g. "avx2fma" for fp32 activations on any CPU) overrides it when this
// CPU runs that kernel (a note on stderr otherwise).
Bf16Kernel BestBf16Kernel();
// "avx512bf16", "dot_portable", "avx512fma", "avx2fma", "portable" (kAuto:
// its choice's).
const char* Bf16KernelName(Bf16Kernel kernel);

// y[n][w.out()] = x[n][w.in()] . W^T (y overwritten), panels split over
// InitThreads() threads when large. A kernel this CPU lacks runs its
// portable specification instead (Bf16KernelSupported tells).
void Bf16MatMul(const float* x, int n, const Bf16Matrix& w, float* y,
                Bf16Kernel kernel = Bf16Kernel::kAuto);

}  // namespace kvq::model_internal

#endif  // KVQ_MODEL_INTERNAL_BF16_MATMUL_H_
