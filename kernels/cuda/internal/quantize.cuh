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
// write the same byte. Outliers: each thread a chunk of positions (by
// position), or a channel (keys by column).
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

// Stores into a head section whose start may have any alignment (format 2
// sections need not be multiples of 2 or 4 bytes): whole words when
// `aligned`, else byte by byte (little-endian).
__device__ __forceinline__ void StoreU16(uint8_t* p, uint16_t h, bool aligned) {
  if (aligned) {
    *reinterpret_cast<uint16_t*>(p) = h;
  } else {
    p[0] = static_cast<uint8_t>(h & 0xffu);
    p[1] = static_cast<uint8_t>(h >> 8);
  }
}
__device__ __forceinline__ void StoreU32(uint8_t* p, uint32_t w, bool aligned) {
  if (aligned) {
    *reinterpret_cast<uint32_t*>(p) = w;
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(w >> (8 * i));
  }
}

// Sum of every thread's v over the CTA in round `round` of a sequence of
// sums, with one barrier per round: counters[3] rotate (round r adds into
// r % 3 and clears (r + 2) % 3, read last in round r - 1, before this
// round's barrier, and next added to in round r + 2, after the next one).
// counters must be zero before round 0.
__device__ __forceinline__ int CtaSum(int v, int round, int* counters) {
  if (v != 0) atomicAdd(&counters[round % 3], v);
  __syncthreads();
  const int sum = counters[round % 3];
  if (threadIdx.x == 0) counters[(round + 2) % 3] = 0;
  return sum;
}

// Shared memory of QuantizeKernel, reused by the keys and then the values.
template <int kHeadDim, int kB>
struct QuantizeShared {
  static constexpr int kN = kB * kHeadDim;  // entries of a head section
  float a[kN];                              // distances, then group minima, then scales
  float b[kN];                              // group maxima, then zeros
  uint8_t is_out[kN];                       // 1 for an outlier position
  uint8_t has[kN];                          // 1 for a group with a non-outlier member
  float lo[kQuantizeThreads], hi[kQuantizeThreads];  // section range partials
  int count[kQuantizeThreads];                       // outliers per chunk
  // Keys by column: outliers per channel, then each channel's first
  // correction (an exclusive scan); its column's index; the column count.
  int col_first[kHeadDim];
  int col_index[kHeadDim];
  int n_cols;
  float range[3];  // u8 scales: base, zero step, scale step (fp16 values)
  int sums[3];     // CtaSum's counters
};

// The groups of one tensor of a head section (reference.cc's Tensor): keys
// per channel (B members, position t*D + c), values per token and G channels.
template <int kHeadDim, int kB, bool kKeys>
struct Groups {
  int G;
  __device__ __forceinline__ int Count() const {
    return kKeys ? kHeadDim : kB * (kHeadDim / G);
  }
  __device__ __forceinline__ int Size() const { return kKeys ? kB : G; }
  __device__ __forceinline__ int Pos(int g, int i) const {
    if (kKeys) return i * kHeadDim + g;
    const int per_token = kHeadDim / G;
    return (g / per_token) * kHeadDim + (g % per_token) * G + i;
  }
  // The group of position pos = t * kHeadDim + c.
  __device__ __forceinline__ int GroupOf(int pos) const {
    return kKeys ? pos % kHeadDim
                 : (pos / kHeadDim) * (kHeadDim / G) + (pos % kHeadDim) / G;
  }
};

// Bits of a position in [0, n).
__host__ __device__ constexpr int PositionBits(int n) {
  int bits = 0;
  while ((1 << bits) < n) ++bits;
  return bits;
}

// Marks in sh.is_out the n_out positions of x [B][D] farthest from their
// group's mean (fp32 mean summed in group order; ties to the lower position),
// as the reference's PickOutliers: the n_out-th largest key (the distance's
// bits, a non-negative float's, then kN - 1 - position) is found bit by bit,
// and the outliers are the keys at or above it.
template <typename In, int kHeadDim, int kB, bool kKeys>
__device__ __forceinline__ void MarkOutliers(const In* x, Groups<kHeadDim, kB, kKeys> gr,
                                             int n_out,
                                             QuantizeShared<kHeadDim, kB>& sh) {
  constexpr int kN = kB * kHeadDim;
  if (n_out == 0 || n_out >= kN) {
    for (int i = threadIdx.x; i < kN; i += blockDim.x) sh.is_out[i] = n_out > 0;
    __syncthreads();
    return;
  }
  if (threadIdx.x < 3) sh.sums[threadIdx.x] = 0;
  for (int g = threadIdx.x; g < gr.Count(); g += blockDim.x) {
    float sum = 0.0f;
    for (int i = 0; i < gr.Size(); ++i)
      sum = __fadd_rn(sum, LoadAsHalf(x + gr.Pos(g, i)));
    const float mean = __fdiv_rn(sum, static_cast<float>(gr.Size()));
    for (int i = 0; i < gr.Size(); ++i) {
      const int pos = gr.Pos(g, i);
      sh.a[pos] = fabsf(__fsub_rn(LoadAsHalf(x + pos), mean));
    }
  }
  __syncthreads();
  constexpr int kPosBits = PositionBits(kN);
  auto key = [&](int pos) {
    return static_cast<uint64_t>(__float_as_uint(sh.a[pos])) << kPosBits |
           static_cast<uint32_t>(kN - 1 - pos);
  };
  uint64_t kth = 0;  // the largest key with at least n_out keys >= it
  for (int bit = 31 + kPosBits - 1, round = 0; bit >= 0; --bit, ++round) {
    const uint64_t candidate = kth | (uint64_t{1} << bit);
    int n = 0;
    for (int i = threadIdx.x; i < kN; i += blockDim.x) n += key(i) >= candidate;
    if (CtaSum(n, round, sh.sums) >= n_out) kth = candidate;
  }
  for (int i = threadIdx.x; i < kN; i += blockDim.x) sh.is_out[i] = key(i) >= kth;
  __syncthreads();
}

// The fp16 correction x - d of an outlier x of a group quantized with q,
// d = code * scale + zero (block_format.h), as the reference computes it.
template <int kBits>
__device__ __forceinline__ uint16_t OutlierCorrection(float x, const GroupQuant& q) {
  const float d = __fadd_rn(
      __fmul_rn(static_cast<float>(QuantizeValue<kBits>(x, q)), q.scale), q.zero);
  const float delta = fminf(fmaxf(__fsub_rn(x, d), -65504.0f), 65504.0f);
  return __half_as_ushort(__float2half_rn(delta));
}

// Keys: stores the outliers marked in sh.is_out by column (block_format.h)
// when the reference's WriteKeyColumns would: the format allows columns at
// (kB, kHeadDim) and their channels number at most MaxKeyColumns(kB, n_out).
// Returns whether it did (uniformly over the CTA; nothing written if not).
// Counts per channel, one thread each, then thread 0 scans them in channel
// order (the columns' order, ascending) into each column's index and first
// correction; then each byte of k_out_at is written by one thread only (the
// header by thread 0, a column's mask and channel and its corrections by the
// channel's thread, the padding spread over all), so the zero padding needs
// no barrier before the columns are written.
template <typename In, int kBits, int kHeadDim, int kB>
__device__ __forceinline__ bool WriteKeyColumns(const In* x, uint8_t* head,
                                                const HeadLayout& l, int n_out,
                                                QuantizeShared<kHeadDim, kB>& sh) {
  if constexpr (!KeyColumnsAllowed(kB, kHeadDim)) {
    return false;
  } else {
    constexpr int kMaskBytes = kB / 8;
    for (int c = threadIdx.x; c < kHeadDim; c += blockDim.x) {
      int n = 0;
      for (int t = 0; t < kB; ++t) n += sh.is_out[t * kHeadDim + c];
      sh.col_first[c] = n;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int cols = 0, j = 0;
      for (int c = 0; c < kHeadDim; ++c) {
        const int n = sh.col_first[c];
        sh.col_first[c] = j;
        sh.col_index[c] = cols;
        cols += n != 0;
        j += n;
      }
      sh.n_cols = cols;
    }
    __syncthreads();
    const int n_cols = sh.n_cols;
    if (n_cols > MaxKeyColumns(kB, n_out)) return false;  // by position
    uint8_t* at = head + l.k_out_at;
    uint8_t* channel_at = at + 4 + n_cols * kMaskBytes;
    for (int i = 4 + n_cols * (kMaskBytes + 1) + threadIdx.x; i < 2 * n_out;
         i += blockDim.x) {
      at[i] = 0;
    }
    if (threadIdx.x == 0) {
      at[0] = at[1] = 0xff;  // kKeyColumnsMarker
      at[2] = static_cast<uint8_t>(n_cols & 0xff);
      at[3] = static_cast<uint8_t>(n_cols >> 8);
    }
    for (int c = threadIdx.x; c < kHeadDim; c += blockDim.x) {
      uint64_t mask = 0;
      for (int t = 0; t < kB; ++t)
        mask |= static_cast<uint64_t>(sh.is_out[t * kHeadDim + c]) << t;
      if (mask == 0) continue;
      const int i = sh.col_index[c];
#pragma unroll
      for (int b = 0; b < kMaskBytes; ++b)
        at[4 + i * kMaskBytes + b] = static_cast<uint8_t>(mask >> (8 * b));
      channel_at[i] = static_cast<uint8_t>(c);
      // The column's corrections, tokens ascending.
      const GroupQuant q{sh.a[c], sh.b[c], 0, 0};
      int j = sh.col_first[c];
      for (int t = 0; t < kB; ++t) {
        if (((mask >> t) & 1) == 0) continue;
        StoreU16(head + l.k_out + 2 * j,
                 OutlierCorrection<kBits>(LoadAsHalf(x + t * kHeadDim + c), q), false);
        ++j;
      }
    }
    __syncthreads();
    return true;
  }
}

// Quantizes the keys (kKeys) or the values x [B][D] of one head section into
// `head` (layout l), as the reference's QuantizeTensor: outliers left out of
// the min/max, fp16 or u8 scales and zeros, codes (outliers included), then
// the outliers' corrections and positions (keys: by column where the
// reference stores them so).
template <typename In, int kBits, int kHeadDim, int kB, bool kKeys>
__device__ __forceinline__ void QuantizeTensor(const In* x, uint8_t* head,
                                               const BlockEncoding& enc,
                                               const HeadLayout& l,
                                               QuantizeShared<kHeadDim, kB>& sh) {
  constexpr int kN = kB * kHeadDim;
  constexpr float kLevels = static_cast<float>((1 << kBits) - 1);
  const Groups<kHeadDim, kB, kKeys> gr{enc.group};
  const int n_out = kKeys ? enc.k_outliers : enc.v_outliers;
  const bool u8 = enc.u8_scales();
  const bool aligned = reinterpret_cast<uintptr_t>(head) % 4 == 0;
  const size_t scale_at = kKeys ? l.k_scale : l.v_scale;
  const size_t zero_at = kKeys ? l.k_zero : l.v_zero;
  const size_t range_at = kKeys ? l.k_range : l.v_range;
  MarkOutliers<In, kHeadDim, kB, kKeys>(x, gr, n_out, sh);

  // Min and max of each group's non-outliers (+0 for -0); the section's.
  float lo = 0.0f, hi = 0.0f;
  bool any_section = false;
  for (int g = threadIdx.x; g < gr.Count(); g += blockDim.x) {
    float mn = 0.0f, mx = 0.0f;
    bool any = false;
    for (int i = 0; i < gr.Size(); ++i) {
      const int pos = gr.Pos(g, i);
      if (sh.is_out[pos]) continue;
      const float xi = LoadAsHalf(x + pos);
      mn = any ? fminf(mn, xi) : xi;
      mx = any ? fmaxf(mx, xi) : xi;
      any = true;
    }
    mn = __fadd_rn(mn, 0.0f);
    mx = __fadd_rn(mx, 0.0f);
    sh.a[g] = mn;
    sh.b[g] = mx;
    sh.has[g] = any;
    if (any) {
      lo = any_section ? fminf(lo, mn) : mn;
      hi = any_section ? fmaxf(hi, mx) : mx;
      any_section = true;
    }
  }
  if (u8) {
    sh.lo[threadIdx.x] = any_section ? lo : INFINITY;
    sh.hi[threadIdx.x] = any_section ? hi : -INFINITY;
    __syncthreads();
    if (threadIdx.x == 0) {
      float l0 = INFINITY, h0 = -INFINITY;
      for (int i = 0; i < static_cast<int>(blockDim.x); ++i) {
        l0 = fminf(l0, sh.lo[i]);
        h0 = fmaxf(h0, sh.hi[i]);
      }
      if (l0 == INFINITY) l0 = h0 = 0.0f;  // every entry an outlier
      const __half base = __float2half_rn(l0);
      const __half zs = __float2half_rn(__fdiv_rn(__fsub_rn(h0, l0), 255.0f));
      const __half ss = __float2half_rn(__fdiv_rn(__fsub_rn(h0, l0), kLevels * 255.0f));
      StoreU16(head + range_at, __half_as_ushort(base), false);
      StoreU16(head + range_at + 2, __half_as_ushort(zs), false);
      StoreU16(head + range_at + 4, __half_as_ushort(ss), false);
      sh.range[0] = __half2float(base);
      sh.range[1] = __half2float(zs);
      sh.range[2] = __half2float(ss);
    }
  }
  __syncthreads();

  // Scales and zeros (into sh.a and sh.b, as fp32) and their bytes.
  for (int g = threadIdx.x; g < gr.Count(); g += blockDim.x) {
    const float mn = sh.a[g], mx = sh.b[g];
    if (!u8) {
      const GroupQuant q = MakeGroupQuant<kBits>(mn, mx);
      sh.a[g] = q.scale;
      sh.b[g] = q.zero;
      StoreU16(head + scale_at + 2 * g, q.scale_bits, aligned);
      StoreU16(head + zero_at + 2 * g, q.zero_bits, aligned);
      continue;
    }
    const float base = sh.range[0], zs = sh.range[1], ss = sh.range[2];
    float zc = 0.0f, sc = 0.0f;
    if (sh.has[g] && zs != 0.0f) {
      zc = fminf(255.0f, fmaxf(0.0f, floorf(__fdiv_rn(__fsub_rn(mn, base), zs))));
    }
    const float zero = __fadd_rn(__fmul_rn(zc, zs), base);
    if (sh.has[g] && ss != 0.0f) {
      sc = fminf(
          255.0f,
          fmaxf(0.0f, ceilf(__fdiv_rn(__fdiv_rn(__fsub_rn(mx, zero), kLevels), ss))));
    }
    sh.a[g] = __fmul_rn(sc, ss);
    sh.b[g] = zero;
    head[zero_at + g] = static_cast<uint8_t>(zc);
    head[scale_at + g] = static_cast<uint8_t>(sc);
  }
  __syncthreads();

  // Codes: keys one 32-bit-word run per channel, values one byte per thread.
  if constexpr (kKeys) {
    constexpr int kCodesPerWord = 32 / kBits;
    constexpr int kRowWords = kB * kBits / 32;
    for (int c = threadIdx.x; c < kHeadDim; c += blockDim.x) {
      const GroupQuant g{sh.a[c], sh.b[c], 0, 0};
      uint8_t* row = head + l.k_codes + 4 * c * kRowWords;
#pragma unroll
      for (int w = 0; w < kRowWords; ++w) {
        uint32_t word = 0;
#pragma unroll
        for (int i = 0; i < kCodesPerWord; ++i) {
          const int t = w * kCodesPerWord + i;
          word |= QuantizeValue<kBits>(LoadAsHalf(x + t * kHeadDim + c), g)
                  << (i * kBits);
        }
        StoreU32(row + 4 * w, word, aligned);
      }
    }
  } else {
    constexpr int kCodesPerByte = 8 / kBits;
    constexpr int kRowBytes = kHeadDim * kBits / 8;
    const int groups = kHeadDim / gr.G;
    for (int i = threadIdx.x; i < kB * kRowBytes; i += blockDim.x) {
      const int t = i / kRowBytes, c0 = (i % kRowBytes) * kCodesPerByte;
      uint32_t byte = 0;
#pragma unroll
      for (int j = 0; j < kCodesPerByte; ++j) {
        const int c = c0 + j;
        const int gi = t * groups + c / gr.G;
        const GroupQuant g{sh.a[gi], sh.b[gi], 0, 0};
        byte |= QuantizeValue<kBits>(LoadAsHalf(x + t * kHeadDim + c), g) << (j * kBits);
      }
      head[l.v_codes + i] = static_cast<uint8_t>(byte);
    }
  }
  if (n_out == 0) {
    __syncthreads();  // sh is reused by the next tensor
    return;
  }

  if constexpr (kKeys) {
    if (WriteKeyColumns<In, kBits, kHeadDim, kB>(x, head, l, n_out, sh)) return;
  }

  // Outliers in position order: each thread a chunk of positions, offsets by
  // an exclusive scan of the chunks' counts.
  const size_t out_at = kKeys ? l.k_out : l.v_out;
  const size_t at_at = kKeys ? l.k_out_at : l.v_out_at;
  const int chunk = (kN + blockDim.x - 1) / blockDim.x;
  const int begin = min(kN, static_cast<int>(threadIdx.x) * chunk);
  const int end = min(kN, begin + chunk);
  int n = 0;
  for (int i = begin; i < end; ++i) n += sh.is_out[i];
  sh.count[threadIdx.x] = n;
  __syncthreads();
  if (threadIdx.x == 0) {
    int sum = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x); ++i) {
      const int c = sh.count[i];
      sh.count[i] = sum;
      sum += c;
    }
  }
  __syncthreads();
  int j = sh.count[threadIdx.x];
  for (int i = begin; i < end; ++i) {
    if (!sh.is_out[i]) continue;
    const int g = gr.GroupOf(i);
    const GroupQuant q{sh.a[g], sh.b[g], 0, 0};
    StoreU16(head + out_at + 2 * j, OutlierCorrection<kBits>(LoadAsHalf(x + i), q),
             false);
    for (size_t b = 0; b < l.index_bytes; ++b) {
      head[at_at + l.index_bytes * j + b] =
          static_cast<uint8_t>(static_cast<uint32_t>(i) >> (8 * b));
    }
    ++j;
  }
  __syncthreads();
}

// Quantizes one KV head of one block into a per-layer encoding with kKBits
// keys and kVBits values, p.group, p.k_outliers / p.v_outliers and
// p.u8_scales. In is float (rounded to fp16 first) or uint16_t (fp16 bit
// patterns). Does nothing when the check kernel flagged the input, so an
// invalid call writes no byte.
template <typename In, int kKBits, int kVBits, int kHeadDim, int kB>
__global__ void __launch_bounds__(kQuantizeThreads)
    QuantizeKernel(const QuantizeParams p) {
  if (*p.error != 0) return;
  static_assert(kB * kKBits % 32 == 0, "key code rows are whole 32-bit words");
  static_assert(sizeof(QuantizeShared<kHeadDim, kB>) <= 48 * 1024,
                "static shared memory is at most 48 KiB");
  __shared__ QuantizeShared<kHeadDim, kB> sh;
  const size_t slot = blockIdx.x;  // block * n_kv_heads + KV head
  const In* k = static_cast<const In*>(p.k) + slot * kB * kHeadDim;  // [B][D]
  const In* v = static_cast<const In*>(p.v) + slot * kB * kHeadDim;  // [B][D]
  uint8_t* head = p.out + slot * p.head_bytes;
  const BlockEncoding enc{
      kFormatVersion,
      kB,
      kKBits,
      static_cast<uint16_t>(p.group),
      kVBits,
      static_cast<uint16_t>(p.k_outliers),
      static_cast<uint16_t>(p.v_outliers),
      static_cast<uint16_t>(p.u8_scales ? ScaleFormat::kU8 : ScaleFormat::kFp16)};
  const HeadLayout l = GetHeadLayout(enc, kHeadDim);
  QuantizeTensor<In, kKBits, kHeadDim, kB, true>(k, head, enc, l, sh);
  QuantizeTensor<In, kVBits, kHeadDim, kB, false>(v, head, enc, l, sh);
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
