#include "kernels/block_format.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kvq::kernels {

absl::Status Validate(const BlockEncoding& enc, const CacheShape& shape) {
  if (enc.version != kFormatVersion) {
    return absl::InvalidArgumentError(absl::StrCat("block format version ", enc.version,
                                                   " is not the supported version ",
                                                   kFormatVersion));
  }
  if (enc.bits != 2 && enc.bits != 4 && enc.bits != 8 && enc.bits != 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported bits ", enc.bits, " (want 2, 4, 8 or 16 for fp16)"));
  }
  if (enc.v_bits != 2 && enc.v_bits != 4 && enc.v_bits != 8 && enc.v_bits != 16) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported v_bits ", enc.v_bits,
                                                   " (want 2, 4, 8 or 16 for fp16)"));
  }
  if ((enc.bits == 16) != (enc.v_bits == 16)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bits ", enc.bits, " and v_bits ", enc.v_bits, ": fp16 is both or neither"));
  }
  if (enc.block_tokens < 1 || enc.block_tokens > kMaxBlockTokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block_tokens ", enc.block_tokens, " is outside [1, ", kMaxBlockTokens, "]"));
  }
  if (shape.n_layers < 0 || shape.n_layers > kMaxLayers) {
    return absl::InvalidArgumentError(
        absl::StrCat("n_layers ", shape.n_layers, " is outside [0, ", kMaxLayers, "]"));
  }
  if (shape.n_kv_heads < 1 || shape.n_kv_heads > kMaxKvHeads) {
    return absl::InvalidArgumentError(absl::StrCat("n_kv_heads ", shape.n_kv_heads,
                                                   " is outside [1, ", kMaxKvHeads, "]"));
  }
  if (shape.head_dim < 1 || shape.head_dim > kMaxHeadDim) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim ", shape.head_dim, " is outside [1, ", kMaxHeadDim, "]"));
  }
  if (enc.edge_layers > kMaxLayers || (enc.edge_layers == 0) != (enc.edge_bits == 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("edge_layers ", enc.edge_layers, " and edge_bits ", enc.edge_bits,
                     ": both 0 or edge_layers in [1, ", kMaxLayers, "]"));
  }
  if (enc.edge_layers > 0) {
    if (enc.is_fp16() ||
        (enc.edge_bits != 2 && enc.edge_bits != 4 && enc.edge_bits != 8)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "edge_bits ", enc.edge_bits, " (want 2, 4 or 8, and a quantized encoding)"));
    }
    if (absl::Status s = Validate(enc.ForLayer(0, 1), shape); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("edge layers' encoding: ", s.message()));
    }
    // The middle layers' encoding (layer E of 2E + 1).
    return Validate(enc.ForLayer(enc.edge_layers, 2 * enc.edge_layers + 1), shape);
  }
  if (enc.is_fp16()) {
    if (enc.group != 0 || enc.k_outliers != 0 || enc.v_outliers != 0 || enc.scales != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fp16 encoding must have group, outliers and scales 0, got group ", enc.group,
          ", outliers ", enc.k_outliers, "/", enc.v_outliers, ", scales ", enc.scales));
    }
    return absl::OkStatus();
  }
  if (enc.scales != static_cast<uint16_t>(ScaleFormat::kFp16) &&
      enc.scales != static_cast<uint16_t>(ScaleFormat::kU8)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown scale format ", enc.scales, " (want 0 fp16 or 1 u8)"));
  }
  const int64_t section = int64_t{enc.block_tokens} * shape.head_dim;
  if (enc.k_outliers > section || enc.v_outliers > section) {
    return absl::InvalidArgumentError(
        absl::StrCat("outliers ", enc.k_outliers, "/", enc.v_outliers, " exceed the ",
                     section, " entries of a head section"));
  }
  const int codes_per_byte = 8 / enc.bits;
  if (enc.block_tokens % codes_per_byte != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_tokens ", enc.block_tokens, " is not a multiple of ",
                     codes_per_byte, " (", enc.bits, "-bit key codes fill whole bytes)"));
  }
  const int v_codes_per_byte = 8 / enc.v_bits;
  if (shape.head_dim % v_codes_per_byte != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "head_dim ", shape.head_dim, " is not a multiple of ", v_codes_per_byte, " (",
        enc.v_bits, "-bit value codes fill whole bytes)"));
  }
  if (enc.group < 1 || shape.head_dim % enc.group != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "value group G = ", enc.group, " does not divide head_dim ", shape.head_dim));
  }
  return absl::OkStatus();
}

}  // namespace kvq::kernels
