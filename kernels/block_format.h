// The KV block format (design section 3): the one place that says how a block
// of B tokens of a sequence's KV cache is laid out in bytes. Usable from host
// C++ and CUDA (no STL in the layout functions).
//
// A block holds, for every layer, that layer's "part": for every KV head the
// keys and values of the block's B tokens. Parts are stored layer after layer,
// so a block can be built, streamed and checked one layer at a time:
//
//   block = part(layer 0) | part(layer 1) | ... | part(layer L-1)
//   part  = head(0) | head(1) | ... | head(H_kv - 1)
//
// Quantized head section (key bits kb, value bits vb, groups of G channels
// for values, nk key and nv value outliers), in order:
//   k_codes  [head_dim][B*kb/8]    u8   keys per channel: the B tokens of
//                                       channel c, token t at bits
//                                       [kb*(t%(8/kb)), +kb) of byte t/(8/kb)
//   k_scale  [head_dim]            S    per channel
//   k_zero   [head_dim]            S    per channel
//   v_codes  [B][head_dim*vb/8]    u8   values per token: channel c of token t
//                                       at bits [vb*(c%(8/vb)), +vb) of byte c/(8/vb)
//   v_scale  [B][head_dim/G]       S    per token per channel group
//   v_zero   [B][head_dim/G]       S
//   k_range  [3]                   fp16 only with u8 scales: base, zero step,
//   v_range  [3]                   fp16 scale step (ScaleFormat below)
//   k_out    [nk]                  fp16 key outliers' corrections (below)
//   v_out    [nv]                  fp16 value outliers' corrections
//   k_out_at [nk]                  I    position t*head_dim + c of each key
//   v_out_at [nv]                  I    (value) outlier in the [B][head_dim]
//                                       section, ascending (keys: or by
//                                       column, below)
// S is fp16 (ScaleFormat::kFp16) or u8 (ScaleFormat::kU8); I is u8 when
// B*head_dim <= 256, u16 when <= 65536, else u32 (little-endian). With no
// outliers and fp16 scales (a KIVI encoding) the layout is format 1's.
// fp16 head section:
//   k        [B][head_dim]         fp16 (rows past the block's token count
//   v        [B][head_dim]         fp16  are zero in a partial block)
// fp16 values are IEEE binary16 bit patterns stored little-endian.
//
// Outliers (design 3.2 extended, kernels/README.md "Format 2"): of each head
// section's B*head_dim keys, the nk farthest from their group's mean (ties:
// lower position first) are kept in fp16 as a correction to their code's
// value; they are left out of their group's min and max (a group of only
// outliers has scale 0, zero 0) and their codes are the clamped codes of the
// rest's scale and zero (0 where the scale is 0, else clamp(rne((x - zero) /
// scale), 0, 2^bits - 1) in fp32, x the fp16 input). The correction is
// delta = fp16(clamp(x - d, -65504, 65504)) with d = code * scale + zero (a
// multiply, then an add, in fp32), and an outlier dequantizes to d + delta:
// within half an fp16 ulp of |x - d| of x (exact when x - d is an fp16
// number). Values likewise with nv. Attention adds q * delta (keys) or
// p * delta (values) to the code's term: no kernel looks up an outlier's
// scale, zero or code, and a block whose code there is not the clamped one
// attends to d + delta all the same. (Version 2 stored x itself.)
//
// Key outliers by column (version 4): where KeyColumnsAllowed(B, head_dim)
// and the nk key outliers of a section lie in n_cols <= MaxKeyColumns(B, nk)
// channels (KIVI's keys: outliers come in channels), the quantizer stores
// them by channel in the same 2*nk bytes of k_out_at instead of by position:
//   marker   u16                   0xFFFF (never a position here)
//   n_cols   u16                   channels with outliers, >= 1
//   masks    [n_cols][B/8]     u8  column i's tokens: bit t (little-endian)
//                                  set when (t, channel i) is an outlier
//   channels [n_cols]          u8  ascending
//   (zero bytes to the end of k_out_at)
// and k_out holds the corrections column after column, tokens ascending. The
// same entries are outliers either way; kernels add each column's
// corrections as whole token vectors (16 tokens an instruction on AVX-512)
// instead of one row per outlier. A block that does not say so exactly (a
// column count that does not fit, a channel >= head_dim or out of order, an
// empty mask, other than nk bits set, nonzero padding) is refused by
// dequantize_layer; the kernels, which do not check, ignore every column
// when n_cols does not fit, a column whose channel is >= head_dim, and bits
// past the nk-th.
//
// ScaleFormat::kU8 (per head section, per tensor): base = min of the
// non-outlier values (0 if none), hi = their max; zero step
// zs = fp16((hi - base) / 255), scale step ss = fp16((hi - base) / (L * 255))
// with L = 2^bits - 1. A group with min mn and max mx stores
// zc = min(255, floor((mn - base) / zs)) (0 when zs == 0) and
// sc = min(255, ceil((mx - zero) / L / ss)) (0 when ss == 0), and is
// quantized and dequantized with zero = base + zc * zs, scale = sc * ss
// (fp32, a multiply then an add).
//
//   kvq::kernels::BlockEncoding enc = kvq::kernels::BlockEncoding::Quantized(2, 32, 32);
//   kvq::kernels::CacheShape shape{.n_layers = 32, .n_kv_heads = 8, .head_dim = 128};
//   if (absl::Status s = Validate(enc, shape); !s.ok()) ...
//   size_t bytes = BlockBytes(enc, shape);
#ifndef KVQ_KERNELS_BLOCK_FORMAT_H_
#define KVQ_KERNELS_BLOCK_FORMAT_H_

#include <cstddef>
#include <cstdint>

#ifndef __CUDACC__
#include "absl/status/status.h"
#endif

#if defined(__CUDACC__)
#define KVQ_HOST_DEVICE __host__ __device__
#else
#define KVQ_HOST_DEVICE
#endif

namespace kvq::kernels {

// Bumped whenever the byte layout above or its meaning changes; golden tests
// pin it. Version 2: separate key and value bits, outliers, u8 scales.
// Version 3: outliers stored as fp16 corrections to their code's value, not
// as their value (the kernels then need no scale, zero or code of theirs).
// Version 4: key outliers by column where they fit (above).
inline constexpr uint16_t kFormatVersion = 4;

// How the scales and zeros of a quantized block are stored.
enum class ScaleFormat : uint16_t {
  kFp16 = 0,  // fp16 scale and zero per group (KIVI)
  kU8 = 1,    // u8 codes against a per-head-section fp16 range (see above)
};

// How one block is encoded. bits == 16 means fp16 (then v_bits == 16, group,
// outliers and scales 0).
struct BlockEncoding {
  uint16_t version = kFormatVersion;
  uint16_t block_tokens = 32;  // B
  uint16_t bits = 16;          // key bits: 2, 4, 8, or 16 for fp16
  uint16_t group = 0;          // G: value channels per scale/zero (quantized only)
  uint16_t v_bits = 16;        // value bits: 2, 4, 8, or 16 for fp16
  uint16_t k_outliers = 0;     // nk: exact keys per head section of a block
  uint16_t v_outliers = 0;     // nv: exact values per head section of a block
  uint16_t scales = 0;         // ScaleFormat
  // Per-layer bits: with E = edge_layers > 0, layers l < E and l >= L - E
  // hold keys and values at edge_bits (the rest of the encoding the same);
  // ForLayer() gives each layer's own encoding. 0 and 0 for a block whose
  // layers are all alike.
  uint16_t edge_layers = 0;
  uint16_t edge_bits = 0;

  static constexpr BlockEncoding Fp16(int block_tokens) {
    return {kFormatVersion, static_cast<uint16_t>(block_tokens), 16, 0, 16, 0, 0, 0};
  }
  // A KIVI encoding: one bit width, no outliers, fp16 scales.
  static constexpr BlockEncoding Quantized(int bits, int block_tokens, int group) {
    return {kFormatVersion,
            static_cast<uint16_t>(block_tokens),
            static_cast<uint16_t>(bits),
            static_cast<uint16_t>(group),
            static_cast<uint16_t>(bits),
            0,
            0,
            0};
  }
  static constexpr BlockEncoding Mixed(int k_bits, int v_bits, int block_tokens,
                                       int group, int k_outliers, int v_outliers,
                                       ScaleFormat scales) {
    return {kFormatVersion,
            static_cast<uint16_t>(block_tokens),
            static_cast<uint16_t>(k_bits),
            static_cast<uint16_t>(group),
            static_cast<uint16_t>(v_bits),
            static_cast<uint16_t>(k_outliers),
            static_cast<uint16_t>(v_outliers),
            static_cast<uint16_t>(scales)};
  }
  KVQ_HOST_DEVICE constexpr bool is_fp16() const { return bits == 16; }
  // Quantized with format 1's layout: the encodings the optimized kernels
  // (SIMD, integer, CUDA) implement; others go to the reference.
  KVQ_HOST_DEVICE constexpr bool is_kivi() const {
    return bits != 16 && v_bits == bits && k_outliers == 0 && v_outliers == 0 &&
           scales == 0 && edge_layers == 0;
  }
  // The encoding of layer `layer` of a block of n_layers layers: this one
  // with edge_layers and edge_bits cleared and, in an edge layer, bits and
  // v_bits set to edge_bits. Kernels take only such per-layer encodings.
  KVQ_HOST_DEVICE constexpr BlockEncoding ForLayer(int layer, int n_layers) const {
    BlockEncoding e = *this;
    if (edge_layers > 0 && (layer < edge_layers || layer >= n_layers - edge_layers)) {
      e.bits = edge_bits;
      e.v_bits = edge_bits;
    }
    e.edge_layers = 0;
    e.edge_bits = 0;
    return e;
  }
  KVQ_HOST_DEVICE constexpr bool u8_scales() const {
    return scales == static_cast<uint16_t>(ScaleFormat::kU8);
  }
  friend constexpr bool operator==(const BlockEncoding& a, const BlockEncoding& b) {
    return a.version == b.version && a.block_tokens == b.block_tokens &&
           a.bits == b.bits && a.group == b.group && a.v_bits == b.v_bits &&
           a.k_outliers == b.k_outliers && a.v_outliers == b.v_outliers &&
           a.scales == b.scales && a.edge_layers == b.edge_layers &&
           a.edge_bits == b.edge_bits;
  }
  friend constexpr bool operator!=(const BlockEncoding& a, const BlockEncoding& b) {
    return !(a == b);
  }
};
static_assert(sizeof(BlockEncoding) == 20, "BlockEncoding is part of the wire format");

// The model-side shape of a cache.
struct CacheShape {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
};

// Byte offsets of the sections of one KV head inside a layer part.
struct HeadLayout {
  size_t k_codes, k_scale, k_zero, v_codes, v_scale, v_zero;  // quantized
  size_t k_range, v_range;                                    // u8 scales
  size_t k_out, v_out, k_out_at, v_out_at;                    // outliers
  size_t scale_bytes;  // 2 (fp16) or 1 (u8) per scale and per zero
  size_t index_bytes;  // 1, 2 or 4 per outlier position
  size_t k, v;         // fp16
  size_t head_bytes;
};

// Bytes of one outlier position for a section of `elements` = B*head_dim.
KVQ_HOST_DEVICE constexpr size_t OutlierIndexBytes(size_t elements) {
  return elements <= 256 ? 1 : elements <= 65536 ? 2 : 4;
}

KVQ_HOST_DEVICE constexpr HeadLayout GetHeadLayout(const BlockEncoding& enc,
                                                   int head_dim) {
  HeadLayout l{};
  const size_t B = enc.block_tokens;
  const size_t D = head_dim;
  if (enc.is_fp16()) {
    l.k = 0;
    l.v = B * D * 2;
    l.head_bytes = 2 * B * D * 2;
    return l;
  }
  const size_t groups = enc.group == 0 ? 0 : D / enc.group;
  const size_t s = enc.u8_scales() ? 1 : 2;
  l.scale_bytes = s;
  l.index_bytes = OutlierIndexBytes(B * D);
  l.k_codes = 0;
  l.k_scale = l.k_codes + D * (B * enc.bits / 8);
  l.k_zero = l.k_scale + D * s;
  l.v_codes = l.k_zero + D * s;
  l.v_scale = l.v_codes + B * (D * enc.v_bits / 8);
  l.v_zero = l.v_scale + B * groups * s;
  l.k_range = l.v_zero + B * groups * s;
  l.v_range = l.k_range + (enc.u8_scales() ? 6 : 0);
  l.k_out = l.v_range + (enc.u8_scales() ? 6 : 0);
  l.v_out = l.k_out + 2 * size_t{enc.k_outliers};
  l.k_out_at = l.v_out + 2 * size_t{enc.v_outliers};
  l.v_out_at = l.k_out_at + l.index_bytes * enc.k_outliers;
  l.head_bytes = l.v_out_at + l.index_bytes * enc.v_outliers;
  return l;
}

// Bytes of one layer's part of a block (all KV heads) of a per-layer
// encoding (edge_layers == 0; else use the overload with a layer).
KVQ_HOST_DEVICE constexpr size_t LayerBytes(const BlockEncoding& enc, int n_kv_heads,
                                            int head_dim) {
  return GetHeadLayout(enc, head_dim).head_bytes * static_cast<size_t>(n_kv_heads);
}

// Bytes of layer `layer`'s part of a block in `enc` (edge layers included).
KVQ_HOST_DEVICE constexpr size_t LayerBytes(const BlockEncoding& enc,
                                            const CacheShape& shape, int layer) {
  return LayerBytes(enc.ForLayer(layer, shape.n_layers), shape.n_kv_heads,
                    shape.head_dim);
}

// Byte offset of layer `layer`'s part inside a block.
KVQ_HOST_DEVICE constexpr size_t LayerOffset(const BlockEncoding& enc,
                                             const CacheShape& shape, int layer) {
  size_t at = 0;
  for (int l = 0; l < layer; ++l) at += LayerBytes(enc, shape, l);
  return at;
}

// Key outliers by column (see the top of this file).
inline constexpr uint16_t kKeyColumnsMarker = 0xFFFF;

// Whether a section of B tokens of head_dim channels may hold its key
// outliers by column: u16 positions of which 0xFFFF is none (B * head_dim
// < 65536), B a multiple of 8 up to 64 (a mask is B/8 bytes), channels that
// fit a byte.
KVQ_HOST_DEVICE constexpr bool KeyColumnsAllowed(int B, int head_dim) {
  return OutlierIndexBytes(static_cast<size_t>(B) * head_dim) == 2 &&
         static_cast<size_t>(B) * head_dim < 65536 && B % 8 == 0 && B <= 64 &&
         head_dim <= 256;
}

// The most columns nk key outliers' 2*nk index bytes hold (marker, count,
// B/8 mask bytes and a channel byte a column).
KVQ_HOST_DEVICE constexpr int MaxKeyColumns(int B, int nk) {
  return 2 * nk < 4 ? 0 : (2 * nk - 4) / (B / 8 + 1);
}

// A head section's key outliers by column, as read by ReadKeyColumns.
struct KeyColumns {
  int n_cols = 0;      // columns to use (0: none, a corrupt count)
  int mask_bytes = 0;  // B / 8
  const uint8_t* masks = nullptr;
  const uint8_t* channels = nullptr;
  // Column i's token mask (bit t: token t).
  KVQ_HOST_DEVICE uint64_t Mask(int i) const {
    uint64_t m = 0;
    for (int b = 0; b < mask_bytes; ++b)
      m |= static_cast<uint64_t>(masks[i * mask_bytes + b]) << (8 * b);
    return m;
  }
};

// Whether the key outliers of a quantized head section of B tokens with nk
// key outliers are stored by column, `at` its k_out_at bytes; if so, *cols
// says where (n_cols 0 when the stored count does not fit: a corrupt
// section).
KVQ_HOST_DEVICE inline bool ReadKeyColumns(const uint8_t* at, int B, int head_dim, int nk,
                                           KeyColumns* cols) {
  if (nk == 0 || !KeyColumnsAllowed(B, head_dim)) return false;
  if ((at[0] | at[1] << 8) != kKeyColumnsMarker) return false;
  const int n = at[2] | at[3] << 8;
  cols->n_cols = n <= MaxKeyColumns(B, nk) ? n : 0;
  cols->mask_bytes = B / 8;
  cols->masks = at + 4;
  cols->channels = at + 4 + static_cast<size_t>(cols->n_cols) * (B / 8);
  return true;
}

// Calls fn(j, t, c) for each key outlier of a section stored by column, in
// storage order (its correction is k_out's j-th), skipping a column whose
// channel is >= head_dim and stopping at the nk-th.
template <typename Fn>
KVQ_HOST_DEVICE inline void ForEachKeyColumnOutlier(const KeyColumns& cols, int head_dim,
                                                    int nk, Fn fn) {
  int j = 0;
  for (int i = 0; i < cols.n_cols && j < nk; ++i) {
    const int c = cols.channels[i];
    for (uint64_t m = cols.Mask(i); m != 0 && j < nk; m &= m - 1, ++j) {
#if defined(__CUDA_ARCH__)
      const int t = __ffsll(static_cast<long long>(m)) - 1;
#else
      const int t = __builtin_ctzll(m);
#endif
      if (c < head_dim) fn(j, t, c);
    }
  }
}

// Bytes of a whole block (all layers).
KVQ_HOST_DEVICE constexpr size_t BlockBytes(const BlockEncoding& enc,
                                            const CacheShape& shape) {
  return LayerOffset(enc, shape, shape.n_layers);
}

// Effective bits per cached element of a full block (design section 3.5),
// counting codes, scales, zeros, ranges and outliers (values and positions)
// of keys and values. For a whole sequence (sinks, residual and the partial
// tail in fp16) see model::EffectiveBits (model/kv_mode.h).
constexpr double BitsPerElement(const BlockEncoding& enc, int head_dim) {
  return 8.0 * GetHeadLayout(enc, head_dim).head_bytes /
         (2.0 * enc.block_tokens * head_dim);
}

// Limits Validate() enforces (they keep every byte count far from overflow).
inline constexpr int kMaxBlockTokens = 4096;
inline constexpr int kMaxLayers = 1024;
inline constexpr int kMaxKvHeads = 1024;
inline constexpr int kMaxHeadDim = 2048;

#ifndef __CUDACC__
// OK when `enc` and `shape` describe a block this version can hold, else
// INVALID_ARGUMENT naming the first offending field: version must be
// kFormatVersion; bits and v_bits in {2, 4, 8, 16}, both 16 or neither; B in [1,
// kMaxBlockTokens]; n_kv_heads in [1, kMaxKvHeads]; head_dim in [1, kMaxHeadDim];
// n_layers in [0, kMaxLayers] (0 is accepted so that a single layer part can be checked;
// whole-block callers that need layers check n_layers > 0 themselves).
// fp16: group, outliers and scales 0. Quantized: B*bits and head_dim*v_bits
// multiples of 8 (codes fill whole bytes), 1 <= G dividing head_dim, outliers
// at most B*head_dim each, scales a ScaleFormat; edge_layers in [0,
// kMaxLayers], 0 with edge_bits 0 or, quantized only, with edge_bits 2, 4 or
// 8 (the edge layers' encoding valid too).
absl::Status Validate(const BlockEncoding& enc, const CacheShape& shape);
#endif

}  // namespace kvq::kernels

#endif  // KVQ_KERNELS_BLOCK_FORMAT_H_
