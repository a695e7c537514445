// Block identity (design section 4): the 128-bit key of a KV block, chained
// over a sequence's blocks so that two prompts sharing a prefix share its
// blocks. Prefill and decode workers on different hosts must compute the same
// keys, so the hash (XXH3-128, seed 0) and the bytes it covers are specified
// in kvstore/README.md and pinned by tests/kvstore/block_key_test.cc.
//
//   const kernels::BlockEncoding enc = kernels::BlockEncoding::Quantized(2, 32, 32);
//   std::vector<BlockKey> keys = BlockKeyChain(tokens, model_id, enc);
//   // keys[b] names tokens [b*32, (b+1)*32); the last one may be partial.
//   std::string hex = keys[0].ToHex();  // 32 lowercase hex digits
#ifndef KVQ_KVSTORE_BLOCK_KEY_H_
#define KVQ_KVSTORE_BLOCK_KEY_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kernels/block_format.h"

namespace kvq::kvstore {

// A 128-bit block key. `hi` and `lo` are the high and low 64 bits of the
// XXH3-128 digest.
struct BlockKey {
  uint64_t hi = 0;
  uint64_t lo = 0;

  // 32 lowercase hex digits, `hi` first.
  std::string ToHex() const;
  // Parses ToHex()'s output; INVALID_ARGUMENT on anything else.
  static absl::StatusOr<BlockKey> FromHex(absl::string_view hex);
  // The 16-byte wire form (proto `bytes key`): `hi` then `lo`, each
  // big-endian, so the bytes printed as hex equal ToHex().
  std::string ToBytes() const;
  // INVALID_ARGUMENT unless `bytes` has exactly 16 bytes.
  static absl::StatusOr<BlockKey> FromBytes(absl::string_view bytes);

  friend bool operator==(const BlockKey& a, const BlockKey& b) {
    return a.hi == b.hi && a.lo == b.lo;
  }
  friend bool operator!=(const BlockKey& a, const BlockKey& b) { return !(a == b); }
  friend bool operator<(const BlockKey& a, const BlockKey& b) {
    return a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo;
  }
  template <typename H>
  friend H AbslHashValue(H h, const BlockKey& k) {
    return H::combine(std::move(h), k.hi, k.lo);
  }
};

// The key the first block of every sequence chains from:
// XXH3-128 of the 16 ASCII bytes "kvq.block_key.v1".
BlockKey ChainSeed();

// The key of the block holding `tokens` (1 to B token ids, fewer than B only
// for a sequence's last, partial block) after the block keyed `prev`, for the
// model fingerprint `model_id` and the block's encoding. Pure; never fails
// (callers validate the encoding and token counts).
BlockKey NextBlockKey(const BlockKey& prev, absl::Span<const int32_t> tokens,
                      uint64_t model_id, const kernels::BlockEncoding& encoding);

// The keys of all blocks of `tokens` cut into blocks of encoding.block_tokens,
// the last one partial when the length is not a multiple of B. Every block
// uses `encoding`; callers mixing fp16 and quantized blocks chain with
// NextBlockKey. Empty for no tokens or block_tokens == 0.
std::vector<BlockKey> BlockKeyChain(absl::Span<const int32_t> tokens, uint64_t model_id,
                                    const kernels::BlockEncoding& encoding);

}  // namespace kvq::kvstore

#endif  // KVQ_KVSTORE_BLOCK_KEY_H_
