// The client of the KV store (proto/kvstore.proto) across one or more store
// shards: an interface with domain types only, and a factory for its gRPC
// implementation (internal/grpc_store_client.h). Each block lives on one shard, chosen by
// rendezvous hashing of its key over the shards' addresses, so every process with the
// same address list (in any order) routes a key the same way, and adding a shard moves
// only the blocks the new shard wins. Every call has a deadline; calls that fail
// UNAVAILABLE are retried with exponential backoff (puts are idempotent: the
// first writer wins).
//
//   KVQ_ASSIGN_OR_RETURN(auto client, StoreClient::Create({.addresses = {a, b}}));
//   KVQ_ASSIGN_OR_RETURN(std::vector<kvstore::PutOutcome> o, client->PutBlocks(blocks));
//   KVQ_ASSIGN_OR_RETURN(LookupResult l, client->Lookup(chain_keys));
//   KVQ_ASSIGN_OR_RETURN(GetResult g, client->GetBlocks(keys, absl::Seconds(30)));
//   client->ReleaseLeases(g.leases);
//
// Streaming puts, layer by layer as a prefill worker computes them:
//   KVQ_ASSIGN_OR_RETURN(auto w, client->OpenWriter());
//   for (...) KVQ_ASSIGN_OR_RETURN(int id, w->Announce(key, meta));
//   for (layer...) for (id...) KVQ_RETURN_IF_ERROR(w->WriteLayer(id, layer, part));
//   KVQ_ASSIGN_OR_RETURN(std::vector<kvstore::PutOutcome> o, w->Finish());
#ifndef KVQ_SERVICES_STORE_CLIENT_H_
#define KVQ_SERVICES_STORE_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kvstore/block.h"
#include "kvstore/block_key.h"
#include "kvstore/kv_store.h"
#include "services/common/tls_options.h"

namespace kvq::store {

// A lease held on one shard.
struct ShardLease {
  size_t shard = 0;
  uint64_t id = 0;
};

struct GetResult {
  // One per requested key: the block (checksum verified), NOT_FOUND, or the
  // error of its shard's call; DATA_LOSS if the bytes arrived corrupted.
  std::vector<absl::StatusOr<kvstore::Block>> blocks;
  std::vector<ShardLease> leases;  // when a lease TTL was given
};

struct LookupResult {
  size_t present_prefix = 0;  // leading keys present
  std::vector<bool> present;  // per key
  std::vector<ShardLease> leases;
};

// One PutBlocks stream per shard, written as the caller produces layers.
// Not thread-safe. Not retried (a failed writer's blocks can be put again).
class BlockWriter {
 public:
  virtual ~BlockWriter() = default;
  // Announces a block; returns its id for WriteLayer. INVALID_ARGUMENT for bad
  // metadata (checked locally before anything is sent).
  virtual absl::StatusOr<int> Announce(const kvstore::BlockKey& key,
                                       const kvstore::BlockMeta& meta) = 0;
  // For a writer that learns the block's checksum only after its last layer
  // (prefill streams layers as it computes them): like Announce, but
  // meta.checksum is ignored; the block commits once all its layers and its
  // Seal have arrived.
  virtual absl::StatusOr<int> AnnounceUnsealed(const kvstore::BlockKey& key,
                                               const kvstore::BlockMeta& meta) = 0;
  // Sends the XXH3-64 checksum of the whole block `id` (announced unsealed).
  virtual absl::Status Seal(int id, uint64_t checksum) = 0;
  // Sends one layer's whole part of block `id` (meta.layer_bytes(layer) bytes), in
  // chunks. An error means the stream to that shard broke (its status).
  virtual absl::Status WriteLayer(int id, int layer, absl::string_view part) = 0;
  // Half-closes every stream and returns one outcome per announced block, in
  // order, or the first shard's error.
  virtual absl::StatusOr<std::vector<kvstore::PutOutcome>> Finish() = 0;
};

class StoreClient {
 public:
  struct Options {
    std::vector<std::string> addresses;           // "host:port", one per shard
    absl::Duration deadline = absl::Seconds(30);  // per call (a whole stream)
    int max_attempts = 4;                         // for UNAVAILABLE
    absl::Duration initial_backoff = absl::Milliseconds(50);
    absl::Duration max_backoff = absl::Seconds(2);
    uint32_t chunk_bytes = 1 << 20;   // bytes per message, well below 4 MiB
    int max_message_bytes = 4 << 20;  // receive limit
    // Open this client's own TCP connections instead of sharing gRPC's
    // process-wide subchannels with other clients of the same addresses
    // (benchmarks use one client per stream).
    bool own_connections = false;
    // Sent as "authorization: Bearer <token>" on every call when not empty:
    // a token from the store's --writer_token_file (workers) or
    // --admin_token_file (operators); docs/security.md.
    std::string auth_token;
    // TLS to the store when it names a CA or a client certificate (mTLS);
    // plaintext otherwise (services/common/tls.h).
    services::TlsOptions tls;
  };

  // The gRPC client (services/store/internal/grpc_store_client.h).
  // INVALID_ARGUMENT for no addresses, duplicates, bad sizes or bad TLS
  // files. Connects lazily.
  static absl::StatusOr<std::unique_ptr<StoreClient>> Create(const Options& options);

  virtual ~StoreClient() = default;

  virtual size_t num_shards() const = 0;
  virtual const std::string& address(size_t shard) const = 0;
  // The shard holding `key`: argmax over shards of XXH3-64(key bytes ++ address).
  virtual size_t ShardOf(const kvstore::BlockKey& key) const = 0;

  // Puts whole blocks (bytes must match meta, meta.checksum set): one stream
  // per shard, headers first, then layer 0 of every block, layer 1, ...
  // Outcomes per block in order, or the first error.
  virtual absl::StatusOr<std::vector<kvstore::PutOutcome>> PutBlocks(
      absl::Span<const kvstore::Block> blocks) = 0;

  virtual absl::StatusOr<std::unique_ptr<BlockWriter>> OpenWriter() = 0;

  // Fetches blocks; a lease_ttl > 0 leases the found ones on their shards.
  virtual absl::StatusOr<GetResult> GetBlocks(
      absl::Span<const kvstore::BlockKey> keys,
      absl::Duration lease_ttl = absl::ZeroDuration()) = 0;
  // Which keys are present (a chain's keys: present_prefix is what can be reused).
  virtual absl::StatusOr<LookupResult> Lookup(
      absl::Span<const kvstore::BlockKey> keys,
      absl::Duration lease_ttl = absl::ZeroDuration()) = 0;
  virtual absl::Status RenewLeases(absl::Span<const ShardLease> leases,
                                   absl::Duration ttl) = 0;
  virtual absl::Status ReleaseLeases(absl::Span<const ShardLease> leases) = 0;
  // Per key: OK, NOT_FOUND, FAILED_PRECONDITION (leased), or the call's error.
  virtual std::vector<absl::Status> Delete(absl::Span<const kvstore::BlockKey> keys) = 0;
  // One shard's counters (the store engine's StoreStats).
  virtual absl::StatusOr<kvstore::StoreStats> Stats(size_t shard) = 0;
};

// Splits "a:1,b:2" into addresses (empty items dropped).
std::vector<std::string> ParseAddressList(absl::string_view list);

}  // namespace kvq::store

#endif  // KVQ_SERVICES_STORE_CLIENT_H_
