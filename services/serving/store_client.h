// The serving workers' view of the KV store (proto/kvstore.proto): Lookup of
// a block chain, fetching whole blocks, and a put stream that takes blocks
// layer by layer. A thin adapter over the KvStore stub; every call carries a
// deadline.
//
//   KVQ_ASSIGN_OR_RETURN(auto store, StoreClient::Connect("127.0.0.1:7070"));
//   KVQ_ASSIGN_OR_RETURN(int present, store->Lookup(keys, deadline));
//   KVQ_ASSIGN_OR_RETURN(std::vector<kvstore::Block> blocks,
//                        store->GetBlocks(keys, deadline));
//   auto put = store->OpenPut(deadline);
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
#include "proto/kvstore.grpc.pb.h"

namespace kvq::serving {

// One PutBlocks stream. Layer parts are handed over as soon as they are
// computed; a block is sent once sealed (the wire header carries the whole
// block's checksum, which is known only after its last layer — see
// services/prefill/README.md). A sender thread does the writing, so the
// caller's compute continues while bytes move.
class BlockPutStream {
 public:
  BlockPutStream(v1::KvStore::Stub* stub, absl::Time deadline, size_t chunk_bytes);
  ~BlockPutStream();  // cancels if Finish was not called

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
    uint32_t id;
    kvstore::BlockKey key;
    kvstore::BlockMeta meta;
    std::vector<std::string> parts;
  };
  void SendLoop();

  const size_t chunk_bytes_;
  grpc::ClientContext context_;
  v1::PutBlocksResponse response_;
  std::unique_ptr<grpc::ClientWriter<v1::PutBlocksRequest>> writer_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint32_t, std::vector<std::string>> parts_;  // guarded by mu_
  std::deque<Item> ready_;                              // guarded by mu_
  bool closing_ = false;                                // guarded by mu_
  bool write_failed_ = false;                           // guarded by mu_
  uint64_t bytes_sent_ = 0;                             // guarded by mu_
  std::thread sender_;
  bool finished_ = false;
};

class StoreClient {
 public:
  // Does not contact the store (channels connect lazily).
  static absl::StatusOr<std::unique_ptr<StoreClient>> Connect(const std::string& address);

  const std::string& address() const { return address_; }

  // Number of leading keys the store holds.
  absl::StatusOr<int> Lookup(absl::Span<const kvstore::BlockKey> keys,
                             absl::Time deadline);

  // The blocks, in order, verified against their checksums. NOT_FOUND naming
  // the first missing key; DATA_LOSS on a checksum mismatch.
  absl::StatusOr<std::vector<kvstore::Block>> GetBlocks(
      absl::Span<const kvstore::BlockKey> keys, absl::Time deadline);

  std::unique_ptr<BlockPutStream> OpenPut(absl::Time deadline);

  absl::StatusOr<v1::StoreStatsResponse> Stats(absl::Time deadline);

 private:
  StoreClient(std::string address, std::unique_ptr<v1::KvStore::Stub> stub)
      : address_(std::move(address)), stub_(std::move(stub)) {}

  const std::string address_;
  std::unique_ptr<v1::KvStore::Stub> stub_;
};

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_STORE_CLIENT_H_
