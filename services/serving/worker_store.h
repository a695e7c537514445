// The serving workers' view of the KV store: Lookup of a block chain,
// fetching whole blocks, and a put stream that takes blocks layer by layer;
// store leases held (renewed) and released by one background thread.
// A thin adapter over the store's sharding client (services/store/client.h:
// rendezvous sharding over --store's comma-separated addresses, retries of
// UNAVAILABLE, a deadline on every call).
//
//   KVQ_ASSIGN_OR_RETURN(auto store, WorkerStore::Connect("127.0.0.1:7070", timeout));
//   KVQ_ASSIGN_OR_RETURN(auto found, store->Lookup(keys, /*lease_ttl=*/ttl));
//   HeldLeases held(store.get(), found.leases, ttl);  // released when it goes
//   KVQ_ASSIGN_OR_RETURN(std::vector<kvstore::Block> blocks, store->GetBlocks(keys));
//   auto put = store->OpenPut();
//   put->Announce(id, key, meta);  put->AddLayerPart(id, layer, bytes);  put->Seal(id);
//   KVQ_RETURN_IF_ERROR(put->Finish());   // every block committed
#ifndef KVQ_SERVICES_SERVING_WORKER_STORE_H_
#define KVQ_SERVICES_SERVING_WORKER_STORE_H_

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
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kvstore/block.h"
#include "kvstore/block_key.h"
#include "services/common/tls_options.h"
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
  // `owner` keeps the client the writer came from alive.
  explicit BlockPutStream(std::unique_ptr<store::BlockWriter> writer,
                          std::shared_ptr<const void> owner = nullptr);
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

  std::shared_ptr<const void> owner_;
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

class WorkerStore {
 public:
  // How a worker authenticates to the store (docs/security.md).
  struct Credentials {
    // Sent as "authorization: Bearer <token>" (a token of the store's
    // --writer_token_file); "" sends none.
    std::string auth_token;
    // TLS / mTLS to the store.
    services::TlsOptions tls;
  };

  // `addresses`: "host:port[,host:port...]", one per store shard. `timeout`
  // bounds every store call. Does not contact the store. INVALID_ARGUMENT
  // for no address or bad TLS files.
  static absl::StatusOr<std::unique_ptr<WorkerStore>> Connect(
      const std::string& addresses, absl::Duration timeout,
      const Credentials& credentials = {});
  ~WorkerStore();  // releases the leases still queued for release

  // Which keys the store holds; a `lease_ttl` > 0 leases the present ones.
  // Errors name the store ("the KV store at ... is unavailable: ..."), and a
  // store that does not answer in time is UNAVAILABLE, not DEADLINE_EXCEEDED
  // (the caller's deadline did not pass; the store is down).
  // The store client's LookupResult: present_prefix, present per key, and
  // with a lease TTL the leases pinning the present blocks (one per shard).
  absl::StatusOr<store::LookupResult> Lookup(
      absl::Span<const kvstore::BlockKey> keys,
      absl::Duration lease_ttl = absl::ZeroDuration());

  // The blocks, in order, verified against their checksums. NOT_FOUND naming
  // the first missing key; DATA_LOSS on a checksum mismatch.
  absl::StatusOr<std::vector<kvstore::Block>> GetBlocks(
      absl::Span<const kvstore::BlockKey> keys);
  // The leading blocks of `keys` the store still holds: stops before the
  // first missing one (fewer blocks than keys, not an error). Other errors
  // as GetBlocks.
  absl::StatusOr<std::vector<kvstore::Block>> GetLeadingBlocks(
      absl::Span<const kvstore::BlockKey> keys);

  // Whole blocks (meta.checksum set), e.g. committed blocks put again.
  absl::Status PutBlocks(absl::Span<const kvstore::Block> blocks);

  absl::StatusOr<std::unique_ptr<BlockPutStream>> OpenPut();

  absl::Status RenewLeases(absl::Span<const store::ShardLease> leases,
                           absl::Duration ttl);
  absl::Status ReleaseLeases(absl::Span<const store::ShardLease> leases);
  // Releases on the background thread, off the caller's request path (a
  // failure leaves the leases to their TTL). The destructor releases what
  // is still queued.
  void ReleaseLeasesLater(std::vector<store::ShardLease> leases);
  // Renews `leases` to `ttl` every ttl/3 on the background thread until
  // Unhold(returned id) or the first failed renewal. (HeldLeases wraps it.)
  uint64_t Hold(std::vector<store::ShardLease> leases, absl::Duration ttl);
  void Unhold(uint64_t id);

  // Shard `shard`'s address, and the shard of an address (-1: not one of
  // ours), so that leases travel between processes by address.
  const std::string& address(size_t shard) const { return options_.addresses[shard]; }
  int ShardIndex(const std::string& address) const;
  const std::string& addresses() const { return addresses_; }

 private:
  WorkerStore(const store::StoreClient::Options& options, std::string addresses,
              std::shared_ptr<store::StoreClient> client);
  // The background thread: queued releases first, then due renewals.
  void BackgroundLoop();
  std::shared_ptr<store::StoreClient> client() const;
  // `status` of a store call `what`, with the store named and
  // DEADLINE_EXCEEDED turned into UNAVAILABLE. After UNAVAILABLE it replaces
  // the client by one with fresh connections: gRPC backs off reconnecting
  // to a dead address (up to minutes), and the next request after a store
  // restart should not wait for that.
  absl::Status StoreError(const absl::Status& status, absl::string_view what);

  const store::StoreClient::Options options_;
  const std::string addresses_;
  mutable std::mutex mu_;
  std::shared_ptr<store::StoreClient> client_;  // guarded by mu_
  struct Held {
    std::vector<store::ShardLease> leases;
    absl::Duration ttl;
    absl::Time next_renewal;
  };
  std::condition_variable background_cv_;
  std::deque<std::vector<store::ShardLease>> to_release_;  // guarded by mu_
  std::map<uint64_t, Held> held_;                          // guarded by mu_
  uint64_t next_hold_id_ = 1;                              // guarded by mu_
  bool stopping_ = false;                                  // guarded by mu_
  std::thread background_;
};

// Leases held on the store for the lifetime of this object: renewed by the
// WorkerStore's background thread every third of `ttl` (so a slow holder
// keeps them, and a dead one loses them after `ttl`), released (in the
// background) on Release() or destruction. Renewal stops at the first
// failure (the lease expired or the store is gone; the holder finds out when
// it fetches).
//
//   HeldLeases held(store, lookup.leases, absl::Seconds(30));
//   ...                         // fetch the blocks
//   held.Release();             // or let it go out of scope
class HeldLeases {
 public:
  HeldLeases() = default;
  HeldLeases(WorkerStore* store, std::vector<store::ShardLease> leases,
             absl::Duration ttl);
  ~HeldLeases() { Release(); }
  HeldLeases(const HeldLeases&) = delete;
  HeldLeases& operator=(const HeldLeases&) = delete;

  // Stops renewing and releases the leases in the background
  // (WorkerStore::ReleaseLeasesLater; once, later calls do nothing).
  void Release();
  // Stops renewing and hands the leases over without releasing them.
  std::vector<store::ShardLease> Take();
  const std::vector<store::ShardLease>& leases() const { return leases_; }

 private:
  WorkerStore* store_ = nullptr;
  std::vector<store::ShardLease> leases_;
  uint64_t hold_ = 0;  // WorkerStore::Hold id, 0 when not renewed
};

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_WORKER_STORE_H_
