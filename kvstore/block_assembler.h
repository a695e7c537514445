// Reassembles one block from the chunks a PutBlocks or GetBlocks stream
// carries. A block's bytes are its layers' parts one after the other
// (kernels/block_format.h); each part may arrive in several chunks, parts of
// different layers in any order, but the chunks of one layer in order.
//
//   KVQ_ASSIGN_OR_RETURN(BlockAssembler a, BlockAssembler::Create(meta));
//   KVQ_RETURN_IF_ERROR(a.AddChunk(/*layer=*/0, /*offset=*/0, data));
//   if (a.complete()) std::string bytes = std::move(a).TakeBytes();
#ifndef KVQ_KVSTORE_BLOCK_ASSEMBLER_H_
#define KVQ_KVSTORE_BLOCK_ASSEMBLER_H_

#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kvstore/block.h"

namespace kvq::kvstore {

class BlockAssembler {
 public:
  // INVALID_ARGUMENT if ValidateMeta(meta) fails. Allocates nothing yet: the
  // block's bytes are allocated when its first chunk arrives, so announcing
  // a block costs its sender nothing on the receiving side.
  static absl::StatusOr<BlockAssembler> Create(const BlockMeta& meta);

  // Copies `data` to bytes [offset, offset + size) of layer `layer`'s part.
  // INVALID_ARGUMENT if the layer does not exist, `offset` is not where the
  // layer's previous chunk ended (chunks of a layer come in order, without
  // gaps or repeats), or the chunk runs past the end of the part.
  absl::Status AddChunk(int64_t layer, uint64_t offset, absl::string_view data);

  // The same for a chunk of `size` bytes that `read` delivers itself, straight
  // from receive buffers, without an intermediate copy: called only once the
  // chunk is known to fit, it passes the bytes to its argument in pieces, in
  // order. If it returns false or delivers other than `size` bytes (the data
  // ran short), nothing counts as received and the result is INVALID_ARGUMENT.
  // The block's bytes are not zero-filled first; each chunk is copied once.
  using PieceFn = absl::FunctionRef<void(absl::string_view piece)>;
  absl::Status AddChunk(int64_t layer, uint64_t offset, uint64_t size,
                        absl::FunctionRef<bool(PieceFn piece)> read);

  // True once every layer's part has fully arrived.
  bool complete() const { return layers_done_ == meta_.n_layers; }
  // Bytes received so far.
  size_t received_bytes() const { return received_total_; }
  const BlockMeta& meta() const { return meta_; }

  // BlockChecksum of the assembled bytes, when complete(). Computed while the
  // chunks arrive (from the caller's buffers, as they are copied) as far as
  // the bytes arrived in order; the rest when asked.
  uint64_t Checksum();

  // The assembled bytes; call once, when complete() (before, parts of the
  // block were never written: an empty string).
  std::string TakeBytes() && { return complete() ? std::move(bytes_) : std::string(); }

 private:
  struct FreeState {
    void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
  };

  explicit BlockAssembler(const BlockMeta& meta);
  // Allocates the block's bytes and the hash states (at the first chunk).
  void Allocate();
  // Hashes the bytes from hashed_ up to the end of the contiguous prefix.
  void HashPrefix();

  BlockMeta meta_;
  std::vector<size_t> layer_offsets_;  // [n_layers + 1] where each layer starts
  std::string bytes_;
  std::vector<uint64_t> received_;  // per layer
  int32_t layers_done_ = 0;
  size_t received_total_ = 0;
  // Null until Allocate().
  std::unique_ptr<XXH3_state_t, FreeState> hash_;               // over bytes_[0, hashed_)
  std::unique_ptr<XXH3_state_t, FreeState> hash_before_chunk_;  // to undo a short chunk

  size_t hashed_ = 0;
};

}  // namespace kvq::kvstore

#endif  // KVQ_KVSTORE_BLOCK_ASSEMBLER_H_
