// The KV block store engine: an in-memory, capacity-bounded map from block key
// to immutable block (design sections 4 and 5). Services depend on this
// interface; KvStore::Open makes the LRU implementation.
//
//   KVQ_ASSIGN_OR_RETURN(std::unique_ptr<KvStore> store,
//                        KvStore::Open({.capacity_bytes = 1 << 30}));
//   KVQ_ASSIGN_OR_RETURN(PutOutcome o, store->Put(key, meta, std::move(bytes)));
//   KVQ_ASSIGN_OR_RETURN(LeaseId lease,
//                        store->AcquireLease(keys, absl::Seconds(30), {"worker",
//                        "host"}));
//   std::vector<absl::StatusOr<Block>> got = store->Get(keys);
//   store->ReleaseLease(lease, "worker");
//
// Semantics:
// - A block is visible only after Put verified its size and checksum; there is
//   no partial block (the service assembles parts first, BlockAssembler).
// - Blocks are immutable: a Put of a present key succeeds without replacing it
//   (first writer wins) and counts as a duplicate.
// - Capacity counts block bytes. To fit a new block, unleased blocks are
//   evicted least recently used first (Put, Get and Lookup hits count as use).
//   If the block cannot fit even after that, Put fails RESOURCE_EXHAUSTED and
//   nothing is evicted.
// - A lease pins blocks against eviction and Delete until it is released or
//   its TTL passes without renewal, so a reader that dies cannot pin memory
//   forever. Lease ids are random (the kernel's CSPRNG), so nobody can guess
//   another client's; only the principal that took a lease may renew or
//   release it; the leases a client holds, and all leases, are capped.
// - Thread-safe. Locks are std::mutex so that TSan sees them.
#ifndef KVQ_KVSTORE_KV_STORE_H_
#define KVQ_KVSTORE_KV_STORE_H_

#include <cstddef>
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

namespace kvq::kvstore {

// Random, from getrandom(2); 0 means "no lease" (nothing was present to pin).
using LeaseId = uint64_t;

// Who takes a lease.
struct LeaseOwner {
  std::string principal;  // who may renew and release it (e.g. "worker")
  std::string client;     // whose open leases it counts against (e.g. "worker@10.0.0.7")
};

// Renewing or releasing as this principal acts on any lease (operators).
inline constexpr absl::string_view kAnyPrincipal = "*";

enum class PutOutcome {
  kStored,          // the block is now visible
  kAlreadyPresent,  // the key existed; the existing block was kept
};

struct StoreStats {
  uint64_t capacity_bytes = 0;
  uint64_t bytes = 0;   // bytes of committed blocks
  uint64_t blocks = 0;  // committed blocks
  uint64_t leased_blocks = 0;
  uint64_t leased_bytes = 0;
  uint64_t active_leases = 0;
  uint64_t puts = 0;            // blocks stored
  uint64_t duplicate_puts = 0;  // puts of a present key (first writer won)
  uint64_t rejected_puts = 0;   // puts refused: no room, bad checksum, bad metadata
  uint64_t hits = 0;            // Get keys found
  uint64_t misses = 0;          // Get keys not found
  uint64_t evictions = 0;       // blocks evicted to make room
  uint64_t expired_leases = 0;  // leases dropped because their TTL passed
};

class KvStore {
 public:
  struct Options {
    uint64_t capacity_bytes = 0;  // must be > 0
    // Longest TTL a lease may ask for; also the TTL of a lease asking for 0.
    absl::Duration max_lease_ttl = absl::Seconds(60);
    // The clock leases expire by; absl::Now when empty (tests inject one).
    std::function<absl::Time()> clock;
    // Most leases alive at once, over all clients and per LeaseOwner::client;
    // 0: no limit. A lease past either is RESOURCE_EXHAUSTED.
    uint64_t max_leases = 0;
    uint64_t max_leases_per_client = 0;
  };

  // INVALID_ARGUMENT for a zero capacity or non-positive max_lease_ttl.
  static absl::StatusOr<std::unique_ptr<KvStore>> Open(const Options& options);

  virtual ~KvStore() = default;

  // Stores `bytes` as the block `key`. Fails (counted in rejected_puts):
  // INVALID_ARGUMENT when ValidateMeta fails or bytes.size() differs from
  // meta.block_bytes(); DATA_LOSS when meta.checksum is not BlockChecksum(bytes);
  // RESOURCE_EXHAUSTED when the block does not fit after evicting every
  // unleased block. A present key returns kAlreadyPresent and keeps the old block.
  virtual absl::StatusOr<PutOutcome> Put(const BlockKey& key, const BlockMeta& meta,
                                         std::string bytes) = 0;

  // Put for a caller that computed BlockChecksum(bytes) itself while the bytes
  // arrived (BlockAssembler::Checksum): the same checks and outcomes, with
  // `bytes_checksum` compared to meta.checksum instead of hashing again.
  virtual absl::StatusOr<PutOutcome> PutHashed(const BlockKey& key, const BlockMeta& meta,
                                               std::string bytes,
                                               uint64_t bytes_checksum) = 0;

  // OK if a block of `bytes` bytes could be stored now after evictions,
  // RESOURCE_EXHAUSTED otherwise (counted in rejected_puts: the caller refuses
  // the put). Lets a service refuse a put before receiving it; Put decides.
  virtual absl::Status CheckFits(uint64_t bytes) = 0;

  // One result per key: the block, or NOT_FOUND.
  virtual std::vector<absl::StatusOr<Block>> Get(absl::Span<const BlockKey> keys) = 0;

  // Whether each key is present (no hit/miss accounting; hits refresh LRU).
  virtual std::vector<bool> Contains(absl::Span<const BlockKey> keys) = 0;

  // Pins the present blocks among `keys` (absent keys are skipped) for `ttl`
  // (0: max_lease_ttl; longer ones are cut to it) under a new lease owned by
  // `owner`. Returns 0 and takes no lease when no key is present.
  // INVALID_ARGUMENT for a negative ttl; RESOURCE_EXHAUSTED when the owner's
  // client, or the store, holds max_leases_per_client (max_leases) leases.
  virtual absl::StatusOr<LeaseId> AcquireLease(absl::Span<const BlockKey> keys,
                                               absl::Duration ttl,
                                               const LeaseOwner& owner) = 0;
  // Contains and AcquireLease as one step: sets (*present)[i] to whether
  // keys[i] is present (hits refresh LRU) and leases exactly the present ones,
  // so that no block reported present can be evicted or deleted before it is
  // pinned. Same TTL, owner and limit rules as AcquireLease (on an error,
  // *present is still filled in).
  virtual absl::StatusOr<LeaseId> LeasePresent(absl::Span<const BlockKey> keys,
                                               absl::Duration ttl,
                                               const LeaseOwner& owner,
                                               std::vector<bool>* present) = 0;
  // Extends a live lease to now + ttl (same rules). NOT_FOUND if the lease is
  // unknown, released, expired, or taken by a principal other than
  // `principal` (kAnyPrincipal: any), so a lease id reveals nothing to others.
  virtual absl::Status RenewLease(LeaseId lease, absl::Duration ttl,
                                  absl::string_view principal) = 0;
  // Unpins a lease's blocks. NOT_FOUND as for RenewLease.
  virtual absl::Status ReleaseLease(LeaseId lease, absl::string_view principal) = 0;

  // Removes blocks. Per key: OK, NOT_FOUND, or FAILED_PRECONDITION while leased.
  virtual std::vector<absl::Status> Delete(absl::Span<const BlockKey> keys) = 0;

  virtual StoreStats Stats() = 0;
};

}  // namespace kvq::kvstore

#endif  // KVQ_KVSTORE_KV_STORE_H_
