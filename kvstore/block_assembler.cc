#include "kvstore/block_assembler.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kvstore/internal/byte_copy.h"

namespace kvq::kvstore {

BlockAssembler::BlockAssembler(const BlockMeta& meta)
    : meta_(meta), received_(meta.n_layers, 0) {
  layer_offsets_.push_back(0);
  for (int l = 0; l < meta.n_layers; ++l) {
    layer_offsets_.push_back(layer_offsets_.back() + meta.layer_bytes(l));
  }
}

void BlockAssembler::Allocate() {
  // Not zero-filled: every byte is written by the chunks before the block
  // is complete (TakeBytes), with streaming stores (internal/byte_copy.h).
  bytes_ = internal::UninitializedString(meta_.block_bytes());
  hash_.reset(XXH3_createState());
  hash_before_chunk_.reset(XXH3_createState());
  XXH3_64bits_reset(hash_.get());
}

absl::StatusOr<BlockAssembler> BlockAssembler::Create(const BlockMeta& meta) {
  KVQ_RETURN_IF_ERROR(ValidateMeta(meta));
  return BlockAssembler(meta);
}

absl::Status BlockAssembler::AddChunk(int64_t layer, uint64_t offset,
                                      absl::string_view data) {
  return AddChunk(layer, offset, data.size(), [&](PieceFn piece) {
    piece(data);
    return true;
  });
}

absl::Status BlockAssembler::AddChunk(int64_t layer, uint64_t offset, uint64_t size,
                                      absl::FunctionRef<bool(PieceFn piece)> read) {
  if (layer < 0 || layer >= meta_.n_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk for layer ", layer, " of a block with ", meta_.n_layers, " layers"));
  }
  uint64_t& received = received_[layer];
  const uint64_t layer_bytes = layer_offsets_[layer + 1] - layer_offsets_[layer];
  if (offset != received) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk of layer ", layer, " at offset ", offset, ", expected ", received));
  }
  if (size > layer_bytes - received) {
    return absl::InvalidArgumentError(absl::StrCat("chunk of layer ", layer, " ends at ",
                                                   offset + size, " past the layer's ",
                                                   layer_bytes, " bytes"));
  }
  if (size == 0) return absl::OkStatus();
  if (!hash_) Allocate();
  const size_t pos = layer_offsets_[layer] + offset;
  // A chunk that continues the hashed prefix (layers in order) is hashed from
  // the receive buffers as it is copied; the copy's streaming stores leave the
  // block's bytes out of the cache. If the chunk falls short, the hash goes
  // back to where it was.
  const bool hash_inline = pos == hashed_;
  if (hash_inline) XXH3_copyState(hash_before_chunk_.get(), hash_.get());
  uint64_t written = 0;
  const bool read_ok = read([&](absl::string_view piece) {
    // Bytes past the chunk's end are not copied (the chunk is rejected below).
    if (written < size) {
      const size_t n = std::min<uint64_t>(piece.size(), size - written);
      if (hash_inline) XXH3_64bits_update(hash_.get(), piece.data(), n);
      internal::StreamCopy(bytes_.data() + pos + written, piece.data(), n);
    }
    written += piece.size();
  });
  internal::StreamCopyDone();
  if (!read_ok || written != size) {
    if (hash_inline) XXH3_copyState(hash_.get(), hash_before_chunk_.get());
    return absl::InvalidArgumentError(
        absl::StrCat("chunk of layer ", layer, " does not have its ", size, " bytes"));
  }
  if (hash_inline) hashed_ += size;
  received += size;
  received_total_ += size;
  if (received == layer_bytes) ++layers_done_;
  HashPrefix();
  return absl::OkStatus();
}

void BlockAssembler::HashPrefix() {
  size_t end = hashed_;
  // The layer holding byte hashed_ (n_layers when all are hashed).
  size_t layer = std::upper_bound(layer_offsets_.begin(), layer_offsets_.end(), hashed_) -
                 layer_offsets_.begin() - 1;
  for (; layer < received_.size(); ++layer) {
    end = layer_offsets_[layer] + received_[layer];
    if (received_[layer] < layer_offsets_[layer + 1] - layer_offsets_[layer]) break;
  }
  if (end <= hashed_) return;
  XXH3_64bits_update(hash_.get(), bytes_.data() + hashed_, end - hashed_);
  hashed_ = end;
}

uint64_t BlockAssembler::Checksum() {
  if (!hash_) Allocate();  // no byte arrived: the checksum of nothing so far
  HashPrefix();
  return XXH3_64bits_digest(hash_.get());
}

}  // namespace kvq::kvstore
