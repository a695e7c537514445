// Matrix products against int8 weights, packed once at load: symmetric
// per output channel (scale_o = max_k |w[o][k]| / 127, codes in [-127, 127]),
// activations quantized per row on the fly the same way, exact int32
// products, an fp32 epilogue.
//
//   Int8Matrix wq(w.wq.data(), /*out=*/qdim, /*in=*/dim);  // at load
//   Int8MatMul(x, n, wq, y);                                // y[n][qdim]
//
// The specification (kPortable):
//   sx[r] = max_k |x[r][k]| / 127,  qx[r][k] = clamp(rne(x[r][k] * (127 / max)), +-127)
//   acc[r][o] = sum_k qx[r][k] * qw[o][k]                      (int32, exact)
//   y[r][o] = float(acc[r][o]) * (sx[r] * sw[o])               (two fp32 products)
// (a row of zeros has sx = 0 and gives y = 0). Every variant computes the
// same exact integers, so every output is bit-identical to kPortable's; the
// quantizer and the epilogue are shared code. Integer sums do not depend on
// their order: a row's result is identical alone or in any batch, on any
// thread count.
//
// Variants (selected once from the CPU, every one reachable from tests):
//   kAvx512Vnni  vpdpbusd on zmm: (qx + 128) as u8 times qw, minus 128 * sum_k qw
//   kAvxVnni     the same on ymm (VEX-encoded AVX-VNNI)
//   kAvx2        vpsignb / vpmaddubsw (|qx| times sign(qx) * qw: pairs stay
//                within int16, never saturate) / vpmaddwd
//   kPortable    plain C++, the specification
#ifndef KVQ_MODEL_INTERNAL_INT8_MATMUL_H_
#define KVQ_MODEL_INTERNAL_INT8_MATMUL_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace kvq::model_internal {

class Int8Matrix {
 public:
  static constexpr int kPanel = 16;  // output features per panel
  // Largest `in`: the VNNI variants' raw sums reach 255 * 127 * in < 2^31.
  static constexpr int kMaxIn = 65536;

  Int8Matrix() = default;
  // Quantizes and packs w[out][in] (row-major). 0 < out, 0 < in <= kMaxIn
  // (aborts otherwise).
  Int8Matrix(const float* w, int out, int in);

  int out() const { return out_; }
  int in() const { return in_; }
  int panels() const { return (out_ + kPanel - 1) / kPanel; }
  // in rounded up to 4 (the codes are zero beyond in).
  int in4() const { return (in_ + 3) & ~3; }

  // Panel p's codes: [in4 / 4][16 features][4 consecutive k], 64-byte aligned.
  const int8_t* Panel(int p) const { return codes_.get() + size_t(p) * PanelBytes(); }
  size_t PanelBytes() const { return size_t(in4()) * kPanel; }
  // [panels * 16] (zero for padding features).
  const float* scales() const { return scales_.get(); }
  // 128 * sum_k qw[o][k], [panels * 16]: what the VNNI variants subtract.
  const int32_t* offsets() const { return offsets_.get(); }

  // Codes, scales and offsets, padding included.
  size_t bytes() const {
    return size_t(panels()) * PanelBytes() + size_t(panels()) * kPanel * 8;
  }

  // Row o dequantized (qw[o][k] * sw[o]) into dst[in].
  void Row(int o, float* dst) const;
  // Code qw[o][k].
  int8_t Code(int o, int k) const {
    return Panel(o / kPanel)[size_t(k / 4) * 64 + (o % kPanel) * 4 + k % 4];
  }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  int out_ = 0;
  int in_ = 0;
  std::unique_ptr<int8_t[], Free> codes_;
  std::unique_ptr<float[]> scales_;
  std::unique_ptr<int32_t[]> offsets_;
};

enum class Int8Kernel { kAuto, kAvx512Vnni, kAvxVnni, kAvx2, kPortable };

// Whether this CPU runs `kernel` (kAuto and kPortable: always).
bool Int8KernelSupported(Int8Kernel kernel);
// What kAuto runs here: the first supported of kAvx512Vnni, kAvxVnni, kAvx2,
// kPortable.
Int8Kernel BestInt8Kernel();
// "avx512vnni", "avxvnni", "avx2", "portable" (kAuto: the best's name).
const char* Int8KernelName(Int8Kernel kernel);

// Quantizes x[n][in] per row: codes q[n][in4] (zero beyond in) and scales
// sx[n] as in the specification above. Shared by every variant.
void QuantizeRowsInt8(const float* x, int n, int in, int in4, int8_t* q, float* sx);

// y[n][w.out()] = the specification above (y overwritten), panels split
// over InitThreads() threads when large. A kernel this CPU lacks aborts.
void Int8MatMul(const float* x, int n, const Int8Matrix& w, float* y,
                Int8Kernel kernel = Int8Kernel::kAuto);

// The integer core alone, for tests: acc[n][w.out()] = sum_k q[r][k] *
// qw[o][k] over codes q[n][w.in4()].
void Int8Accumulate(const int8_t* q, int n, const Int8Matrix& w, int32_t* acc,
                    Int8Kernel kernel = Int8Kernel::kAuto);

}  // namespace kvq::model_internal

#endif  // KVQ_MODEL_INTERNAL_INT8_MATMUL_H_
