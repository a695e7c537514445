// Matrix products against weights packed once, at model load, into the
// layout the micro-kernels stream: panels of 16 output features, k-major
// inside a panel, cut into k-blocks that fit L1. One code path serves every
// batch size, decode's 1..64 rows and prefill's hundreds.
//
//   PackedMatrix wq(w.wq.data(), /*out=*/qdim, /*in=*/dim);  // at load
//   PackedMatMul(x, n, wq, y);                               // y[n][qdim]
//
// Batch invariance: every y[r][o] is one fused multiply-add chain over
// k = 0, 1, ..., in-1 starting from 0, whichever kernel (6-row block or a
// row remainder), thread or batch position computes it, so a row's result
// is bit-identical alone or inside any batch.
#ifndef KVQ_MODEL_INTERNAL_PACKED_MATMUL_H_
#define KVQ_MODEL_INTERNAL_PACKED_MATMUL_H_

#include <cstddef>
#include <cstdlib>
#include <memory>

namespace kvq::model_internal {

class PackedMatrix {
 public:
  static constexpr int kPanel = 16;    // output features per panel
  static constexpr int kBlockK = 256;  // k per block: a 16 KiB panel slice

  PackedMatrix() = default;
  // Packs w[out][in] (row-major, as the loaders hold weights). out, in > 0.
  PackedMatrix(const float* w, int out, int in);

  int out() const { return out_; }
  int in() const { return in_; }
  int panels() const { return (out_ + kPanel - 1) / kPanel; }
  // The packed floats, padding included (out rounded up to 16).
  size_t bytes() const { return size_t(panels()) * kPanel * in_ * sizeof(float); }

  // Block [k0, k0 + kc) of panel p: kc rows of 16 floats. k0 is a multiple
  // of kBlockK; kc = min(kBlockK, in - k0).
  const float* Block(int p, int k0) const {
    const int kc = in_ - k0 < kBlockK ? in_ - k0 : kBlockK;
    return data_.get() + size_t(k0) * kPanel * panels() + size_t(p) * kc * kPanel;
  }

  // Copies row o of the original matrix, w[o][0..in), into dst[in].
  void Row(int o, float* dst) const;

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  int out_ = 0;
  int in_ = 0;
  std::unique_ptr<float[], Free> data_;  // [k-block][panel][kc][16], 64-byte aligned
};

// Which micro-kernels PackedMatMul runs. kAvx512Fma (zmm, up to 6 rows x 2
// panels a call; 1 panel at 1-2 rows) and kAvx2Fma (ymm, 6 rows x 1 panel) run the same
// FMA chains and give bit-identical results (tested); kPortable multiplies and adds
// separately, so its results differ in rounding. All are batch invariant.
enum class MatMulKernel { kAuto, kAvx512Fma, kAvx2Fma, kPortable };

// Whether this CPU runs `kernel` (kAuto and kPortable: always).
bool MatMulKernelSupported(MatMulKernel kernel);
// What kAuto runs: the first of kAvx512Fma, kAvx2Fma, kPortable supported.
MatMulKernel BestMatMulKernel();
// "avx512fma", "avx2fma", "portable" (kAuto: its choice's).
const char* MatMulKernelName(MatMulKernel kernel);

// y[n][w.out()] = x[n][w.in()] . W^T (x, y row-major, y overwritten), panels
// split over InitThreads() threads when the product is large enough. n >= 0.
// A kernel this CPU lacks runs kPortable (MatMulKernelSupported tells).
void PackedMatMul(const float* x, int n, const PackedMatrix& w, float* y,
                  MatMulKernel kernel = MatMulKernel::kAuto);

}  // namespace kvq::model_internal

#endif  // KVQ_MODEL_INTERNAL_PACKED_MATMUL_H_
