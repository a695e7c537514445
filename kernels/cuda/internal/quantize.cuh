// Device code of the CUDA quantizer (design 3.2), bit-identical to the scalar
// reference (kernels/reference.cc): fp16 scale and zero, one fp32 subtraction
// and one IEEE division per code (__fsub_rn, __fdiv_rn: never contracted or
// replaced by a reciprocal), round half to even (__float2int_rn), fp16
// conversions rounding to nearest even (__float2half_rn).
//
// Launch shape (kernels/cuda/quantize.cu): grid n_blocks * n_kv_heads, one
// CTA per KV head of a block, kQuantizeThreads threads. Keys: one thread per
// channel holds the channel's B values in registers. Values: one thread per
// (token, channel group) computes the group's scale and zero into shared
// memory, then one thread per code byte packs the codes, so no two threads
// write the same byte.
#ifndef KVQ_KERNELS_CUDA_INTERNAL_QUANTIZE_CUH_
#define KVQ_KERNELS_CUDA_INTERNAL_QUANTIZE_CUH_

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/block_format.h"
#include "kernels/cuda/internal/params.h"

namespace kvq::kernels::cuda_internal {

inline constexpr int kQuantizeThreads = 128;

// An input value as the fp16 cache holds it, widened to fp32.
__device__ __forceinline__ float LoadAsHalf(const float* p) {
  return __half2float(__float2half_rn(*p));
}
__device__ __forceinline__ float LoadAsHalf(const uint16_t* p) {
  return __half2float(__ushort_as_half(*p));
}
__device__ __forceinline__ bool FitsHalf(float x) {
  // NaN, Inf and finite values that round to an fp16 infinity (|x| >= 65520).
  return (__half_as_ushort(__float2half_rn(x)) & 0x7c00) != 0x7c00;
}
__device__ __forceinline__ bool FitsHalf(uint16_t h) { return (h & 0x7c00) != 0x7c00; }

// Sets *error when any of x[0..n) is not representable as a finite fp16.
template <typename In>
__global__ void CheckFiniteKernel(const In* __restrict__ x, size_t n, int* error) {
  bool bad = false;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    bad |= !FitsHalf(x[i]);
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) atomicExch(error, 1);
}

struct GroupQuant {
  float scale;  // fp16 values widened to fp32
  float zero;
  uint16_t scale_bits;
  uint16_t zero_bits;
};

// Scale and zero of a group whose min and max (fp16 values, as fp32) are
// mn and mx. A zero of either sign counts as +0, as in the reference.
template <int kBits>
__device__ __forceinline__ GroupQuant MakeGroupQuant(float mn, float mx) {
  mn = __fadd_rn(mn, 0.0f);
  mx = __fadd_rn(mx, 0.0f);
  constexpr float kLevels = static_cast<float>((1 << kBits) - 1);
  const __half scale = __float2half_rn(__fdiv_rn(__fsub_rn(mx, mn), kLevels));
  const __half zero = __float2half_rn(mn);
  return {__half2float(scale), __half2float(zero), __half_as_ushort(scale),
          __half_as_ushort(zero)};
}

template <int kBits>
__device__ __forceinline__ uint32_t QuantizeValue(float x, const GroupQuant& g) {
  if (g.scale == 0.0f) return 0;
  const int q = __float2int_rn(__fdiv_rn(__fsub_rn(x, g.zero), g.scale));
  return static_cast<uint32_t>(min(max(q, 0), (1 << kBits) - 1));
}

__device__ __forceinline__ void StoreHalfBits(uint8_t* p, uint16_t h) {
  *reinterpret_cast<uint16_t*>(p) = h;  // little-endian, 2-byte aligned
}

// Quantizes one KV head of one block. In is float (rounded to fp16 first) or
// uint16_t (fp16 bit patterns). Does nothing when the check kernel flagged
// the input, so an invalid call writes no byte.
template <typename In, int kBits, int kHeadDim, int kB>
__global__ void __launch_bounds__(kQuantizeThreads)
    QuantizeKernel(const QuantizeParams p) {
  if (*p.error != 0) return;
  static_assert(kB * kBits % 32 == 0, "key code rows are whole 32-bit words");
  constexpr int kCodesPerWord = 32 / kBits;
  constexpr int kKeyRowWords = kB * kBits / 32;
  constexpr int kCodesPerByte = 8 / kBits;
  constexpr int kValueRowBytes = kHeadDim * kBits / 8;

  const size_t slot = blockIdx.x;  // block * n_kv_heads + KV head
  const In* k = static_cast<const In*>(p.k) + slot * kB * kHeadDim;  // [B][D]
  const In* v = static_cast<const In*>(p.v) + slot * kB * kHeadDim;  // [B][D]
  uint8_t* out = p.out + slot * p.head_bytes;
  // A KIVI encoding (the host refuses the others): value bits = key bits.
  const BlockEncoding enc{kFormatVersion, kB, kBits, static_cast<uint16_t>(p.group),
                          kBits,          0,  0,     0};
  const HeadLayout l = GetHeadLayout(enc, kHeadDim);

  // Keys, per channel: the channel's B values in registers.
  for (int c = threadIdx.x; c < kHeadDim; c += blockDim.x) {
    float x[kB];
#pragma unroll
    for (int t = 0; t < kB; ++t) x[t] = LoadAsHalf(k + t * kHeadDim + c);
    float mn = x[0], mx = x[0];
#pragma unroll
    for (int t = 1; t < kB; ++t) {
      mn = fminf(mn, x[t]);
      mx = fmaxf(mx, x[t]);
    }
    const GroupQuant g = MakeGroupQuant<kBits>(mn, mx);
    uint32_t* row = reinterpret_cast<uint32_t*>(out + l.k_codes) + c * kKeyRowWords;
#pragma unroll
    for (int w = 0; w < kKeyRowWords; ++w) {
      uint32_t word = 0;
#pragma unroll
      for (int i = 0; i < kCodesPerWord; ++i) {
        word |= QuantizeValue<kBits>(x[w * kCodesPerWord + i], g) << (i * kBits);
      }
      row[w] = word;
    }
    StoreHalfBits(out + l.k_scale + 2 * c, g.scale_bits);
    StoreHalfBits(out + l.k_zero + 2 * c, g.zero_bits);
  }

  // Values, per token and group of G channels: scale and zero first.
  __shared__ float s_scale[kB * kHeadDim];
  __shared__ float s_zero[kB * kHeadDim];
  const int groups = kHeadDim / p.group;
  for (int i = threadIdx.x; i < kB * groups; i += blockDim.x) {
    const int t = i / groups, g = i % groups;
    const In* x = v + t * kHeadDim + g * p.group;
    float mn = LoadAsHalf(x), mx = mn;
    for (int j = 1; j < p.group; ++j) {
      const float xj = LoadAsHalf(x + j);
      mn = fminf(mn, xj);
      mx = fmaxf(mx, xj);
    }
    const GroupQuant gq = MakeGroupQuant<kBits>(mn, mx);
    s_scale[i] = gq.scale;
    s_zero[i] = gq.zero;
    StoreHalfBits(out + l.v_scale + 2 * i, gq.scale_bits);
    StoreHalfBits(out + l.v_zero + 2 * i, gq.zero_bits);
  }
  __syncthreads();
  // Then one thread per code byte.
  for (int i = threadIdx.x; i < kB * kValueRowBytes; i += blockDim.x) {
    const int t = i / kValueRowBytes, c0 = (i % kValueRowBytes) * kCodesPerByte;
    uint32_t byte = 0;
#pragma unroll
    for (int j = 0; j < kCodesPerByte; ++j) {
      const int c = c0 + j;
      const int gi = t * groups + c / p.group;
      const GroupQuant g{s_scale[gi], s_zero[gi], 0, 0};
      byte |= QuantizeValue<kBits>(LoadAsHalf(v + t * kHeadDim + c), g) << (j * kBits);
    }
    out[l.v_codes + i] = static_cast<uint8_t>(byte);
  }
}

// An fp16 encoding: K and V rows converted (or copied) into the part.
template <typename In>
__global__ void ConvertFp16Kernel(const QuantizeParams p, size_t head_values) {
  if (*p.error != 0) return;
  const size_t n = head_values * p.n_kv_heads * p.n_blocks;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t slot = i / head_values, j = i % head_values;
    uint16_t* head = reinterpret_cast<uint16_t*>(p.out + slot * p.head_bytes);
    head[j] =
        __half_as_ushort(__float2half_rn(LoadAsHalf(static_cast<const In*>(p.k) + i)));
    head[head_values + j] =
        __half_as_ushort(__float2half_rn(LoadAsHalf(static_cast<const In*>(p.v) + i)));
  }
}

}  // namespace kvq::kernels::cuda_internal

#endif  // KVQ_KERNELS_CUDA_INTERNAL_QUANTIZE_CUH_
