// The fp16 and KIVI KV caches: a sequence's cache as a list of blocks in the
// block format (kernels/block_format.h), attended by the kernels
// (kvq::kernels::Best().decode_attention).
//
// Tokens enter as fp16 (design 3.1). In a kivi mode, when a token's K/V is
// appended to a layer, every block b with layer_tokens >= (b+1)*B + R is
// quantized before that token's attention (design 3.3); the first
// mode.sink_blocks() blocks (attention sinks) are never quantized, and
// quantized blocks precede the other fp16 blocks. Between forward passes every block
// holds the same encoding in all layers, so the serving layer can export it:
//
//   for (int b = 0; b < cache.n_blocks(); ++b)
//     Push(cache.block_encoding(b), cache.block_tokens(b), cache.LayerPart(b, l));
//
// (while a prefill streams layer l from PrefillOptions::on_layer, use
// layer_blocks(l), layer_block_encoding(b, l) and layer_block_tokens(b, l)),
//
// and a decode worker can rebuild the cache from the fetched blocks:
//
//   KVQ_ASSIGN_OR_RETURN(auto cache, BlockKvCache::FromBlocks(mode, shape, blocks));
#ifndef KVQ_MODEL_BLOCK_KV_CACHE_H_
#define KVQ_MODEL_BLOCK_KV_CACHE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kernels/block_format.h"
#include "model/kv_cache.h"

namespace kvq::model {

class BlockKvCache final : public KvCache {
 public:
  // `mode` is fp16 or kivi; it is Resolve()d against shape.head_dim.
  // INVALID_ARGUMENT for fp32 or an invalid mode/shape.
  static absl::StatusOr<std::unique_ptr<BlockKvCache>> Create(const KvMode& mode,
                                                              const KvCacheShape& shape);

  // One block as stored or transferred: all layers' parts concatenated
  // (BlockBytes(encoding, shape) bytes), holding n_tokens tokens.
  struct ImportedBlock {
    kernels::BlockEncoding encoding;
    int n_tokens = 0;
    absl::string_view bytes;
  };
  // Rebuilds a cache from ordered blocks. INVALID_ARGUMENT unless each
  // encoding is the mode's fp16 or quantized encoding, each size matches,
  // quantized blocks come right after the sink blocks and are full, and
  // every block but the last is full. The residual rule resumes with the next Append.
  static absl::StatusOr<std::unique_ptr<BlockKvCache>> FromBlocks(
      const KvMode& mode, const KvCacheShape& shape,
      absl::Span<const ImportedBlock> blocks);

  std::unique_ptr<BlockKvCache> Clone() const;

  // ---- KvCache ----
  const KvMode& mode() const override { return mode_; }
  const KvCacheShape& shape() const override { return shape_; }
  int n_tokens() const override;
  int layer_tokens(int layer) const override { return layer_tokens_[layer]; }
  absl::Status Append(int layer, int n, const float* k, const float* v) override;
  absl::Status Read(int layer, float* k, float* v) const override;
  absl::Status Attend(int layer, const float* q, float* out) const override;
  KvCacheStats Stats() const override;
  bool KernelView(int layer, kernels::SequenceCache* view,
                  kernels::AttentionParams* params) const override;

  // ---- Blocks (valid between forward passes) ----
  // Blocks holding the n_tokens() tokens; the last may be partial.
  int n_blocks() const;
  kernels::BlockEncoding block_encoding(int b) const;
  int block_tokens(int b) const;

  // ---- One layer's view, also valid inside PrefillOptions::on_layer (when
  // layer `layer` is final and later layers still hold the old tokens) ----
  int layer_blocks(int layer) const { return LayerBlocks(layer); }
  kernels::BlockEncoding layer_block_encoding(int b, int layer) const;
  int layer_block_tokens(int b, int layer) const;
  // Layer `layer`'s part of block b: LayerBytes(block_encoding(b), ...) bytes.
  absl::Span<const uint8_t> LayerPart(int b, int layer) const;
  // The whole block, layer parts in order (block_format.h).
  std::string ExportBlock(int b) const;

 private:
  struct Part {
    std::vector<uint8_t> bytes;
    bool quantized = false;
  };

  BlockKvCache(const KvMode& mode, const KvCacheShape& shape);
  absl::Status QuantizeBlock(int b, int layer);
  int LayerBlocks(int layer) const;  // blocks layer `layer` uses

  // Constant after construction.
  KvMode mode_;
  KvCacheShape shape_;
  kernels::BlockEncoding fp16_enc_, quant_enc_;  // quant_enc_: the block's
  size_t fp16_part_bytes_;
  std::vector<kernels::BlockEncoding> layer_enc_;  // [layer] quant_enc_.ForLayer
  std::vector<size_t> quant_part_bytes_;           // [layer]

  std::vector<std::vector<Part>> blocks_;  // [block][layer]
  std::vector<int> layer_tokens_;          // [layer]
  std::vector<int> layer_quantized_;       // [layer] quantized blocks (after sinks)
};

}  // namespace kvq::model

#endif  // KVQ_MODEL_BLOCK_KV_CACHE_H_
