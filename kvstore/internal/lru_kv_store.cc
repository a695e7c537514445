// The LRU implementation of KvStore (kvstore/kv_store.h): one std::mutex over
// a hash map of blocks, an LRU list of keys and a lease table whose expiries
// are reaped lazily at the start of every operation. Lease ids come from
// getrandom(2).
#include <sys/random.h>

#include <cerrno>
#include <list>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "kvstore/kv_store.h"

namespace kvq::kvstore {
namespace kvstore_internal {
namespace {

class LruKvStore final : public KvStore {
 public:
  explicit LruKvStore(const Options& options)
      : capacity_(options.capacity_bytes),
        max_ttl_(options.max_lease_ttl),
        max_leases_(options.max_leases),
        max_leases_per_client_(options.max_leases_per_client),
        clock_(options.clock ? options.clock : [] { return absl::Now(); }) {}

  absl::StatusOr<PutOutcome> Put(const BlockKey& key, const BlockMeta& meta,
                                 std::string bytes) override {
    return PutImpl(key, meta, std::move(bytes), std::nullopt);
  }

  absl::StatusOr<PutOutcome> PutHashed(const BlockKey& key, const BlockMeta& meta,
                                       std::string bytes,
                                       uint64_t bytes_checksum) override {
    return PutImpl(key, meta, std::move(bytes), bytes_checksum);
  }

  // `bytes_checksum`: BlockChecksum(bytes) if the caller computed it.
  absl::StatusOr<PutOutcome> PutImpl(const BlockKey& key, const BlockMeta& meta,
                                     std::string bytes,
                                     std::optional<uint64_t> bytes_checksum) {
    absl::Status invalid = ValidateMeta(meta);
    if (invalid.ok() && bytes.size() != meta.block_bytes()) {
      invalid = absl::InvalidArgumentError(
          absl::StrCat("block ", key.ToHex(), " has ", bytes.size(),
                       " bytes, its metadata says ", meta.block_bytes()));
    }
    if (invalid.ok() &&
        (bytes_checksum ? *bytes_checksum : BlockChecksum(bytes)) != meta.checksum) {
      invalid = absl::DataLossError(
          absl::StrCat("block ", key.ToHex(), " does not match its checksum"));
    }
    std::lock_guard<std::mutex> lock(mu_);
    ReapExpiredLeases();
    if (!invalid.ok()) {
      ++stats_.rejected_puts;
      return invalid;
    }
    if (auto it = blocks_.find(key); it != blocks_.end()) {
      ++stats_.duplicate_puts;
      Touch(it->second);
      return PutOutcome::kAlreadyPresent;
    }
    const uint64_t size = bytes.size();
    if (absl::Status fits = FitsLocked(size); !fits.ok()) {
      ++stats_.rejected_puts;
      return fits;
    }
    EvictUntilFree(size);
    lru_.push_front(key);
    Entry& e = blocks_[key];
    e.block = Block{key, meta, std::make_shared<const std::string>(std::move(bytes))};
    e.lru = lru_.begin();
    bytes_ += size;
    ++stats_.puts;
    return PutOutcome::kStored;
  }

  absl::Status CheckFits(uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    ReapExpiredLeases();
    absl::Status fits = FitsLocked(bytes);
    if (!fits.ok()) ++stats_.rejected_puts;
    return fits;
  }

  std::vector<absl::StatusOr<Block>> Get(absl::Span<const BlockKey> keys) override {
    std::vector<absl::StatusOr<Block>> out;
    out.reserve(keys.size());
    std::lock_guard<std::mutex> lock(mu_);
    ReapExpiredLeases();
    for (const BlockKey& key : keys) {
      auto it = blocks_.find(key);
      if (it == blocks_.end()) {
        ++stats_.misses;
        out.push_back(absl::NotFoundError(absl::StrCat("no block ", key.ToHex())));
        continue;
      }
      ++stats_.hits;
      Touch(it->second);
      out.push_back(it->second.block);
    }
    return out;
  }

  std::vector<bool> Contains(absl::Span<const BlockKey> keys) override {
    std::vector<bool> out;
    out.reserve(keys.size());
    std::lock_guard<std::mutex> lock(mu_);
    ReapExpiredLeases();
    for (const BlockKey& key : keys) {
      auto it = blocks_.find(key);
      out.push_back(it != blocks_.end());
      if (it != blocks_.end()) Touch(it->second);
    }
    return out;
  }

  absl::StatusOr<LeaseId> AcquireLease(absl::Span<const BlockKey> keys,
                                       absl::Duration ttl,
                                       const LeaseOwner& owner) override {
    absl::StatusOr<absl::Duration> effective = EffectiveTtl(ttl);
    if (!effective.ok()) return effective.status();
    std::lock_guard<std::mutex> lock(mu_);
    ReapExpiredLeases();
    return LeaseLocked(keys, *effective, owner, /*present=*/nullptr);
  }

  absl::StatusOr<LeaseId> LeasePresent(absl::Span<const BlockKey> keys,
                                       absl::Duration ttl, const LeaseOwner& owner,
                                       std::vector<bool>* present) override {
    absl::StatusOr<absl::Duration> effective = EffectiveTtl(ttl);
    if (!effective.ok()) return effective.status();
    std::lock_guard<std::mutex> lock(mu_);
    ReapExpiredLeases();
    return LeaseLocked(keys, *effective, owner, present);
  }

  absl::Status RenewLease(LeaseId id, absl::Duration ttl,
                          absl::string_view principal) override {
    absl::StatusOr<absl::Duration> effective = EffectiveTtl(ttl);
    if (!effective.ok()) return effective.status();
    std::lock_guard<std::mutex> lock(mu_);
    ReapExpiredLeases();
    auto it = FindLease(id, principal);
    if (it == leases_.end()) return UnknownLease(id);
    expiries_.erase({it->second.expiry, id});
    it->second.expiry = clock_() + *effective;
    expiries_.emplace(it->second.expiry, id);
    return absl::OkStatus();
  }

  absl::Status ReleaseLease(LeaseId id, absl::string_view principal) override {
    std::lock_guard<std::mutex> lock(mu_);
    ReapExpiredLeases();
    auto it = FindLease(id, principal);
    if (it == leases_.end()) return UnknownLease(id);
    expiries_.erase({it->second.expiry, id});
    DropLease(it);
    return absl::OkStatus();
  }

  std::vector<absl::Status> Delete(absl::Span<const BlockKey> keys) override {
    std::vector<absl::Status> out;
    out.reserve(keys.size());
    std::lock_guard<std::mutex> lock(mu_);
    ReapExpiredLeases();
    for (const BlockKey& key : keys) {
      auto it = blocks_.find(key);
      if (it == blocks_.end()) {
        out.push_back(absl::NotFoundError(absl::StrCat("no block ", key.ToHex())));
      } else if (it->second.pins > 0) {
        out.push_back(absl::FailedPreconditionError(
            absl::StrCat("block ", key.ToHex(), " is leased")));
      } else {
        Erase(it);
        out.push_back(absl::OkStatus());
      }
    }
    return out;
  }

  StoreStats Stats() override {
    std::lock_guard<std::mutex> lock(mu_);
    ReapExpiredLeases();
    StoreStats s = stats_;
    s.capacity_bytes = capacity_;
    s.bytes = bytes_;
    s.blocks = blocks_.size();
    s.leased_blocks = leased_blocks_;
    s.leased_bytes = leased_bytes_;
    s.active_leases = leases_.size();
    return s;
  }

 private:
  struct Entry {
    Block block;
    std::list<BlockKey>::iterator lru;  // position in lru_
    int pins = 0;                       // live leases holding the block
  };
  struct Lease {
    std::vector<BlockKey> keys;  // distinct, all present while the lease lives
    absl::Time expiry;
    LeaseOwner owner;
  };
  using BlockMap = absl::flat_hash_map<BlockKey, Entry>;
  using LeaseMap = absl::flat_hash_map<LeaseId, Lease>;

  absl::StatusOr<absl::Duration> EffectiveTtl(absl::Duration ttl) const {
    if (ttl < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("negative lease TTL");
    }
    if (ttl == absl::ZeroDuration() || ttl > max_ttl_) return max_ttl_;
    return ttl;
  }

  static absl::Status UnknownLease(LeaseId id) {
    return absl::NotFoundError(
        absl::StrCat("lease ", id, " is unknown, released, expired, or not yours"));
  }

  // A lease id nobody can predict: 64 bits from the kernel's CSPRNG.
  static LeaseId RandomLeaseId() {
    LeaseId id = 0;
    ssize_t n;
    do {
      n = getrandom(&id, sizeof(id), 0);
    } while (n < 0 && errno == EINTR);
    // getrandom never returns short for 8 bytes once the pool is initialised.
    ABSL_RAW_CHECK(n == static_cast<ssize_t>(sizeof(id)), "getrandom failed");
    return id;
  }

  // All private helpers below require mu_ held.
  absl::Status FitsLocked(uint64_t size) const {
    if (size <= capacity_ - leased_bytes_) return absl::OkStatus();
    return absl::ResourceExhaustedError(
        absl::StrCat("a block of ", size, " bytes does not fit: capacity ", capacity_,
                     ", leased ", leased_bytes_));
  }

  void Touch(Entry& e) { lru_.splice(lru_.begin(), lru_, e.lru); }

  void Pin(Entry& e) {
    if (e.pins++ == 0) {
      ++leased_blocks_;
      leased_bytes_ += e.block.bytes->size();
    }
  }
  void Unpin(Entry& e) {
    if (--e.pins == 0) {
      --leased_blocks_;
      leased_bytes_ -= e.block.bytes->size();
    }
  }

  // The live lease `id` if `principal` may act on it, else leases_.end().
  LeaseMap::iterator FindLease(LeaseId id, absl::string_view principal) {
    auto it = leases_.find(id);
    if (it == leases_.end()) return it;
    if (principal != kAnyPrincipal && principal != it->second.owner.principal) {
      return leases_.end();
    }
    return it;
  }

  // Pins the present blocks among `keys` under a new lease for `owner`; with
  // `present`, also reports (and touches) them. 0 when none is present.
  absl::StatusOr<LeaseId> LeaseLocked(absl::Span<const BlockKey> keys, absl::Duration ttl,
                                      const LeaseOwner& owner,
                                      std::vector<bool>* present) {
    if (present != nullptr) present->assign(keys.size(), false);
    std::vector<BlockKey> pinned;
    absl::flat_hash_set<BlockKey> seen;
    for (size_t i = 0; i < keys.size(); ++i) {
      auto it = blocks_.find(keys[i]);
      if (it == blocks_.end()) continue;
      if (present != nullptr) {
        (*present)[i] = true;
        Touch(it->second);
      }
      if (seen.insert(keys[i]).second) pinned.push_back(keys[i]);
    }
    if (pinned.empty()) return LeaseId{0};  // an empty lease would pin nothing
    if (max_leases_ > 0 && leases_.size() >= max_leases_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the store holds ", leases_.size(), " leases, its limit; retry later"));
    }
    uint64_t& held = leases_per_client_[owner.client];
    if (max_leases_per_client_ > 0 && held >= max_leases_per_client_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("client ", owner.client, " holds ", held,
                       " leases, its limit; release some before taking more"));
    }
    LeaseId id = RandomLeaseId();
    while (id == 0 || leases_.contains(id)) id = RandomLeaseId();
    ++held;
    Lease& lease = leases_[id];
    for (const BlockKey& key : pinned) Pin(blocks_.find(key)->second);
    lease.keys = std::move(pinned);
    lease.owner = owner;
    lease.expiry = clock_() + ttl;
    expiries_.emplace(lease.expiry, id);
    return id;
  }

  void DropLease(LeaseMap::iterator it) {
    for (const BlockKey& key : it->second.keys) Unpin(blocks_.find(key)->second);
    auto held = leases_per_client_.find(it->second.owner.client);
    if (--held->second == 0) leases_per_client_.erase(held);  // bounded: live clients
    leases_.erase(it);
  }

  void ReapExpiredLeases() {
    const absl::Time now = clock_();
    while (!expiries_.empty() && expiries_.begin()->first <= now) {
      auto it = leases_.find(expiries_.begin()->second);
      expiries_.erase(expiries_.begin());
      DropLease(it);
      ++stats_.expired_leases;
    }
  }

  void Erase(BlockMap::iterator it) {
    bytes_ -= it->second.block.bytes->size();
    lru_.erase(it->second.lru);
    blocks_.erase(it);
  }

  // Evicts unleased blocks, least recently used first, until `size` more bytes
  // fit. FitsLocked(size) must have succeeded.
  void EvictUntilFree(uint64_t size) {
    auto pos = lru_.end();
    while (capacity_ - bytes_ < size && pos != lru_.begin()) {
      --pos;
      auto it = blocks_.find(*pos);
      if (it->second.pins > 0) continue;
      pos = std::next(pos);  // stays valid: we erase the element before it
      Erase(it);
      ++stats_.evictions;
    }
  }

  // Constant after construction.
  const uint64_t capacity_;
  const absl::Duration max_ttl_;
  const uint64_t max_leases_;
  const uint64_t max_leases_per_client_;
  const std::function<absl::Time()> clock_;

  std::mutex mu_;
  // Guarded by mu_.
  BlockMap blocks_;
  std::list<BlockKey> lru_;  // most recently used first
  LeaseMap leases_;
  std::set<std::pair<absl::Time, LeaseId>> expiries_;
  // Live leases per LeaseOwner::client; only clients holding some.
  absl::flat_hash_map<std::string, uint64_t> leases_per_client_;
  uint64_t bytes_ = 0;
  uint64_t leased_blocks_ = 0;
  uint64_t leased_bytes_ = 0;
  StoreStats stats_;
};

}  // namespace
}  // namespace kvstore_internal

absl::StatusOr<std::unique_ptr<KvStore>> KvStore::Open(const Options& options) {
  if (options.capacity_bytes == 0) {
    return absl::InvalidArgumentError("KvStore capacity_bytes must be positive");
  }
  if (options.max_lease_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("KvStore max_lease_ttl must be positive");
  }
  return std::make_unique<kvstore_internal::LruKvStore>(options);
}

}  // namespace kvq::kvstore
