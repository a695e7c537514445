#include "kvstore/block.h"

#include <xxhash.h>

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

}  // namespace kvq::kvstore
