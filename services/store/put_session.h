// The server side of one PutBlocks stream, independent of gRPC: takes the
// stream's messages one by one, assembles each block from its chunks and
// commits it to the engine as soon as its last layer arrives. Blocks still
// incomplete when the stream fails or is cancelled are dropped, so they never
// become visible.
//
//   PutSession session(store, {.max_pending_bytes = 1 << 30});
//   while (read(&msg)) KVQ_RETURN_IF_ERROR(session.Apply(msg));
//   // or, from the encoded message (chunk data copied once, into the block):
//   while (read(&bytes)) KVQ_RETURN_IF_ERROR(session.ApplyEncoded(&stream));
//   KVQ_ASSIGN_OR_RETURN(v1::PutBlocksResponse resp, session.Finish());
#ifndef KVQ_SERVICES_STORE_PUT_SESSION_H_
#define KVQ_SERVICES_STORE_PUT_SESSION_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/io/zero_copy_stream.h"
#include "kvstore/block_assembler.h"
#include "kvstore/block_key.h"
#include "kvstore/kv_store.h"
#include "proto/kvstore.pb.h"

namespace kvq::store {

class PutSession final {
 public:
  // Bytes of announced but uncommitted blocks of every stream of a store,
  // shared by its sessions: what the store holds beyond its committed
  // blocks, bounded so that many concurrent puts cannot take its memory past
  // --capacity_bytes plus this budget. Thread-safe.
  class AssemblyBudget {
   public:
    explicit AssemblyBudget(uint64_t max_bytes) : max_bytes_(max_bytes) {}
    // Takes `bytes`; false (nothing taken) if that would pass the maximum.
    bool TryTake(uint64_t bytes);
    void Give(uint64_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }
    uint64_t used() const { return used_.load(std::memory_order_relaxed); }
    uint64_t max_bytes() const { return max_bytes_; }

   private:
    const uint64_t max_bytes_;
    std::atomic<uint64_t> used_{0};
  };

  struct Options {
    // Bytes of announced but uncommitted blocks one stream may hold.
    uint64_t max_pending_bytes = uint64_t{1} << 30;
    // The store-wide budget those bytes also come from (null: none). Must
    // outlive the session.
    AssemblyBudget* budget = nullptr;
  };

  PutSession(kvstore::KvStore* store, const Options& options);
  ~PutSession() { DropIncomplete(); }
  PutSession(const PutSession&) = delete;
  PutSession& operator=(const PutSession&) = delete;

  // Applies one message: its headers, then its chunks. The first error ends
  // the stream (the caller finishes the RPC with it):
  //   INVALID_ARGUMENT  bad key or metadata, a block id announced twice, a
  //                     chunk or seal for an unknown or finished block, a
  //                     second seal, a seal for a block announced with its
  //                     checksum, a chunk not fitting its layer, too many
  //                     pending bytes
  //   RESOURCE_EXHAUSTED a block that cannot fit in the store, or that the
  //                     store-wide budget of blocks being assembled has no
  //                     room for (other streams' blocks: retry later)
  //   DATA_LOSS         a completed block whose checksum does not match
  absl::Status Apply(const v1::PutBlocksRequest& request);

  // The same for one encoded PutBlocksRequest (chunk_decoder.h): the fields are
  // applied in wire order, each chunk's data copied straight into its block.
  // Also INVALID_ARGUMENT for a malformed message.
  absl::Status ApplyEncoded(google::protobuf::io::ZeroCopyInputStream* message);

  // After the client half-closed: the results, one per header in order, or
  // INVALID_ARGUMENT if some announced block is incomplete or unsealed.
  absl::StatusOr<v1::PutBlocksResponse> Finish();

  // Drops the blocks still incomplete (never visible) and gives the budget
  // back what they held. For when the stream ends; also done on destruction.
  void DropIncomplete();

 private:
  struct Pending {
    int result_index;
    kvstore::BlockKey key;
    kvstore::BlockAssembler assembler;
    bool awaiting_seal;  // announced with checksum_follows, no seal yet
    uint64_t checksum;   // the header's, or the seal's
  };
  using PendingMap = absl::flat_hash_map<uint32_t, Pending>;
  class Decoder;

  absl::Status AddHeader(const v1::BlockHeader& header);
  absl::Status AddChunk(uint32_t block_id, uint32_t layer, uint64_t offset, uint64_t size,
                        absl::FunctionRef<bool(kvstore::BlockAssembler::PieceFn)> read);
  absl::Status AddSeal(const v1::BlockSeal& seal);
  // Commits the block if all its bytes and its checksum are there.
  absl::Status MaybeCommit(PendingMap::iterator it);

  kvstore::KvStore* const store_;
  const Options options_;
  PendingMap pending_;
  absl::flat_hash_map<uint32_t, bool> seen_ids_;
  uint64_t pending_bytes_ = 0;
  v1::PutBlocksResponse response_;
};

}  // namespace kvq::store

#endif  // KVQ_SERVICES_STORE_PUT_SESSION_H_
