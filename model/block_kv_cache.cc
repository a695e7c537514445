#include "model/block_kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "kernels/fp16.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"

namespace kvq::model {
namespace {

using kernels::BlockEncoding;
using kernels::FloatToHalf;
using kernels::HalfToFloat;

absl::Status CheckFitsHalf(const float* x, size_t n, const char* what) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i]) || std::fabs(x[i]) >= 65520.0f) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "KV cache: %s value %g at %d is not finite in fp16", what, x[i], i));
    }
  }
  return absl::OkStatus();
}

}  // namespace

BlockKvCache::BlockKvCache(const KvMode& mode, const KvCacheShape& shape)
    : mode_(mode),
      shape_(shape),
      fp16_enc_(mode.Fp16Encoding()),
      quant_enc_(mode.kind == KvMode::Kind::kKivi ? mode.QuantizedEncoding()
                                                  : mode.Fp16Encoding()),
      fp16_part_bytes_(kernels::LayerBytes(fp16_enc_, shape.n_kv_heads, shape.head_dim)),
      layer_tokens_(shape.n_layers, 0),
      layer_quantized_(shape.n_layers, 0) {
  for (int l = 0; l < shape.n_layers; ++l) {
    layer_enc_.push_back(quant_enc_.ForLayer(l, shape.n_layers));
    quant_part_bytes_.push_back(
        kernels::LayerBytes(layer_enc_.back(), shape.n_kv_heads, shape.head_dim));
  }
}

absl::StatusOr<std::unique_ptr<BlockKvCache>> BlockKvCache::Create(
    const KvMode& mode, const KvCacheShape& shape) {
  if (mode.kind == KvMode::Kind::kFp32) {
    return absl::InvalidArgumentError("BlockKvCache holds fp16 or kivi modes, not fp32");
  }
  if (shape.n_layers < 1 || shape.n_kv_heads < 1 || shape.head_dim < 1 ||
      shape.n_heads < 1 || shape.n_heads % shape.n_kv_heads != 0) {
    return absl::InvalidArgumentError("KV cache: bad shape");
  }
  KVQ_ASSIGN_OR_RETURN(KvMode resolved, mode.Resolve(shape.head_dim));
  kernels::CacheShape cs{shape.n_layers, shape.n_kv_heads, shape.head_dim};
  KVQ_RETURN_IF_ERROR(kernels::Validate(resolved.Fp16Encoding(), cs));
  return std::unique_ptr<BlockKvCache>(new BlockKvCache(resolved, shape));
}

absl::StatusOr<std::unique_ptr<BlockKvCache>> BlockKvCache::FromBlocks(
    const KvMode& mode, const KvCacheShape& shape,
    absl::Span<const ImportedBlock> blocks) {
  KVQ_ASSIGN_OR_RETURN(std::unique_ptr<BlockKvCache> cache, Create(mode, shape));
  const kernels::CacheShape cs{shape.n_layers, shape.n_kv_heads, shape.head_dim};
  const int B = cache->mode_.block;
  const bool kivi = cache->mode_.kind == KvMode::Kind::kKivi;
  int total = 0, quantized = 0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const ImportedBlock& blk = blocks[b];
    const bool is_quant = kivi && blk.encoding == cache->quant_enc_;
    if (!is_quant && blk.encoding != cache->fp16_enc_) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "block %d: encoding (version %d, B %d, bits %d, G %d) is not this cache's "
          "(%s)",
          b, blk.encoding.version, blk.encoding.block_tokens, blk.encoding.bits,
          blk.encoding.group, cache->mode_.ToString()));
    }
    if (blk.bytes.size() != kernels::BlockBytes(blk.encoding, cs)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("block %d: %d bytes, its encoding needs %d", b,
                          blk.bytes.size(), kernels::BlockBytes(blk.encoding, cs)));
    }
    if (blk.n_tokens < 1 || blk.n_tokens > B ||
        (b + 1 < blocks.size() && blk.n_tokens != B) || (is_quant && blk.n_tokens != B)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "block %d: %d tokens; every block but the last (and every quantized block) "
          "holds %d",
          b, blk.n_tokens, B));
    }
    if (is_quant && cache->mode_.sink_blocks() + quantized != static_cast<int>(b)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "block %d: a quantized block among the %d sink blocks or after an fp16 block",
          b, cache->mode_.sink_blocks()));
    }
    quantized += is_quant;
    total += blk.n_tokens;
    std::vector<Part> parts(shape.n_layers);
    for (int l = 0; l < shape.n_layers; ++l) {
      const size_t part = kernels::LayerBytes(blk.encoding, cs, l);
      const auto* p = reinterpret_cast<const uint8_t*>(blk.bytes.data()) +
                      kernels::LayerOffset(blk.encoding, cs, l);
      parts[l].bytes.assign(p, p + part);
      parts[l].quantized = is_quant;
    }
    cache->blocks_.push_back(std::move(parts));
  }
  std::fill(cache->layer_tokens_.begin(), cache->layer_tokens_.end(), total);
  std::fill(cache->layer_quantized_.begin(), cache->layer_quantized_.end(), quantized);
  return cache;
}

std::unique_ptr<BlockKvCache> BlockKvCache::Clone() const {
  return std::unique_ptr<BlockKvCache>(new BlockKvCache(*this));
}

int BlockKvCache::n_tokens() const {
  return *std::min_element(layer_tokens_.begin(), layer_tokens_.end());
}

int BlockKvCache::LayerBlocks(int layer) const {
  return (layer_tokens_[layer] + mode_.block - 1) / mode_.block;
}

absl::Status BlockKvCache::Append(int layer, int n, const float* k, const float* v) {
  if (layer < 0 || layer >= shape_.n_layers || n < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("KV cache: bad append (layer %d, %d tokens)", layer, n));
  }
  const int D = shape_.head_dim, H = shape_.n_kv_heads, B = mode_.block;
  const size_t count = size_t(n) * H * D;
  KVQ_RETURN_IF_ERROR(CheckFitsHalf(k, count, "key"));
  KVQ_RETURN_IF_ERROR(CheckFitsHalf(v, count, "value"));
  const kernels::HeadLayout hl = kernels::GetHeadLayout(fp16_enc_, D);
  for (int i = 0; i < n; ++i) {
    const int pos = layer_tokens_[layer];
    const int b = pos / B, t = pos % B;
    while (static_cast<int>(blocks_.size()) <= b) {
      std::vector<Part> parts(shape_.n_layers);
      for (Part& p : parts) p.bytes.assign(fp16_part_bytes_, 0);
      blocks_.push_back(std::move(parts));
    }
    uint8_t* part = blocks_[b][layer].bytes.data();
    for (int h = 0; h < H; ++h) {
      auto* kd = reinterpret_cast<uint16_t*>(part + h * hl.head_bytes + hl.k) + t * D;
      auto* vd = reinterpret_cast<uint16_t*>(part + h * hl.head_bytes + hl.v) + t * D;
      const float* ks = k + (size_t(i) * H + h) * D;
      const float* vs = v + (size_t(i) * H + h) * D;
      for (int d = 0; d < D; ++d) {
        kd[d] = FloatToHalf(ks[d]);
        vd[d] = FloatToHalf(vs[d]);
      }
    }
    ++layer_tokens_[layer];
  }
  // The residual rule (design 3.3), once for the tokens just appended.
  if (mode_.kind == KvMode::Kind::kKivi) {
    const int sinks = mode_.sink_blocks();
    while ((sinks + layer_quantized_[layer] + 1) * B + mode_.residual <=
           layer_tokens_[layer]) {
      KVQ_RETURN_IF_ERROR(QuantizeBlock(sinks + layer_quantized_[layer], layer));
      ++layer_quantized_[layer];
    }
  }
  return absl::OkStatus();
}

absl::Status BlockKvCache::QuantizeBlock(int b, int layer) {
  const int D = shape_.head_dim, H = shape_.n_kv_heads, B = mode_.block;
  const kernels::HeadLayout hl = kernels::GetHeadLayout(fp16_enc_, D);
  Part& part = blocks_[b][layer];
  std::vector<uint16_t> k(size_t(H) * B * D), v(k.size());
  for (int h = 0; h < H; ++h) {
    std::memcpy(&k[size_t(h) * B * D], part.bytes.data() + h * hl.head_bytes + hl.k,
                size_t(B) * D * 2);
    std::memcpy(&v[size_t(h) * B * D], part.bytes.data() + h * hl.head_bytes + hl.v,
                size_t(B) * D * 2);
  }
  std::vector<uint8_t> out(quant_part_bytes_[layer]);
  KVQ_RETURN_IF_ERROR(kernels::Best().quantize_layer_fp16(
      layer_enc_[layer], H, D, k.data(), v.data(), out.data()));
  part.bytes = std::move(out);
  part.quantized = true;
  return absl::OkStatus();
}

absl::Status BlockKvCache::Read(int layer, float* k, float* v) const {
  if (layer < 0 || layer >= shape_.n_layers) {
    return absl::InvalidArgumentError("KV cache: bad layer");
  }
  const int D = shape_.head_dim, H = shape_.n_kv_heads, B = mode_.block;
  std::vector<float> kb(size_t(H) * B * D), vb(kb.size());
  for (int b = 0; b < LayerBlocks(layer); ++b) {
    const Part& part = blocks_[b][layer];
    KVQ_RETURN_IF_ERROR(kernels::reference::DequantizeLayer(
        part.quantized ? layer_enc_[layer] : fp16_enc_, H, D, part.bytes.data(),
        kb.data(), vb.data()));
    const int n = std::min(B, layer_tokens_[layer] - b * B);
    for (int t = 0; t < n; ++t) {
      for (int h = 0; h < H; ++h) {
        const size_t dst = (size_t(b * B + t) * H + h) * D;
        const size_t src = (size_t(h) * B + t) * D;
        std::memcpy(k + dst, &kb[src], D * sizeof(float));
        std::memcpy(v + dst, &vb[src], D * sizeof(float));
      }
    }
  }
  return absl::OkStatus();
}

bool BlockKvCache::KernelView(int layer, kernels::SequenceCache* view,
                              kernels::AttentionParams* params) const {
  // Sink blocks are fp16 blocks before the quantized ones: they lead the
  // fp16 list (kernel_set.h: attention does not depend on token order).
  view->quantized.clear();
  view->fp16.clear();
  for (int b = 0; b < LayerBlocks(layer); ++b) {
    const Part& part = blocks_[b][layer];
    (part.quantized ? view->quantized : view->fp16).push_back(part.bytes.data());
  }
  view->n_tokens = layer_tokens_[layer];
  params->quantized_encoding = layer_enc_[layer];
  params->block_tokens = mode_.block;
  params->n_heads = shape_.n_heads;
  params->n_kv_heads = shape_.n_kv_heads;
  params->head_dim = shape_.head_dim;
  params->n_threads = 1;
  return true;
}

absl::Status BlockKvCache::Attend(int layer, const float* q, float* out) const {
  if (layer < 0 || layer >= shape_.n_layers) {
    return absl::InvalidArgumentError("KV cache: bad layer");
  }
  if (layer_tokens_[layer] == 0) {
    return absl::FailedPreconditionError("KV cache: attention over no tokens");
  }
  kernels::SequenceCache view;
  kernels::AttentionParams params;
  KernelView(layer, &view, &params);
  const kernels::AttentionTask task{q, &view, out};
  return kernels::Best().decode_attention(params, {&task, 1});
}

KvCacheStats BlockKvCache::Stats() const {
  KvCacheStats s;
  const double per_token = 2.0 * shape_.n_kv_heads * shape_.head_dim * shape_.n_layers;
  for (int b = 0; b < n_blocks(); ++b) {
    const double tokens = block_tokens(b);
    s.elements += per_token * tokens;
    double quantized_bits = 0;
    for (size_t part : quant_part_bytes_) quantized_bits += 8.0 * part;
    s.stored_bits += blocks_[b][0].quantized ? quantized_bits : 16.0 * per_token * tokens;
  }
  return s;
}

int BlockKvCache::n_blocks() const {
  return (n_tokens() + mode_.block - 1) / mode_.block;
}

BlockEncoding BlockKvCache::block_encoding(int b) const {
  return blocks_[b][0].quantized ? quant_enc_ : fp16_enc_;
}

int BlockKvCache::block_tokens(int b) const {
  return std::min(mode_.block, n_tokens() - b * mode_.block);
}

BlockEncoding BlockKvCache::layer_block_encoding(int b, int layer) const {
  return blocks_[b][layer].quantized ? quant_enc_ : fp16_enc_;
}

int BlockKvCache::layer_block_tokens(int b, int layer) const {
  return std::min(mode_.block, layer_tokens_[layer] - b * mode_.block);
}

absl::Span<const uint8_t> BlockKvCache::LayerPart(int b, int layer) const {
  return blocks_[b][layer].bytes;
}

std::string BlockKvCache::ExportBlock(int b) const {
  std::string out;
  for (const Part& p : blocks_[b]) {
    out.append(reinterpret_cast<const char*>(p.bytes.data()), p.bytes.size());
  }
  return out;
}

}  // namespace kvq::model
