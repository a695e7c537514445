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
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/io/zero_copy_stream.h"
#include "kvstore/block_assembler.h"
#include "kvstore/block_key.h"
#include "kvstore/kv_store.h"
#include "proto/kvstore.pb.h"

namespace kvq::store {

class PutSession final {
 public:
  // Bytes of blocks that PutBlocks streams are receiving, over all streams of
  // a store and per client: what the store holds beyond its committed blocks,
  // bounded so that many concurrent puts cannot take its memory past
  // --capacity_bytes plus this budget, and so that one client cannot take all
  // of it. A block's bytes are charged when its first chunk arrives (when its
  // memory is allocated), not at its header: a header costs only its
  // bookkeeping (AnnounceBytes, then counted as part of the block's bytes),
  // so a client that announces a huge block and sends nothing starves
  // nobody.
  // Thread-safe.
  class AssemblyBudget {
   public:
    // 0: no limit (for either).
    AssemblyBudget(uint64_t max_bytes, uint64_t max_bytes_per_client);
    // Takes `bytes` for `client`, or RESOURCE_EXHAUSTED naming `what` and the
    // limit it would pass (nothing taken).
    absl::Status Take(absl::string_view client, uint64_t bytes, absl::string_view what);
    void Give(absl::string_view client, uint64_t bytes);
    uint64_t used() const { return used_.load(std::memory_order_relaxed); }
    uint64_t used_by(absl::string_view client) const;
    uint64_t max_bytes() const { return max_bytes_; }
    uint64_t max_bytes_per_client() const { return max_bytes_per_client_; }

   private:
    const uint64_t max_bytes_;
    const uint64_t max_bytes_per_client_;
    std::atomic<uint64_t> used_{0};  // written under mu_
    mutable std::mutex mu_;
    // Guarded by mu_: clients with bytes in use (bounded by the streams open).
    absl::flat_hash_map<std::string, uint64_t> per_client_;
  };

  struct Options {
    // Bytes of announced but uncommitted blocks one stream may hold (their
    // headers came; their bytes may not have).
    uint64_t max_pending_bytes = uint64_t{1} << 30;
    // Blocks one stream may announce in all: bounds its bookkeeping and its
    // response (one result per block).
    uint64_t max_blocks = 65536;
    // The store-wide budget the blocks' bytes come from (null: none), and
    // the client they are charged to (Caller::client()). Must outlive the
    // session.
    AssemblyBudget* budget = nullptr;
    std::string client;
  };

  // What a header costs the budget before its block's bytes arrive: the
  // session's bookkeeping for it (so that announcing many small blocks is
  // bounded too).
  static uint64_t AnnounceBytes(const kvstore::BlockMeta& meta);

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
  //                     (also: more than max_blocks blocks, or a chunk or
  //                     seal for a block this stream already committed: the
  //                     blocks committed before stay stored, see Finish)
  //   RESOURCE_EXHAUSTED a block that cannot fit in the store, or whose
  //                     first chunk the budget of blocks being assembled has
  //                     no room for (store-wide or this client's; retry later)
  //   DATA_LOSS         a completed block whose checksum does not match
  absl::Status Apply(const v1::PutBlocksRequest& request);

  // The same for one encoded PutBlocksRequest (chunk_decoder.h): the fields are
  // applied in wire order, each chunk's data copied straight into its block.
  // Also INVALID_ARGUMENT for a malformed message.
  absl::Status ApplyEncoded(google::protobuf::io::ZeroCopyInputStream* message);

  // After the client half-closed: the results, one per header in order, or
  // INVALID_ARGUMENT if some announced block is incomplete or unsealed.
  // Each block commits on its own as soon as it is complete, so a stream
  // that fails (here or in Apply) may have committed some blocks; they are
  // valid and stay (puts are idempotent: re-put them all). committed() says
  // how many, and the errors say so.
  absl::StatusOr<v1::PutBlocksResponse> Finish();

  // Drops the blocks still incomplete (never visible) and gives the budget
  // back what they held. For when the stream ends; also done on destruction.
  void DropIncomplete();

  // Blocks this stream committed (stored or already present) so far.
  int committed() const { return committed_; }

 private:
  struct Pending {
    int result_index;
    kvstore::BlockKey key;
    kvstore::BlockAssembler assembler;
    bool awaiting_seal;  // announced with checksum_follows, no seal yet
    uint64_t checksum;   // the header's, or the seal's
    uint64_t charged;    // taken from the budget: AnnounceBytes, + its bytes once started
    bool started = false;  // its first bytes arrived (its memory is allocated)
  };
  using PendingMap = absl::flat_hash_map<uint32_t, Pending>;
  class Decoder;

  absl::Status ApplyParsed(const v1::PutBlocksRequest& request);
  absl::Status ApplyEncodedImpl(google::protobuf::io::ZeroCopyInputStream* message);
  absl::Status AddHeader(const v1::BlockHeader& header);
  absl::Status AddChunk(uint32_t block_id, uint32_t layer, uint64_t offset, uint64_t size,
                        absl::FunctionRef<bool(kvstore::BlockAssembler::PieceFn)> read);
  absl::Status AddSeal(const v1::BlockSeal& seal);
  // Commits the block if all its bytes and its checksum are there.
  absl::Status MaybeCommit(PendingMap::iterator it);
  // INVALID_ARGUMENT for a chunk or seal naming no pending block.
  absl::Status NotPending(absl::string_view what, uint32_t block_id) const;
  // `status` with what this stream committed before it failed.
  absl::Status WithCommitted(const absl::Status& status) const;

  kvstore::KvStore* const store_;
  const Options options_;
  PendingMap pending_;
  absl::flat_hash_map<uint32_t, bool> seen_ids_;  // true once committed
  uint64_t pending_bytes_ = 0;                    // announced, uncommitted
  uint64_t charged_bytes_ = 0;                    // taken from the budget
  int committed_ = 0;
  v1::PutBlocksResponse response_;
};

}  // namespace kvq::store

#endif  // KVQ_SERVICES_STORE_PUT_SESSION_H_
