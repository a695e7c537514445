#include "kvstore/block_assembler.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace kvq::kvstore {

BlockAssembler::BlockAssembler(const BlockMeta& meta)
    : meta_(meta),
      layer_bytes_(meta.layer_bytes()),
      received_(meta.n_layers, 0),
      hash_(XXH3_createState()) {
  XXH3_64bits_reset(hash_.get());
  // Grown as chunks land (AddChunk), not zero-filled up front: in layer order
  // each chunk's bytes are appended; out of order, the room up to a chunk's
  // end is zeroed just before being overwritten.
  bytes_.reserve(meta.block_bytes());
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
  if (offset != received) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk of layer ", layer, " at offset ", offset, ", expected ", received));
  }
  if (size > layer_bytes_ - received) {
    return absl::InvalidArgumentError(absl::StrCat("chunk of layer ", layer, " ends at ",
                                                   offset + size, " past the layer's ",
                                                   layer_bytes_, " bytes"));
  }
  if (size == 0) return absl::OkStatus();
  const size_t pos = layer * layer_bytes_ + offset;
  const size_t old_size = bytes_.size();
  const bool append = pos == old_size;
  if (!append && old_size < pos + size) bytes_.resize(pos + size);  // within the reserve
  uint64_t written = 0;
  const bool read_ok = read([&](absl::string_view piece) {
    const size_t n = std::min<uint64_t>(piece.size(), size - written);
    if (append) {
      bytes_.append(piece.data(), n);  // within the reserve
    } else {
      std::memcpy(bytes_.data() + pos + written, piece.data(), n);
    }
    written += piece.size();
  });
  if (!read_ok || written != size) {
    if (append) bytes_.resize(old_size);
    return absl::InvalidArgumentError(
        absl::StrCat("chunk of layer ", layer, " does not have its ", size, " bytes"));
  }
  received += size;
  received_total_ += size;
  if (received == layer_bytes_) ++layers_done_;
  HashPrefix();
  return absl::OkStatus();
}

void BlockAssembler::HashPrefix() {
  size_t end = hashed_;
  for (size_t layer = hashed_ / layer_bytes_; layer < received_.size(); ++layer) {
    end = layer * layer_bytes_ + received_[layer];
    if (received_[layer] < layer_bytes_) break;
  }
  if (end <= hashed_) return;
  XXH3_64bits_update(hash_.get(), bytes_.data() + hashed_, end - hashed_);
  hashed_ = end;
}

uint64_t BlockAssembler::Checksum() {
  HashPrefix();
  return XXH3_64bits_digest(hash_.get());
}

}  // namespace kvq::kvstore
