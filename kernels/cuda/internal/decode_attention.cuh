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
//      dequantized as code * scale + zero;
//   3. updates a running (max, sum, output) per query head: online softmax
//      in the log2 domain;
//   4. accumulates p_t * v_t with each lane owning head_dim/32 consecutive
//      channels (head_dim 8: lanes 0-7, one channel each).
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

// Compile-time shape of one instantiation. kBits == 16: fp16 blocks only.
template <int kBits, int kHeadDim, int kB>
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
  static constexpr int kFp16Staged = kB * kFp16KeyRow + kB * kHeadDim * 2;
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

// Copies n16 16-byte chunks from global to shared memory, one warp, eight
// loads in flight per lane.
__device__ __forceinline__ void WarpCopy16(uint8_t* dst, const uint8_t* src, int n16,
                                           int lane) {
  const uint4* s = reinterpret_cast<const uint4*>(src);
  uint4* d = reinterpret_cast<uint4*>(dst);
  for (int base = 0; base < n16; base += 8 * 32) {
    uint4 r[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int idx = base + i * 32 + lane;
      if (idx < n16) r[i] = __ldg(s + idx);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int idx = base + i * 32 + lane;
      if (idx < n16) d[idx] = r[i];
    }
  }
}

// Copies an fp16 head section: K rows into padded rows, then V unpadded.
template <int kHeadDim, int kB>
__device__ __forceinline__ void WarpCopyFp16(uint8_t* dst, const uint8_t* src, int lane) {
  using T = AttentionTraits<16, kHeadDim, kB>;
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

// One quantized block (staged in `stage`): scores, softmax update, values.
template <int kBits, int kHeadDim, int kB>
__device__ __forceinline__ void AttendQuantizedBlock(
    const uint8_t* stage, const HeadLayout& l, int group, const float* q_s, int n_local,
    float scale_log2, int lane, WarpState<kHeadDim>& st, float* p_s) {
  using T = AttentionTraits<kBits, kHeadDim, kB>;
  constexpr int kCodesPerWord = 32 / kBits;
  constexpr int kKeyRowWords = kB * kBits / 32;
  constexpr uint32_t kMask = (1u << kBits) - 1;
  const int t = lane % kB;
  const int c_begin = (lane / kB) * T::kKeyChannels;
  const uint32_t* k_codes = reinterpret_cast<const uint32_t*>(stage + l.k_codes);
  const __half* k_scale = reinterpret_cast<const __half*>(stage + l.k_scale);
  const __half* k_zero = reinterpret_cast<const __half*>(stage + l.k_zero);
  const int word = t / kCodesPerWord, shift = (t % kCodesPerWord) * kBits;

  float dot[kMaxHeadsPerCta] = {};
#pragma unroll 4
  for (int c = c_begin; c < c_begin + T::kKeyChannels; ++c) {
    const uint32_t code = (k_codes[c * kKeyRowWords + word] >> shift) & kMask;
    const float k =
        fmaf(static_cast<float>(code), __half2float(k_scale[c]), __half2float(k_zero[c]));
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
  SoftmaxUpdate<kB, kHeadDim>(s, n_local, lane, st, p_s);
  __syncwarp();

  constexpr int kC = WarpState<kHeadDim>::kC;
  const int c0 = lane * kC;
  const int groups = kHeadDim / group;
  const int g0 = c0 / group;
  const bool one_group = (c0 + kC - 1) / group == g0;
  const uint32_t* v_codes = reinterpret_cast<const uint32_t*>(stage + l.v_codes);
  const __half* v_scale = reinterpret_cast<const __half*>(stage + l.v_scale);
  const __half* v_zero = reinterpret_cast<const __half*>(stage + l.v_zero);
  AccumulateValues<kB, kHeadDim>(p_s, n_local, kB, lane, st, [&](int t, float* v) {
    const int bit = (t * kHeadDim + c0) * kBits;  // never straddles a word
    const uint32_t codes = v_codes[bit / 32] >> (bit % 32);
    if (one_group) {
      const float sc = __half2float(v_scale[t * groups + g0]);
      const float z = __half2float(v_zero[t * groups + g0]);
#pragma unroll
      for (int j = 0; j < kC; ++j) {
        v[j] = fmaf(static_cast<float>((codes >> (j * kBits)) & kMask), sc, z);
      }
    } else {
#pragma unroll
      for (int j = 0; j < kC; ++j) {
        const int gi = t * groups + (c0 + j) / group;
        v[j] = fmaf(static_cast<float>((codes >> (j * kBits)) & kMask),
                    __half2float(v_scale[gi]), __half2float(v_zero[gi]));
      }
    }
  });
}

// One fp16 block (staged by WarpCopyFp16) holding n_valid tokens.
template <int kHeadDim, int kB>
__device__ __forceinline__ void AttendFp16Block(const uint8_t* stage, int n_valid,
                                                const float* q_s, int n_local,
                                                float scale_log2, int lane,
                                                WarpState<kHeadDim>& st, float* p_s) {
  using T = AttentionTraits<16, kHeadDim, kB>;
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

// Bytes of dynamic shared memory before the staging buffers.
template <int kHeadDim, int kB>
__host__ __device__ constexpr size_t AttentionSmemHeader() {
  return sizeof(float) *
         (kMaxHeadsPerCta * kHeadDim + kAttentionWarps * kMaxHeadsPerCta * kB);
}
// Bytes of the merge area that reuses the staging buffers.
template <int kHeadDim>
__host__ __device__ constexpr size_t AttentionSmemMerge() {
  return sizeof(float) * kAttentionWarps * kMaxHeadsPerCta * (kHeadDim + 2);
}

template <int kBits, int kHeadDim, int kB>
__global__ void __launch_bounds__(kAttentionWarps * 32)
    DecodeAttentionKernel(const DecodeParams p) {
  KVQ_CUDA_DYNAMIC_SMEM(smem);
  float* q_s = reinterpret_cast<float*>(smem);      // [kMaxHeadsPerCta][D]
  float* p_all = q_s + kMaxHeadsPerCta * kHeadDim;  // [warps][kMaxHeadsPerCta][B]
  uint8_t* stage_all = smem + AttentionSmemHeader<kHeadDim, kB>();

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
  // A KIVI encoding (the host refuses the others): value bits = key bits.
  const BlockEncoding enc{kFormatVersion,
                          kB,
                          static_cast<uint16_t>(kBits),
                          static_cast<uint16_t>(kBits == 16 ? 0 : p.group),
                          static_cast<uint16_t>(kBits),
                          0,
                          0,
                          0};
  const HeadLayout l = GetHeadLayout(enc, kHeadDim);

  const int n_blocks = seq.n_quantized + seq.n_fp16;
  const int begin = split * p.blocks_per_split;
  const int end = min(n_blocks, begin + p.blocks_per_split);
  for (int blk = begin + warp; blk < end; blk += kAttentionWarps) {
    const uint8_t* part = seq.blocks[blk];
    if constexpr (kBits != 16) {
      if (blk < seq.n_quantized) {
        WarpCopy16(stage, part + kv_head * p.quantized_head_bytes,
                   static_cast<int>(p.quantized_head_bytes / 16), lane);
        __syncwarp();
        AttendQuantizedBlock<kBits, kHeadDim, kB>(stage, l, p.group, q_s, n_local,
                                                  p.scale_log2, lane, st, p_s);
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
