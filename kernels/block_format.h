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
// Quantized head section (bits b, groups of G channels for values), in order:
//   k_codes  [head_dim][B*b/8]     u8   keys per channel: the B tokens of
//                                       channel c, token t at bits
//                                       [b*(t%(8/b)), +b) of byte t/(8/b)
//   k_scale  [head_dim]            fp16 per channel
//   k_zero   [head_dim]            fp16 per channel
//   v_codes  [B][head_dim*b/8]     u8   values per token: channel c of token t
//                                       at bits [b*(c%(8/b)), +b) of byte c/(8/b)
//   v_scale  [B][head_dim/G]       fp16 per token per channel group
//   v_zero   [B][head_dim/G]       fp16
// fp16 head section:
//   k        [B][head_dim]         fp16 (rows past the block's token count
//   v        [B][head_dim]         fp16  are zero in a partial block)
// fp16 values are IEEE binary16 bit patterns stored little-endian.
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

// Bumped whenever the byte layout above changes; golden tests pin it.
inline constexpr uint16_t kFormatVersion = 1;

// How one block is encoded. bits == 16 means fp16 (group unused, 0).
struct BlockEncoding {
  uint16_t version = kFormatVersion;
  uint16_t block_tokens = 32;  // B
  uint16_t bits = 16;          // 2, 4, 8, or 16 for fp16
  uint16_t group = 0;          // G: value channels per scale/zero (quantized only)

  static constexpr BlockEncoding Fp16(int block_tokens) {
    return {kFormatVersion, static_cast<uint16_t>(block_tokens), 16, 0};
  }
  static constexpr BlockEncoding Quantized(int bits, int block_tokens, int group) {
    return {kFormatVersion, static_cast<uint16_t>(block_tokens),
            static_cast<uint16_t>(bits), static_cast<uint16_t>(group)};
  }
  KVQ_HOST_DEVICE constexpr bool is_fp16() const { return bits == 16; }
  friend constexpr bool operator==(const BlockEncoding& a, const BlockEncoding& b) {
    return a.version == b.version && a.block_tokens == b.block_tokens &&
           a.bits == b.bits && a.group == b.group;
  }
  friend constexpr bool operator!=(const BlockEncoding& a, const BlockEncoding& b) {
    return !(a == b);
  }
};
static_assert(sizeof(BlockEncoding) == 8, "BlockEncoding is part of the wire format");

// The model-side shape of a cache.
struct CacheShape {
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
};

// Byte offsets of the sections of one KV head inside a layer part.
struct HeadLayout {
  size_t k_codes, k_scale, k_zero, v_codes, v_scale, v_zero;  // quantized
  size_t k, v;                                                // fp16
  size_t head_bytes;
};

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
  l.k_codes = 0;
  l.k_scale = l.k_codes + D * (B * enc.bits / 8);
  l.k_zero = l.k_scale + D * 2;
  l.v_codes = l.k_zero + D * 2;
  l.v_scale = l.v_codes + B * (D * enc.bits / 8);
  l.v_zero = l.v_scale + B * groups * 2;
  l.head_bytes = l.v_zero + B * groups * 2;
  return l;
}

// Bytes of one layer's part of a block (all KV heads).
KVQ_HOST_DEVICE constexpr size_t LayerBytes(const BlockEncoding& enc, int n_kv_heads,
                                            int head_dim) {
  return GetHeadLayout(enc, head_dim).head_bytes * static_cast<size_t>(n_kv_heads);
}

// Bytes of a whole block (all layers).
KVQ_HOST_DEVICE constexpr size_t BlockBytes(const BlockEncoding& enc,
                                            const CacheShape& shape) {
  return LayerBytes(enc, shape.n_kv_heads, shape.head_dim) *
         static_cast<size_t>(shape.n_layers);
}

// Effective bits per cached element of a full block (design section 3.5),
// counting codes, scales and zeros of keys and values.
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
// kFormatVersion; bits in {2, 4, 8, 16}; B in [1, kMaxBlockTokens];
// n_kv_heads in [1, kMaxKvHeads]; head_dim in [1, kMaxHeadDim]; n_layers in
// [0, kMaxLayers] (0 is accepted so that a single layer part can be checked;
// whole-block callers that need layers check n_layers > 0 themselves).
// fp16: group == 0. Quantized: B*bits and head_dim*bits multiples of 8 (codes
// fill whole bytes) and 1 <= G dividing head_dim.
absl::Status Validate(const BlockEncoding& enc, const CacheShape& shape);
#endif

}  // namespace kvq::kernels

#endif  // KVQ_KERNELS_BLOCK_FORMAT_H_
