// The gRPC implementation of store::StoreClient (services/store/client.h):
// rendezvous sharding over the shards' addresses, a deadline on every call,
// UNAVAILABLE retried with exponential backoff, and PutBlocks/GetBlocks as
// raw calls so that chunk data goes out from the callers' buffers and comes
// in straight into the blocks (chunk_decoder.h). Callers use the interface;
// StoreClient::Create makes one of these.
#ifndef KVQ_SERVICES_STORE_INTERNAL_GRPC_STORE_CLIENT_H_
#define KVQ_SERVICES_STORE_INTERNAL_GRPC_STORE_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/channel.h"
#include "grpcpp/impl/rpc_method.h"
#include "proto/kvstore.grpc.pb.h"
#include "services/common/tls.h"
#include "services/store/client.h"

namespace kvq::store::store_internal {

class GrpcStoreClient final : public StoreClient {
 public:
  // Options already validated (StoreClient::Create).
  GrpcStoreClient(const Options& options, const services::ChannelSecurity& security);

  size_t num_shards() const override { return stubs_.size(); }
  const std::string& address(size_t shard) const override {
    return options_.addresses[shard];
  }
  size_t ShardOf(const kvstore::BlockKey& key) const override;
  absl::StatusOr<std::vector<kvstore::PutOutcome>> PutBlocks(
      absl::Span<const kvstore::Block> blocks) override;
  absl::StatusOr<std::unique_ptr<BlockWriter>> OpenWriter() override;
  absl::StatusOr<GetResult> GetBlocks(absl::Span<const kvstore::BlockKey> keys,
                                      absl::Duration lease_ttl) override;
  absl::StatusOr<LookupResult> Lookup(absl::Span<const kvstore::BlockKey> keys,
                                      absl::Duration lease_ttl) override;
  absl::Status RenewLeases(absl::Span<const ShardLease> leases,
                           absl::Duration ttl) override;
  absl::Status ReleaseLeases(absl::Span<const ShardLease> leases) override;
  std::vector<absl::Status> Delete(absl::Span<const kvstore::BlockKey> keys) override;
  absl::StatusOr<kvstore::StoreStats> Stats(size_t shard) override;

 private:
  friend class BlockWriterImpl;

  // Calls `fn` until it returns something other than UNAVAILABLE or the
  // attempts run out, sleeping with exponential backoff in between.
  absl::Status WithRetries(const std::function<absl::Status()>& fn) const;
  // A fresh context with the deadline set.
  std::unique_ptr<grpc::ClientContext> NewContext() const;
  // Key indexes grouped by shard.
  std::vector<std::vector<size_t>> GroupByShard(
      absl::Span<const kvstore::BlockKey> keys) const;
  absl::StatusOr<std::vector<kvstore::PutOutcome>> PutShard(
      size_t shard, const std::vector<const kvstore::Block*>& blocks);

  // PutBlocks and GetBlocks of one shard as raw (grpc::ByteBuffer) calls;
  // the wire format is the proto's.
  struct RawMethods {
    explicit RawMethods(const std::shared_ptr<grpc::Channel>& channel);
    std::shared_ptr<grpc::Channel> channel;
    grpc::internal::RpcMethod put_blocks;
    grpc::internal::RpcMethod get_blocks;
  };

  const Options options_;
  std::vector<std::unique_ptr<v1::KvStore::Stub>> stubs_;
  std::vector<RawMethods> raw_;  // per shard
};

}  // namespace kvq::store::store_internal

#endif  // KVQ_SERVICES_STORE_INTERNAL_GRPC_STORE_CLIENT_H_
