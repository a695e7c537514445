// The `--kv MODE` string: how a sequence's KV cache is held.
//
//   fp32                      reference, never quantized
//   fp16                      fp16 blocks of 32 tokens
//   kivi2 | kivi4 | kivi8     KIVI blocks, B=32, G=min(32, head_dim), R=128
//   kivi:KEY=VALUE,...        any key may be left out; keys:
//     bits=2|4|8              key and value bits (default 2)
//     kbits=2|4|8             key bits (overrides bits)
//     vbits=2|4|8             value bits (overrides bits)
//     block=N                 B, tokens per block, 1..4096 (default 32)
//     group=G                 value channels per scale/zero (default
//                             min(32, head_dim)); must divide head_dim
//     residual=R              newest tokens kept fp16, a multiple of B (128)
//     outliers=F              fraction in [0, 0.5] of each block's keys and
//                             of its values kept exact (fp16 + position)
//     koutliers=F|voutliers=F the same for keys or values alone
//     scales=fp16|u8          scale/zero encoding (kernels/block_format.h)
//     sinks=S                 first S tokens kept fp16 (attention sinks);
//                             rounded up to whole blocks
//     edge_layers=E,edge_bits=b  the first and last E layers' keys and
//                             values at b bits (2, 4, 8); both or neither
//   e.g. kivi:bits=2,block=32,group=8,residual=32
//        kivi:kbits=4,vbits=2,outliers=0.02,sinks=32,scales=u8
//
//   KVQ_ASSIGN_OR_RETURN(kvq::model::KvMode mode, kvq::model::ParseKvMode("kivi2"));
//   KVQ_ASSIGN_OR_RETURN(mode, mode.Resolve(config.HeadDim()));  // fills G
//   double bits = kvq::model::EffectiveBits(mode, shape, n_tokens);
#ifndef KVQ_MODEL_KV_MODE_H_
#define KVQ_MODEL_KV_MODE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kernels/block_format.h"

namespace kvq::model {

struct KvMode {
  enum class Kind { kFp32, kFp16, kKivi };
  Kind kind = Kind::kFp16;
  int bits = 16;          // key bits (and value bits unless v_bits): 2, 4, 8 for
                          // kivi; 16 for fp16; 32 for fp32
  int v_bits = 0;         // value bits 2, 4, 8; 0 = bits
  int block = 32;         // B
  int group = 0;          // G; 0 = min(32, head_dim), filled in by Resolve
  int residual = 128;     // R, a multiple of B (0 quantizes full blocks at once)
  double k_outliers = 0;  // fraction of a block's keys kept in fp16 (block_format.h)
  double v_outliers = 0;  // fraction of a block's values kept in fp16
  kernels::ScaleFormat scales = kernels::ScaleFormat::kFp16;
  int sinks = 0;        // first tokens kept fp16, a multiple of B
  int edge_layers = 0;  // first and last layers at edge_bits (0: none)
  int edge_bits = 0;    // 2, 4, 8 when edge_layers > 0

  // Filled by Resolve from the fractions: outliers per KV head per block,
  // round(fraction * B * head_dim).
  int k_outlier_count = 0;
  int v_outlier_count = 0;

  // Fills the default group and the outlier counts for `head_dim` and checks
  // the mode against it: INVALID_ARGUMENT when G does not divide head_dim or
  // the block encoding is invalid (kernels::Validate).
  absl::StatusOr<KvMode> Resolve(int head_dim) const;

  int value_bits() const { return v_bits == 0 ? bits : v_bits; }
  int sink_blocks() const { return sinks / block; }
  // A KIVI mode (one bit width, no outliers, fp16 scales, no sinks), or not.
  bool IsPureKivi() const {
    return kind == Kind::kKivi && value_bits() == bits && k_outliers == 0 &&
           v_outliers == 0 && scales == kernels::ScaleFormat::kFp16 && sinks == 0 &&
           edge_layers == 0;
  }

  // Encoding of the blocks this mode quantizes (kivi; Resolve()d first for
  // the outlier counts) or stores (fp16).
  // A block's encoding: with edge layers, each layer's is
  // QuantizedEncoding().ForLayer(layer, n_layers).
  kernels::BlockEncoding QuantizedEncoding() const {
    kernels::BlockEncoding e = kernels::BlockEncoding::Mixed(
        bits, value_bits(), block, group, k_outlier_count, v_outlier_count, scales);
    e.edge_layers = static_cast<uint16_t>(edge_layers);
    e.edge_bits = static_cast<uint16_t>(edge_bits);
    return e;
  }
  kernels::BlockEncoding Fp16Encoding() const {
    return kernels::BlockEncoding::Fp16(block);
  }

  // The canonical full form ("fp32", "fp16",
  // "kivi:bits=2,block=32,group=8,residual=128"; non-KIVI fields follow in
  // the order kbits/vbits (instead of bits when they differ), outliers (or
  // koutliers, voutliers), scales, sinks, edge_layers + edge_bits, each only
  // when not the default).
  std::string ToString() const;
};

// INVALID_ARGUMENT with the accepted forms for anything else: unknown names,
// unknown or repeated keys, non-numeric values, bits not in {2, 4, 8}, block
// not in [1, 4096], residual negative or not a multiple of block, outlier
// fractions outside [0, 0.5], scales not fp16 or u8, sinks negative,
// edge_layers without edge_bits (or the reverse), edge_bits not in {2, 4, 8}.
absl::StatusOr<KvMode> ParseKvMode(absl::string_view text);

// Effective bits per cached element of one sequence of n_tokens tokens
// (design 3.5): codes, scales, zeros, scale ranges, outlier values and
// positions of the quantized blocks, 16 bits for the sink blocks, the fp16
// residual and the partial last block; 32 for fp32. `mode` must be
// Resolve()d for shape.head_dim; shape.n_layers (>= 1) matters with edge
// layers, n_kv_heads cancels out. 0 when n_tokens <= 0. Equals the bits of a
// BlockKvCache holding n_tokens tokens (KvCacheStats::BitsPerElement()).
double EffectiveBits(const KvMode& mode, const kernels::CacheShape& shape, int n_tokens);

// Token-weighted over several sequences (e.g. the lines of `kvq eval ppl`,
// each holding its length - 1 tokens at the end): sum of stored bits over sum
// of elements. 0 when no tokens.
double EffectiveBits(const KvMode& mode, const kernels::CacheShape& shape,
                     absl::Span<const int> n_tokens);

}  // namespace kvq::model

#endif  // KVQ_MODEL_KV_MODE_H_
