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
//   put->AddLayerPart(id, layer, bytes);  ...  put->Seal(id, key, meta);
//   KVQ_RETURN_IF_ERROR(put->Finish());   // every block committed
#ifndef KVQ_SERVICES_SERVING_STORE_CLIENT_H_
#define KVQ_SERVICES_SERVING_STORE_CLIENT_H_

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

// One put stream (per store shard). Layer parts are handed over as soon as
// they are computed; a block goes on the wire once sealed, because the wire
// header carries the whole block's checksum, known only after its last layer
// (see services/prefill/README.md). A sender thread does the writing, so the
// caller's compute continues while bytes move.
class BlockPutStream {
 public:
  explicit BlockPutStream(std::unique_ptr<store::BlockWriter> writer);
  ~BlockPutStream();  // abandons unsent blocks if Finish was not called

  // Layer `layer`'s part of block `id` (any id unique in this stream).
  void AddLayerPart(uint32_t id, int layer, std::string bytes);
  // All layers of block `id` were added; `meta.checksum` is computed here.
  void Seal(uint32_t id, const kvstore::BlockKey& key, kvstore::BlockMeta meta);
  // Waits until the store answered: OK once every sealed block committed
  // (stored or already present); the store's error otherwise.
  absl::Status Finish();
  uint64_t bytes_sent() const;

 private:
  struct Item {
    kvstore::BlockKey key;
    kvstore::BlockMeta meta;
    std::vector<std::string> parts;
  };
  void SendLoop();

  std::unique_ptr<store::BlockWriter> writer_;  // used by the sender thread only
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint32_t, std::vector<std::string>> parts_;  // guarded by mu_
  std::deque<Item> ready_;                              // guarded by mu_
  bool closing_ = false;                                // guarded by mu_
  absl::Status error_;                                  // guarded by mu_
  uint64_t bytes_sent_ = 0;                             // guarded by mu_
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
