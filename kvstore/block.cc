#include "kvstore/block.h"

#include <xxhash.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace kvq::kvstore {

absl::Status ValidateMeta(const BlockMeta& meta) {
  if (meta.n_layers <= 0 || meta.n_layers > kMaxLayers || meta.n_kv_heads <= 0 ||
      meta.n_kv_heads > kMaxKvHeads || meta.head_dim <= 0 ||
      meta.head_dim > kMaxHeadDim) {
    return absl::InvalidArgumentError(
        absl::StrCat("block shape out of range: n_layers=", meta.n_layers,
                     " n_kv_heads=", meta.n_kv_heads, " head_dim=", meta.head_dim));
  }
  if (absl::Status s = kernels::Validate(meta.encoding, meta.shape()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("block encoding: ", s.message()));
  }
  if (meta.token_count <= 0 || meta.token_count > meta.encoding.block_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("token_count ", meta.token_count,
                                                   " not in [1, ",
                                                   meta.encoding.block_tokens, "]"));
  }
  if (meta.block_bytes() > kMaxBlockBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block of ", meta.block_bytes(), " bytes exceeds the limit of ", kMaxBlockBytes));
  }
  return absl::OkStatus();
}

uint64_t BlockChecksum(absl::string_view bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

namespace {

// Whether the `count` little-endian fp16 numbers at `p` are all finite.
bool AllFiniteFp16(const char* p, size_t count) {
  uint16_t any_special = 0;  // exponent all ones: Inf or NaN
  for (size_t i = 0; i < count; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    any_special |= static_cast<uint16_t>((h & 0x7c00) == 0x7c00);
  }
  return any_special == 0;
}

}  // namespace

absl::Status CheckFiniteValues(const BlockMeta& meta, absl::string_view bytes) {
  const size_t B = meta.encoding.block_tokens;
  const size_t D = meta.head_dim;
  const size_t heads = static_cast<size_t>(meta.n_layers) * meta.n_kv_heads;
  size_t layer_at = 0;  // where layer h / n_kv_heads starts
  for (size_t h = 0; h < heads; ++h) {
    if (h > 0 && h % meta.n_kv_heads == 0) {
      layer_at += meta.layer_bytes(static_cast<int>(h / meta.n_kv_heads) - 1);
    }
    // Each layer's own encoding (edge layers may have other bits).
    const int layer = static_cast<int>(h / meta.n_kv_heads);
    const kernels::BlockEncoding enc = meta.encoding.ForLayer(layer, meta.n_layers);
    const kernels::HeadLayout l = kernels::GetHeadLayout(enc, meta.head_dim);
    const char* head = bytes.data() + layer_at + (h % meta.n_kv_heads) * l.head_bytes;
    bool finite;
    if (enc.is_fp16()) {
      finite = AllFiniteFp16(head, 2 * B * D);
    } else {
      // fp16 scales and zeros (u8 ones cannot be), then format 2's fp16
      // scale ranges and outlier values, which follow v_zero.
      const size_t groups = D / enc.group;
      finite = (enc.u8_scales() || (AllFiniteFp16(head + l.k_scale, 2 * D) &&
                                    AllFiniteFp16(head + l.v_scale, 2 * B * groups))) &&
               AllFiniteFp16(head + l.k_range, (l.k_out_at - l.k_range) / 2);
      // Outlier positions inside the B x head_dim section.
      for (size_t at = l.k_out_at; finite && at < l.head_bytes; at += l.index_bytes) {
        uint32_t pos = 0;
        for (size_t i = 0; i < l.index_bytes; ++i) {
          pos |= static_cast<uint32_t>(static_cast<uint8_t>(head[at + i])) << (8 * i);
        }
        if (pos >= B * D) {
          return absl::DataLossError(
              absl::StrCat("block holds an outlier position ", pos, " outside the ",
                           B * D, " entries of a head section (layer ",
                           h / meta.n_kv_heads, ", KV head ", h % meta.n_kv_heads, ")"));
        }
      }
    }
    if (!finite) {
      return absl::DataLossError(absl::StrCat(
          "block holds a NaN or infinite ",
          enc.is_fp16() ? "key or value" : "scale, zero or outlier", " (layer ",
          h / meta.n_kv_heads, ", KV head ", h % meta.n_kv_heads, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace kvq::kvstore
