// The `--kv MODE` string: how a sequence's KV cache is held.
//
//   fp32                      reference, never quantized
//   fp16                      fp16 blocks of 32 tokens
//   kivi2 | kivi4 | kivi8     KIVI blocks, B=32, G=min(32, head_dim), R=128
//   kivi:bits=2,block=32,group=8,residual=32   any field may be left out
//
//   KVQ_ASSIGN_OR_RETURN(kvq::model::KvMode mode, kvq::model::ParseKvMode("kivi2"));
//   KVQ_ASSIGN_OR_RETURN(mode, mode.Resolve(config.HeadDim()));  // fills G
//   double bits = EffectiveBits(mode, {.n_layers = 5, .n_kv_heads = 4, .head_dim = 8},
//                               /*n_tokens=*/212);
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
  int bits = 16;       // 2, 4, 8 for kivi; 16 for fp16; 32 for fp32
  int block = 32;      // B
  int group = 0;       // G; 0 = min(32, head_dim), filled in by Resolve
  int residual = 128;  // R, a multiple of B (0 quantizes full blocks at once)

  // Fills the default group for `head_dim` and checks the mode against it:
  // INVALID_ARGUMENT when G does not divide head_dim or the block encoding is
  // invalid (kernels::Validate).
  absl::StatusOr<KvMode> Resolve(int head_dim) const;

  // Encoding of the blocks this mode quantizes (kivi) or stores (fp16).
  kernels::BlockEncoding QuantizedEncoding() const {
    return kernels::BlockEncoding::Quantized(bits, block, group);
  }
  kernels::BlockEncoding Fp16Encoding() const {
    return kernels::BlockEncoding::Fp16(block);
  }

  // A pure KIVI mode: keys and values at the same bit width, no outliers, no
  // sinks. Today every kivi mode is; the modes beyond KIVI (issue 15) are not.
  bool is_pure_kivi() const { return kind == Kind::kKivi; }

  // The canonical full form ("fp32", "fp16",
  // "kivi:bits=2,block=32,group=8,residual=128").
  std::string ToString() const;
};

// INVALID_ARGUMENT with the accepted forms for anything else: unknown names,
// unknown or repeated keys, non-numeric values, bits not in {2, 4, 8}, block
// not in [1, 4096], residual negative or not a multiple of block.
absl::StatusOr<KvMode> ParseKvMode(absl::string_view text);

// Effective bits per cached element of one sequence whose cache holds
// n_tokens tokens in `mode` (a resolved mode: group filled in). With
//   elements   = 2 (K and V) * n_tokens * n_layers * n_kv_heads * head_dim,
//   total bits = every bit the cache holds for them:
//     fp32: 32 * elements; fp16: 16 * elements;
//     kivi: q = max(0, n_tokens - R) / B blocks (integer division: the blocks
//       the residual rule of design 3.3 has quantized) at 8 * BlockBytes
//       each (codes, scales and zeros of keys and values, all layers; the
//       format of kernels/block_format.h), plus the n_tokens - q * B other
//       tokens (the fp16 residual and the partial last block) at 16 bits an
//       element,
// EffectiveBits = total bits / elements (0 when n_tokens <= 0). It equals
// KvCacheStats::BitsPerElement() of a real cache holding those tokens.
double EffectiveBits(const KvMode& mode, const kernels::CacheShape& shape, long n_tokens);

// The same over several sequences (a text, one cache per line): their caches'
// total bits over their total elements, i.e. the token-weighted mean.
double EffectiveBits(const KvMode& mode, const kernels::CacheShape& shape,
                     absl::Span<const long> sequence_tokens);

}  // namespace kvq::model

#endif  // KVQ_MODEL_KV_MODE_H_
