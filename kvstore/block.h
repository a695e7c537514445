// A stored KV block: its key, its metadata and its immutable bytes (the layout
// of kernels/block_format.h, opaque to the store). Shared by the engine, the
// KvStore service and its client.
//
//   BlockMeta meta{.encoding = enc, .model_id = id, .n_layers = 5,
//                  .n_kv_heads = 4, .head_dim = 8, .token_count = 32};
//   KVQ_RETURN_IF_ERROR(ValidateMeta(meta));
//   meta.checksum = BlockChecksum(bytes);
#ifndef KVQ_KVSTORE_BLOCK_H_
#define KVQ_KVSTORE_BLOCK_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "kernels/block_format.h"
#include "kvstore/block_key.h"

namespace kvq::kvstore {

// What the store knows about a block besides its bytes.
struct BlockMeta {
  kernels::BlockEncoding encoding;  // format version, B, bits, G
  uint64_t model_id = 0;            // XXH3-64 model fingerprint (design section 4)
  int32_t n_layers = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t token_count = 0;  // 1..B; fewer than B only for a partial last block
  uint64_t checksum = 0;    // XXH3-64 (seed 0) of the block's bytes

  kernels::CacheShape shape() const { return {n_layers, n_kv_heads, head_dim}; }
  // Bytes of layer `layer`'s part, where it starts in the block, and the
  // whole block's bytes, per kernels/block_format.h (layers differ only with
  // edge layers). Meaningful only after ValidateMeta succeeded.
  size_t layer_bytes(int layer) const {
    return kernels::LayerBytes(encoding, shape(), layer);
  }
  size_t layer_offset(int layer) const {
    return kernels::LayerOffset(encoding, shape(), layer);
  }
  size_t block_bytes() const { return kernels::BlockBytes(encoding, shape()); }
};

// Largest block the store accepts (bytes); bounds what a peer can make the
// store allocate for one block.
inline constexpr size_t kMaxBlockBytes = size_t{1} << 30;
// Largest n_layers, n_kv_heads and head_dim accepted.
inline constexpr int32_t kMaxLayers = 1024;
inline constexpr int32_t kMaxKvHeads = 1024;
inline constexpr int32_t kMaxHeadDim = 4096;

// INVALID_ARGUMENT unless the encoding is one this build speaks
// (kernels::Validate: known version, bits, B, G), the shape is positive and
// within the limits above, token_count is in [1, B], and the block's size is
// at most kMaxBlockBytes.
absl::Status ValidateMeta(const BlockMeta& meta);

// XXH3-64 (seed 0) of `bytes`: the block checksum.
uint64_t BlockChecksum(absl::string_view bytes);

// DATA_LOSS unless every fp16 number of the block (an fp16 block's keys and
// values; a quantized block's fp16 scales and zeros, scale ranges and outlier
// values) is finite and every outlier position lies inside its head section
// (block_format.h): a block that
// passed its checksum can still hold NaN or Inf written by a faulty or
// hostile writer, and attention over it would fail or poison the output.
// `bytes` must be meta.block_bytes() long (ValidateMeta succeeded).
absl::Status CheckFiniteValues(const BlockMeta& meta, absl::string_view bytes);

// A committed block. The bytes are shared and never modified, so readers hold
// them without copying and without the store's lock.
struct Block {
  BlockKey key;
  BlockMeta meta;
  std::shared_ptr<const std::string> bytes;
};

}  // namespace kvq::kvstore

#endif  // KVQ_KVSTORE_BLOCK_H_
