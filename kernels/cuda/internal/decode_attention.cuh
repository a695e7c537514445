// Device code of CUDA decode attention (design 3.4) over a cache of quantized
// blocks followed by fp16 blocks, flash-decoding style.
//
// Launch shape (kernels/cuda/internal/decode_attention_launch.cuh):
//   grid  (n_splits, n_kv_heads * head_chunks, batch), kAttentionWarps warps.
// A CTA owns one KV head of one sequence, up to kMaxHeadsPerCta of the query
// heads that read it (so each KV head is read once per query-head chunk), and
// one split: a range of blocks_per_split blocks. Its warps take the range's
// blocks in turn; per block a warp
//   1. copies the KV head's section of the block into its shared-memory
//      staging buffer with 16-byte loads (fp16 key rows padded by
//      kKeyRowPad bytes so lanes reading different rows use different banks);
//   2. computes scores with one lane per token (B = 16: two lanes per token,
//      each over half of the channels, combined with a shuffle), keys
//      dequantized as code * scale + zero (fp16 scales and zeros, or u8 ones
//      against the section's range); key outliers (format 2) add
//      q_c * (x - code * scale - zero) to their token's score, one outlier
//      (or, keys stored by column, one column) per lane at a time, through
//      shared-memory atomics;
//   3. updates a running (max, sum, output) per query head: online softmax
//      in the log2 domain;
//   4. accumulates p_t * v_t with each lane owning head_dim/32 consecutive
//      channels (head_dim 8: lanes 0-7, one channel each); value outliers
//      add p_t * (x - code * scale - zero) to their channel, likewise.
// Keys and values have their own bit widths (kKBits, kVBits).
// The warps' partial states are merged in shared memory; with one split the
// CTA writes the normalised output, otherwise (max, sum, output) go to the
// partial buffers and MergeSplitsKernel combines them.
#ifndef KVQ_KERNELS_CUDA_INTERNAL_DECODE_ATTENTION_CUH_
#define KVQ_KERNELS_CUDA_INTERNAL_DECODE_ATTENTION_CUH_

#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/block_format.h"
#include "kernels/cuda/internal/params.h"

namespace kvq::kernels::cuda_internal {

inline constexpr unsigned kFullMask = 0xffffffffu;

// Declares the kernel's dynamic shared memory (a macro so that
// tests/kernels/cuda_emulator.h can run this device code on the CPU).
#ifndef KVQ_CUDA_DYNAMIC_SMEM
#define KVQ_CUDA_DYNAMIC_SMEM(name) extern __shared__ __align__(16) uint8_t name[]
#endif

// Compile-time shape of one instantiation.
template <int kHeadDim, int kB>
struct AttentionTraits {
  static_assert(kB == 16 || kB == 32, "one or two lanes per token");
  static_assert(kHeadDim % 8 == 0 && (kHeadDim <= 32 || kHeadDim % 32 == 0), "");
  static constexpr int kLanesPerToken = 32 / kB;
  // Key channels each lane dots for its token.
  static constexpr int kKeyChannels = kHeadDim / kLanesPerToken;
  // Value channels each lane owns, and how many lanes own some.
  static constexpr int kValueChannels = kHeadDim >= 32 ? kHeadDim / 32 : 1;
  static constexpr int kValueLanes = kHeadDim / kValueChannels;
  static constexpr int kFp16KeyRow = kHeadDim * 2 + kKeyRowPad;  // staged row bytes
};

__device__ __forceinline__ float WarpMax(float x) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, o));
  return x;
}
__device__ __forceinline__ float WarpSum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(kFullMask, x, o);
  return x;
}

// exp2(a - b) that is 0 when a is -inf (an empty state).
__device__ __forceinline__ float Exp2Diff(float a, float b) {
  return a == -INFINITY ? 0.0f : exp2f(a - b);
}

// Copies n units of type U (uint4: 16 bytes, ... uint8_t) from global to
// shared memory, one warp, eight loads in flight per lane.
template <typename U>
__device__ __forceinline__ void WarpCopyUnits(uint8_t* dst, const uint8_t* src, int n,
                                              int lane) {
  const U* s = reinterpret_cast<const U*>(src);
  U* d = reinterpret_cast<U*>(dst);
  for (int base = 0; base < n; base += 8 * 32) {
    U r[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int idx = base + i * 32 + lane;
      if (idx < n) r[i] = __ldg(s + idx);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int idx = base + i * 32 + lane;
      if (idx < n) d[idx] = r[i];
    }
  }
}

// Copies a quantized head section of `bytes` bytes to 16-byte aligned shared
// memory in the widest units that src and bytes allow: 16 bytes for KIVI
// sections (multiples of 16), narrower for format 2 sections whose outliers
// or u8 scales make their size (and so the next KV head's offset) odd.
__device__ __forceinline__ void WarpCopySection(uint8_t* dst, const uint8_t* src,
                                                size_t bytes, int lane) {
  const size_t a = static_cast<size_t>(reinterpret_cast<uintptr_t>(src)) | bytes;
  const int n = static_cast<int>(bytes);
  if (a % 16 == 0) {
    WarpCopyUnits<uint4>(dst, src, n / 16, lane);
  } else if (a % 8 == 0) {
    WarpCopyUnits<uint2>(dst, src, n / 8, lane);
  } else if (a % 4 == 0) {
    WarpCopyUnits<unsigned int>(dst, src, n / 4, lane);
  } else if (a % 2 == 0) {
    WarpCopyUnits<unsigned short>(dst, src, n / 2, lane);
  } else {
    WarpCopyUnits<unsigned char>(dst, src, n, lane);
  }
}

// Copies an fp16 head section: K rows into padded rows, then V unpadded.
template <int kHeadDim, int kB>
__device__ __forceinline__ void WarpCopyFp16(uint8_t* dst, const uint8_t* src, int lane) {
  using T = AttentionTraits<kHeadDim, kB>;
  constexpr int kRow16 = kHeadDim * 2 / 16;  // 16-byte chunks per row
  constexpr int kRows16 = kB * kRow16;       // chunks of K (and of V)
  const uint4* s = reinterpret_cast<const uint4*>(src);
#pragma unroll
  for (int base = 0; base < 2 * kRows16; base += 8 * 32) {
    uint4 r[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int idx = base + i * 32 + lane;
      if (idx < 2 * kRows16) r[i] = __ldg(s + idx);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int idx = base + i * 32 + lane;
      if (idx < kRows16) {
        const int row = idx / kRow16, col = idx % kRow16;
        *reinterpret_cast<uint4*>(dst + row * T::kFp16KeyRow + col * 16) = r[i];
      } else if (idx < 2 * kRows16) {
        *reinterpret_cast<uint4*>(dst + kB * T::kFp16KeyRow + (idx - kRows16) * 16) =
            r[i];
      }
    }
  }
}

// The two fp16 values of a 32-bit word (low half first), as floats. Value
// operations only: no type punning a compiler could reorder around.
__device__ __forceinline__ void HalvesOf(uint32_t w, float* out) {
  out[0] = __half2float(__ushort_as_half(static_cast<unsigned short>(w & 0xffffu)));
  out[1] = __half2float(__ushort_as_half(static_cast<unsigned short>(w >> 16)));
}

// The fp16 value at p (2-byte aligned) as a float.
__device__ __forceinline__ float HalfAt(const uint8_t* p) {
  return __half2float(__ushort_as_half(*reinterpret_cast<const unsigned short*>(p)));
}

// The little-endian outlier position of `bytes` (1, 2 or 4) bytes at p (any
// alignment).
__device__ __forceinline__ uint32_t OutlierPosition(const uint8_t* p, int bytes) {
  uint32_t v = p[0];
  if (bytes > 1) v |= static_cast<uint32_t>(p[1]) << 8;
  if (bytes > 2)
    v |= static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
  return v;
}

// Set bits of a key-outlier column's token mask, and the lowest one's index
// (m != 0). Host versions for tests/kernels/cuda_emulator.h.
__device__ __forceinline__ int PopCount64(uint64_t m) {
#ifdef __CUDA_ARCH__
  return __popcll(m);
#else
  return __builtin_popcountll(m);
#endif
}
__device__ __forceinline__ int LowestBit64(uint64_t m) {
#ifdef __CUDA_ARCH__
  return __ffsll(static_cast<long long>(m)) - 1;
#else
  return __builtin_ctzll(m);
#endif
}

// The scales and zeros of the keys or the values of a staged quantized head
// section: fp16 per group, or (u8 scales) u8 codes against the section's
// range (base, zero step, scale step), widened as the reference does
// (zero = zc * zs + base, scale = sc * ss, no fused multiply-add).
struct StagedScales {
  const uint8_t* scale;
  const uint8_t* zero;
  bool u8;
  float base, zs, ss;

  __device__ __forceinline__ StagedScales(const uint8_t* stage, size_t scale_at,
                                          size_t zero_at, size_t range_at, bool is_u8)
      : scale(stage + scale_at), zero(stage + zero_at), u8(is_u8) {
    base = is_u8 ? HalfAt(stage + range_at) : 0.0f;
    zs = is_u8 ? HalfAt(stage + range_at + 2) : 0.0f;
    ss = is_u8 ? HalfAt(stage + range_at + 4) : 0.0f;
  }
  __device__ __forceinline__ float Scale(int g) const {
    return u8 ? __fmul_rn(static_cast<float>(scale[g]), ss) : HalfAt(scale + 2 * g);
  }
  __device__ __forceinline__ float Zero(int g) const {
    return u8 ? __fadd_rn(__fmul_rn(static_cast<float>(zero[g]), zs), base)
              : HalfAt(zero + 2 * g);
  }
};

// Loads n fp16 values (n in {1, 2, 4, 8}, p aligned to 2n bytes) as floats
// with one load of 2n bytes.
template <int kN>
__device__ __forceinline__ void LoadHalves(const uint8_t* p, float* out) {
  if constexpr (kN == 1) {
    out[0] = __half2float(__ushort_as_half(*reinterpret_cast<const unsigned short*>(p)));
  } else if constexpr (kN == 2) {
    HalvesOf(*reinterpret_cast<const uint32_t*>(p), out);
  } else if constexpr (kN == 4) {
    const uint2 w = *reinterpret_cast<const uint2*>(p);
    HalvesOf(w.x, out);
    HalvesOf(w.y, out + 2);
  } else {
    static_assert(kN == 8, "1, 2, 4 or 8 halves");
    const uint4 w = *reinterpret_cast<const uint4*>(p);
    HalvesOf(w.x, out);
    HalvesOf(w.y, out + 2);
    HalvesOf(w.z, out + 4);
    HalvesOf(w.w, out + 6);
  }
}

// Per-warp running softmax state for the CTA's query heads.
template <int kHeadDim>
struct WarpState {
  static constexpr int kC = kHeadDim >= 32 ? kHeadDim / 32 : 1;
  float m[kMaxHeadsPerCta];
  float l[kMaxHeadsPerCta];
  float acc[kMaxHeadsPerCta][kC];
};

// Online-softmax update with this block's scores (log2 domain, -inf for
// masked tokens; lane t < B holds token t), leaving p_t in p_s[h][t].
template <int kB, int kHeadDim>
__device__ __forceinline__ void SoftmaxUpdate(const float (&s)[kMaxHeadsPerCta],
                                              int n_local, int lane,
                                              WarpState<kHeadDim>& st, float* p_s) {
#pragma unroll
  for (int h = 0; h < kMaxHeadsPerCta; ++h) {
    if (h >= n_local) break;
    const float m_new = fmaxf(st.m[h], WarpMax(s[h]));
    const float p = Exp2Diff(s[h], m_new);
    const float alpha = Exp2Diff(st.m[h], m_new);
    const float sum = WarpSum(lane < kB ? p : 0.0f);
    st.l[h] = st.l[h] * alpha + sum;
    st.m[h] = m_new;
#pragma unroll
    for (int j = 0; j < WarpState<kHeadDim>::kC; ++j) st.acc[h][j] *= alpha;
    if (lane < kB) p_s[h * kB + lane] = p;
  }
}

// acc[h] += sum_t p_s[h][t] * v_t over the block's first n_valid tokens,
// values given by the functor value(t, float* v) for this lane's channels.
template <int kB, int kHeadDim, typename ValueFn>
__device__ __forceinline__ void AccumulateValues(const float* p_s, int n_local,
                                                 int n_valid, int lane,
                                                 WarpState<kHeadDim>& st,
                                                 const ValueFn& value) {
  constexpr int kC = WarpState<kHeadDim>::kC;
  if (lane * kC >= kHeadDim) return;
  for (int t = 0; t < n_valid; ++t) {
    float v[kC];
    value(t, v);
#pragma unroll
    for (int h = 0; h < kMaxHeadsPerCta; ++h) {
      if (h >= n_local) break;
      const float p = p_s[h * kB + t];
#pragma unroll
      for (int j = 0; j < kC; ++j) st.acc[h][j] = fmaf(p, v[j], st.acc[h][j]);
    }
  }
}

// Score corrections of a block's key outliers: for each outlier (token t,
// channel c, correction delta = x - d, block_format.h) and query head h,
// fix[h][t] += q[h][c] * delta. fix: the warp's [kMaxHeadsPerCta][kB]
// floats, zeroed here. Stored by position: one outlier per lane; positions
// outside the section (a corrupt part) are ignored. Stored by column: one
// column per lane, its first correction after those of the columns before
// it; as the reference (ForEachKeyColumnOutlier), no column when the count
// does not fit, a column whose channel is >= kHeadDim skipped (its
// corrections still counted), bits past the n_out-th ignored.
template <int kHeadDim, int kB>
__device__ __forceinline__ void KeyOutlierFixes(const uint8_t* stage, const HeadLayout& l,
                                                int n_out, const float* q_s, int n_local,
                                                int lane, float* fix) {
  for (int i = lane; i < kMaxHeadsPerCta * kB; i += 32) fix[i] = 0.0f;
  __syncwarp();
  KeyColumns cols;
  if (ReadKeyColumns(stage + l.k_out_at, kB, kHeadDim, n_out, &cols)) {
    int first = 0, counted = 0;  // corrections of columns [0, counted)
    for (int i = lane; i < cols.n_cols; i += 32) {
      for (; counted < i; ++counted) first += PopCount64(cols.Mask(counted));
      if (first >= n_out) break;
      const int c = cols.channels[i];
      if (c >= kHeadDim) continue;
      int j = first;
      for (uint64_t m = cols.Mask(i); m != 0 && j < n_out; m &= m - 1, ++j) {
        const int t = LowestBit64(m);
        const float delta = HalfAt(stage + l.k_out + 2 * j);
        for (int h = 0; h < n_local; ++h) {
          atomicAdd(&fix[h * kB + t], q_s[h * kHeadDim + c] * delta);
        }
      }
    }
    __syncwarp();
    return;
  }
  for (int j = lane; j < n_out; j += 32) {
    const uint32_t pos = OutlierPosition(stage + l.k_out_at + l.index_bytes * j,
                                         static_cast<int>(l.index_bytes));
    if (pos >= static_cast<uint32_t>(kB * kHeadDim)) continue;
    const int t = static_cast<int>(pos / kHeadDim), c = static_cast<int>(pos % kHeadDim);
    const float delta = HalfAt(stage + l.k_out + 2 * j);
    for (int h = 0; h < n_local; ++h) {
      atomicAdd(&fix[h * kB + t], q_s[h * kHeadDim + c] * delta);
    }
  }
  __syncwarp();
}

// Value corrections of a block's value outliers, added to the lanes'
// accumulators: acc[h][c] += p_t * delta for each outlier (token t, channel
// c, correction delta = x - d). fix: the warp's [kMaxHeadsPerCta][kHeadDim]
// floats.
template <int kHeadDim, int kB>
__device__ __forceinline__ void ValueOutlierFixes(const uint8_t* stage,
                                                  const HeadLayout& l, int n_out,
                                                  const float* p_s, int n_local, int lane,
                                                  WarpState<kHeadDim>& st, float* fix) {
  constexpr int kC = WarpState<kHeadDim>::kC;
  for (int i = lane; i < kMaxHeadsPerCta * kHeadDim; i += 32) fix[i] = 0.0f;
  __syncwarp();
  for (int j = lane; j < n_out; j += 32) {
    const uint32_t pos = OutlierPosition(stage + l.v_out_at + l.index_bytes * j,
                                         static_cast<int>(l.index_bytes));
    if (pos >= static_cast<uint32_t>(kB * kHeadDim)) continue;
    const int t = static_cast<int>(pos / kHeadDim), c = static_cast<int>(pos % kHeadDim);
    const float delta = HalfAt(stage + l.v_out + 2 * j);
    for (int h = 0; h < n_local; ++h) {
      atomicAdd(&fix[h * kHeadDim + c], p_s[h * kB + t] * delta);
    }
  }
  __syncwarp();
  if (lane * kC >= kHeadDim) return;
#pragma unroll
  for (int h = 0; h < kMaxHeadsPerCta; ++h) {
    if (h >= n_local) break;
#pragma unroll
    for (int j = 0; j < kC; ++j) st.acc[h][j] += fix[h * kHeadDim + lane * kC + j];
  }
}

// One quantized block (staged in `stage`, format 2 encoding `enc` with kKBits
// keys and kVBits values): scores, softmax update, values. value_fix: the
// warp's value-outlier buffer (used when enc has value outliers).
template <int kKBits, int kVBits, int kHeadDim, int kB>
__device__ __forceinline__ void AttendQuantizedBlock(
    const uint8_t* stage, const BlockEncoding& enc, const HeadLayout& l, const float* q_s,
    int n_local, float scale_log2, int lane, WarpState<kHeadDim>& st, float* p_s,
    float* value_fix) {
  using T = AttentionTraits<kHeadDim, kB>;
  constexpr int kCodesPerWord = 32 / kKBits;
  constexpr int kKeyRowWords = kB * kKBits / 32;
  constexpr uint32_t kKMask = (1u << kKBits) - 1;
  constexpr uint32_t kVMask = (1u << kVBits) - 1;
  const bool u8 = enc.u8_scales();
  const int t = lane % kB;
  const int c_begin = (lane / kB) * T::kKeyChannels;
  const uint32_t* k_codes = reinterpret_cast<const uint32_t*>(stage + l.k_codes);
  const StagedScales ks(stage, l.k_scale, l.k_zero, l.k_range, u8);
  const int word = t / kCodesPerWord, shift = (t % kCodesPerWord) * kKBits;

  float dot[kMaxHeadsPerCta] = {};
#pragma unroll 4
  for (int c = c_begin; c < c_begin + T::kKeyChannels; ++c) {
    const uint32_t code = (k_codes[c * kKeyRowWords + word] >> shift) & kKMask;
    const float k = fmaf(static_cast<float>(code), ks.Scale(c), ks.Zero(c));
#pragma unroll
    for (int h = 0; h < kMaxHeadsPerCta; ++h) {
      if (h < n_local) dot[h] = fmaf(q_s[h * kHeadDim + c], k, dot[h]);
    }
  }
  float s[kMaxHeadsPerCta];
#pragma unroll
  for (int h = 0; h < kMaxHeadsPerCta; ++h) {
    if (T::kLanesPerToken == 2) dot[h] += __shfl_xor_sync(kFullMask, dot[h], 16);
    s[h] = dot[h] * scale_log2;
  }
  if (enc.k_outliers > 0) {  // p_s holds the score fixes until SoftmaxUpdate
    KeyOutlierFixes<kHeadDim, kB>(stage, l, enc.k_outliers, q_s, n_local, lane, p_s);
#pragma unroll
    for (int h = 0; h < kMaxHeadsPerCta; ++h) {
      if (h < n_local) s[h] = fmaf(p_s[h * kB + t], scale_log2, s[h]);
    }
    __syncwarp();
  }
  SoftmaxUpdate<kB, kHeadDim>(s, n_local, lane, st, p_s);
  __syncwarp();

  constexpr int kC = WarpState<kHeadDim>::kC;
  const int group = enc.group;
  const int c0 = lane * kC;
  const int groups = kHeadDim / group;
  const int g0 = c0 / group;
  const bool one_group = (c0 + kC - 1) / group == g0;
  const uint32_t* v_codes = reinterpret_cast<const uint32_t*>(stage + l.v_codes);
  const StagedScales vs(stage, l.v_scale, l.v_zero, l.v_range, u8);
  AccumulateValues<kB, kHeadDim>(p_s, n_local, kB, lane, st, [&](int t, float* v) {
    const int bit = (t * kHeadDim + c0) * kVBits;  // never straddles a word
    const uint32_t codes = v_codes[bit / 32] >> (bit % 32);
    if (one_group) {
      const float sc = vs.Scale(t * groups + g0);
      const float z = vs.Zero(t * groups + g0);
#pragma unroll
      for (int j = 0; j < kC; ++j) {
        v[j] = fmaf(static_cast<float>((codes >> (j * kVBits)) & kVMask), sc, z);
      }
    } else {
#pragma unroll
      for (int j = 0; j < kC; ++j) {
        const int gi = t * groups + (c0 + j) / group;
        v[j] = fmaf(static_cast<float>((codes >> (j * kVBits)) & kVMask), vs.Scale(gi),
                    vs.Zero(gi));
      }
    }
  });
  if (enc.v_outliers > 0) {
    __syncwarp();
    ValueOutlierFixes<kHeadDim, kB>(stage, l, enc.v_outliers, p_s, n_local, lane, st,
                                    value_fix);
  }
}

// One fp16 block (staged by WarpCopyFp16) holding n_valid tokens.
template <int kHeadDim, int kB>
__device__ __forceinline__ void AttendFp16Block(const uint8_t* stage, int n_valid,
                                                const float* q_s, int n_local,
                                                float scale_log2, int lane,
                                                WarpState<kHeadDim>& st, float* p_s) {
  using T = AttentionTraits<kHeadDim, kB>;
  constexpr int kChunk = T::kKeyChannels >= 8 ? 8 : T::kKeyChannels;
  const int t = lane % kB;
  const int c_begin = (lane / kB) * T::kKeyChannels;
  const uint8_t* row = stage + t * T::kFp16KeyRow;
  float dot[kMaxHeadsPerCta] = {};
#pragma unroll 2
  for (int c = c_begin; c < c_begin + T::kKeyChannels; c += kChunk) {
    float k[kChunk];
    LoadHalves<kChunk>(row + 2 * c, k);
#pragma unroll
    for (int h = 0; h < kMaxHeadsPerCta; ++h) {
      if (h >= n_local) break;
#pragma unroll
      for (int i = 0; i < kChunk; ++i)
        dot[h] = fmaf(q_s[h * kHeadDim + c + i], k[i], dot[h]);
    }
  }
  float s[kMaxHeadsPerCta];
#pragma unroll
  for (int h = 0; h < kMaxHeadsPerCta; ++h) {
    if (T::kLanesPerToken == 2) dot[h] += __shfl_xor_sync(kFullMask, dot[h], 16);
    s[h] = t < n_valid ? dot[h] * scale_log2 : -INFINITY;
  }
  SoftmaxUpdate<kB, kHeadDim>(s, n_local, lane, st, p_s);
  __syncwarp();

  constexpr int kC = WarpState<kHeadDim>::kC;
  const uint8_t* values = stage + kB * T::kFp16KeyRow + lane * kC * 2;
  AccumulateValues<kB, kHeadDim>(p_s, n_local, n_valid, lane, st, [&](int t, float* v) {
    LoadHalves<kC>(values + t * kHeadDim * 2, v);
  });
}

// kKBits == kVBits == 16: caches of fp16 blocks only. Shared memory:
// AttentionSmemBytes (params.h) with p.smem_per_warp staging bytes per warp.
template <int kKBits, int kVBits, int kHeadDim, int kB>
__global__ void __launch_bounds__(kAttentionWarps * 32)
    DecodeAttentionKernel(const DecodeParams p) {
  static_assert((kKBits == 16) == (kVBits == 16), "fp16 is both or neither");
  KVQ_CUDA_DYNAMIC_SMEM(smem);
  float* q_s = reinterpret_cast<float*>(smem);      // [kMaxHeadsPerCta][D]
  float* p_all = q_s + kMaxHeadsPerCta * kHeadDim;  // [warps][kMaxHeadsPerCta][B]
  uint8_t* stage_all = smem + AttentionSmemHeader(kHeadDim, kB);

  const int split = blockIdx.x;
  const int kv_head = blockIdx.y / p.head_chunks;
  const int chunk = blockIdx.y % p.head_chunks;
  const int b = blockIdx.z;
  const SequenceDesc seq = p.seqs[b];
  if (split >= seq.n_splits) return;
  const int group_size = p.n_heads / p.n_kv_heads;
  const int head0 = kv_head * group_size + chunk * kMaxHeadsPerCta;
  const int n_local = min(kMaxHeadsPerCta, group_size - chunk * kMaxHeadsPerCta);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  for (int i = threadIdx.x; i < n_local * kHeadDim; i += blockDim.x) {
    q_s[i] = seq.q[static_cast<size_t>(head0) * kHeadDim + i];
  }
  __syncthreads();

  WarpState<kHeadDim> st;
#pragma unroll
  for (int h = 0; h < kMaxHeadsPerCta; ++h) {
    st.m[h] = -INFINITY;
    st.l[h] = 0.0f;
#pragma unroll
    for (int j = 0; j < WarpState<kHeadDim>::kC; ++j) st.acc[h][j] = 0.0f;
  }
  float* p_s = p_all + warp * kMaxHeadsPerCta * kB;
  uint8_t* stage = stage_all + warp * p.smem_per_warp;
  // The quantized blocks' (per-layer) encoding.
  const BlockEncoding enc{
      kFormatVersion,
      kB,
      static_cast<uint16_t>(kKBits),
      static_cast<uint16_t>(kKBits == 16 ? 0 : p.group),
      static_cast<uint16_t>(kVBits),
      static_cast<uint16_t>(p.k_outliers),
      static_cast<uint16_t>(p.v_outliers),
      static_cast<uint16_t>(p.u8_scales ? ScaleFormat::kU8 : ScaleFormat::kFp16)};
  const HeadLayout l = GetHeadLayout(enc, kHeadDim);
  float* value_fix = reinterpret_cast<float*>(stage + AlignUp16(p.quantized_head_bytes));

  const int n_blocks = seq.n_quantized + seq.n_fp16;
  const int begin = split * p.blocks_per_split;
  const int end = min(n_blocks, begin + p.blocks_per_split);
  for (int blk = begin + warp; blk < end; blk += kAttentionWarps) {
    const uint8_t* part = seq.blocks[blk];
    if constexpr (kKBits != 16) {
      if (blk < seq.n_quantized) {
        WarpCopySection(stage, part + kv_head * p.quantized_head_bytes,
                        p.quantized_head_bytes, lane);
        __syncwarp();
        AttendQuantizedBlock<kKBits, kVBits, kHeadDim, kB>(
            stage, enc, l, q_s, n_local, p.scale_log2, lane, st, p_s, value_fix);
        __syncwarp();
        continue;
      }
    }
    const int n_valid = min(kB, seq.n_tokens - blk * kB);
    WarpCopyFp16<kHeadDim, kB>(stage, part + kv_head * p.fp16_head_bytes, lane);
    __syncwarp();
    AttendFp16Block<kHeadDim, kB>(stage, n_valid, q_s, n_local, p.scale_log2, lane, st,
                                  p_s);
    __syncwarp();
  }

  // Merge the warps' states: [warp][head][D + 2] floats over the staging area.
  __syncthreads();
  float* merge = reinterpret_cast<float*>(stage_all);
  constexpr int kC = WarpState<kHeadDim>::kC;
#pragma unroll
  for (int h = 0; h < kMaxHeadsPerCta; ++h) {  // unrolled: st stays in registers
    if (h >= n_local) break;
    float* dst = merge + (warp * kMaxHeadsPerCta + h) * (kHeadDim + 2);
    if (lane * kC < kHeadDim) {
#pragma unroll
      for (int j = 0; j < kC; ++j) dst[lane * kC + j] = st.acc[h][j];
    }
    if (lane == 0) {
      dst[kHeadDim] = st.m[h];
      dst[kHeadDim + 1] = st.l[h];
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < n_local * kHeadDim; i += blockDim.x) {
    const int h = i / kHeadDim, c = i % kHeadDim;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kAttentionWarps; ++w) {
      m = fmaxf(m, merge[(w * kMaxHeadsPerCta + h) * (kHeadDim + 2) + kHeadDim]);
    }
    float sum = 0.0f, o = 0.0f;
#pragma unroll
    for (int w = 0; w < kAttentionWarps; ++w) {
      const float* src = merge + (w * kMaxHeadsPerCta + h) * (kHeadDim + 2);
      const float f = Exp2Diff(src[kHeadDim], m);
      sum += src[kHeadDim + 1] * f;
      o += src[c] * f;
    }
    const int head = head0 + h;
    if (seq.n_splits == 1) {
      seq.out[static_cast<size_t>(head) * kHeadDim + c] = o / sum;
    } else {
      const size_t slot =
          (static_cast<size_t>(b) * p.n_heads + head) * p.n_splits + split;
      p.partial_o[slot * kHeadDim + c] = o;
      if (c == 0) {
        p.partial_ml[2 * slot] = m;
        p.partial_ml[2 * slot + 1] = sum;
      }
    }
  }
}

// Combines the splits of every (sequence, query head) that used more than
// one: grid (n_heads, batch), head_dim threads.
template <int kHeadDim>
__global__ void __launch_bounds__(kHeadDim) MergeSplitsKernel(const DecodeParams p) {
  const int head = blockIdx.x, b = blockIdx.y, c = threadIdx.x;
  const SequenceDesc seq = p.seqs[b];
  if (seq.n_splits == 1) return;
  const size_t slot0 = (static_cast<size_t>(b) * p.n_heads + head) * p.n_splits;
  float m = -INFINITY;
  for (int s = 0; s < seq.n_splits; ++s) m = fmaxf(m, p.partial_ml[2 * (slot0 + s)]);
  float sum = 0.0f, o = 0.0f;
  for (int s = 0; s < seq.n_splits; ++s) {
    const float f = Exp2Diff(p.partial_ml[2 * (slot0 + s)], m);
    sum += p.partial_ml[2 * (slot0 + s) + 1] * f;
    o += p.partial_o[(slot0 + s) * kHeadDim + c] * f;
  }
  seq.out[static_cast<size_t>(head) * kHeadDim + c] = o / sum;
}

}  // namespace kvq::kernels::cuda_internal

#endif  // KVQ_KERNELS_CUDA_INTERNAL_DECODE_ATTENTION_CUH_
