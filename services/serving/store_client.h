// The serving workers' view of the KV store: Lookup of a block chain,
// fetching whole blocks, and a put stream that takes blocks layer by layer.
// A thin adapter over the store's sharding client (services/store/client.h:
// rendezvous sharding over --store's comma-separated addresses, retries of
// UNAVAILABLE, a deadline on every call).
//
//   KVQ_ASSIGN_OR_RETURN(auto store, StoreClient::Connect("127.0.0.1:7070", timeout));
//   KVQ_ASSIGN_OR_RETURN(int present, store->Lookup(keys));
//   KVQ_ASSIGN_OR_RETURN(std::vector<kvstore::Block> blocks, store->GetBlocks(keys));
//   auto put = store->OpenPut();
//   put->Announce(id, key, meta);  put->AddLayerPart(id, layer, bytes);  put->Seal(id);
//   KVQ_RETURN_IF_ERROR(put->Finish());   // every block committed
#ifndef KVQ_SERVICES_SERVING_STORE_CLIENT_H_
#define KVQ_SERVICES_SERVING_STORE_CLIENT_H_

#include <xxhash.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kvstore/block.h"
#include "kvstore/block_key.h"
#include "services/store/client.h"

namespace kvq::serving {

// One put stream (per store shard), fed layer by layer as prefill computes:
// every block is announced up front with its checksum to follow, each layer
// part goes on the wire as soon as it is handed over, and a block is sealed
// with the XXH3-64 of all its layers (computed incrementally here) after its
// last layer. A sender thread does the writing, so the caller's compute of
// the next layer overlaps the transfer of this one.
class BlockPutStream {
 public:
  explicit BlockPutStream(std::unique_ptr<store::BlockWriter> writer);
  ~BlockPutStream();  // abandons the stream if Finish was not called

  // Announces block `id` (any id unique in this stream); meta.checksum is
  // ignored. Call before its layers.
  void Announce(uint32_t id, const kvstore::BlockKey& key,
                const kvstore::BlockMeta& meta);
  // Layer `layer`'s part of block `id`; layers of a block in order 0, 1, ...
  void AddLayerPart(uint32_t id, int layer, std::string bytes);
  // After block `id`'s last layer: sends its checksum.
  void Seal(uint32_t id);
  // Waits until the store answered: OK once every sealed block committed
  // (stored or already present); the store's error otherwise.
  absl::Status Finish();
  uint64_t bytes_sent() const;

 private:
  struct Op {
    enum Kind { kAnnounce, kLayer, kSeal } kind;
    uint32_t id = 0;
    int layer = 0;
    std::string bytes;
    kvstore::BlockKey key;
    kvstore::BlockMeta meta;
    uint64_t checksum = 0;
  };
  void Enqueue(Op op);
  void SendLoop();

  std::unique_ptr<store::BlockWriter> writer_;  // used by the sender thread only
  std::map<uint32_t, int> writer_ids_;          // sender thread only
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint32_t, std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)>>
      hashes_;               // guarded by mu_
  std::deque<Op> ops_;       // guarded by mu_
  bool closing_ = false;     // guarded by mu_
  absl::Status error_;       // guarded by mu_
  uint64_t bytes_sent_ = 0;  // guarded by mu_
  std::thread sender_;
  bool finished_ = false;
};

class StoreClient {
 public:
  // `addresses`: "host:port[,host:port...]", one per store shard. `timeout`
  // bounds every store call. Does not contact the store.
  static absl::StatusOr<std::unique_ptr<StoreClient>> Connect(
      const std::string& addresses, absl::Duration timeout);

  // Number of leading keys the store holds.
  absl::StatusOr<int> Lookup(absl::Span<const kvstore::BlockKey> keys);

  // The blocks, in order, verified against their checksums. NOT_FOUND naming
  // the first missing key; DATA_LOSS on a checksum mismatch.
  absl::StatusOr<std::vector<kvstore::Block>> GetBlocks(
      absl::Span<const kvstore::BlockKey> keys);

  absl::StatusOr<std::unique_ptr<BlockPutStream>> OpenPut();

 private:
  explicit StoreClient(std::unique_ptr<store::StoreClient> client)
      : client_(std::move(client)) {}

  std::unique_ptr<store::StoreClient> client_;
};

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_STORE_CLIENT_H_
