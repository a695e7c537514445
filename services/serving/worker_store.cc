#include "services/serving/worker_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace kvq::serving {

// ---------------------------------------------------------------------------
// BlockPutStream

BlockPutStream::BlockPutStream(std::unique_ptr<store::BlockWriter> writer,
                               std::shared_ptr<const void> owner)
    : owner_(std::move(owner)), writer_(std::move(writer)) {
  sender_ = std::thread([this] { SendLoop(); });
}

BlockPutStream::~BlockPutStream() {
  if (!finished_) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ops_.clear();
      closing_ = true;
      cv_.notify_all();
    }
    sender_.join();
    // The writer's streams are cancelled when it is destroyed: blocks of an
    // unfinished stream never become visible.
  }
}

void BlockPutStream::Enqueue(Op op) {
  std::lock_guard<std::mutex> lock(mu_);
  ops_.push_back(std::move(op));
  cv_.notify_all();
}

void BlockPutStream::Announce(uint32_t id, const kvstore::BlockKey& key,
                              const kvstore::BlockMeta& meta) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto state = std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)>(
        XXH3_createState(), XXH3_freeState);
    XXH3_64bits_reset(state.get());
    hashes_.insert_or_assign(id, std::move(state));
  }
  Op op{Op::kAnnounce};
  op.id = id;
  op.key = key;
  op.meta = meta;
  Enqueue(std::move(op));
}

void BlockPutStream::AddLayerPart(uint32_t id, int layer, std::string bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = hashes_.find(id);
    if (it != hashes_.end())
      XXH3_64bits_update(it->second.get(), bytes.data(), bytes.size());
  }
  Op op{Op::kLayer};
  op.id = id;
  op.layer = layer;
  op.bytes = std::move(bytes);
  Enqueue(std::move(op));
}

void BlockPutStream::Seal(uint32_t id) {
  Op op{Op::kSeal};
  op.id = id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = hashes_.find(id);
    if (it != hashes_.end()) {
      op.checksum = XXH3_64bits_digest(it->second.get());
      hashes_.erase(it);
    }
  }
  Enqueue(std::move(op));
}

void BlockPutStream::SendLoop() {
  while (true) {
    Op op;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return closing_ || !ops_.empty(); });
      if (ops_.empty()) return;
      op = std::move(ops_.front());
      ops_.pop_front();
      if (!error_.ok()) continue;
    }
    absl::Status s;
    uint64_t sent = 0;
    switch (op.kind) {
      case Op::kAnnounce: {
        absl::StatusOr<int> wid = writer_->AnnounceUnsealed(op.key, op.meta);
        s = wid.status();
        if (s.ok()) writer_ids_[op.id] = *wid;
        break;
      }
      case Op::kLayer:
        s = writer_->WriteLayer(writer_ids_.at(op.id), op.layer, op.bytes);
        sent = op.bytes.size();
        break;
      case Op::kSeal:
        s = writer_->Seal(writer_ids_.at(op.id), op.checksum);
        break;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (s.ok()) bytes_sent_ += sent;
    if (!s.ok() && error_.ok()) error_ = s;
  }
}

absl::Status BlockPutStream::Finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
    cv_.notify_all();
  }
  sender_.join();
  finished_ = true;
  absl::StatusOr<std::vector<kvstore::PutOutcome>> outcomes = writer_->Finish();
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_.ok()) return error_;
  return outcomes.status();
}

uint64_t BlockPutStream::bytes_sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_sent_;
}

// ---------------------------------------------------------------------------
// WorkerStore

absl::StatusOr<std::unique_ptr<WorkerStore>> WorkerStore::Connect(
    const std::string& addresses, absl::Duration timeout,
    const Credentials& credentials) {
  store::StoreClient::Options options;
  options.auth_token = credentials.auth_token;
  options.tls = credentials.tls;
  options.addresses = store::ParseAddressList(addresses);
  if (options.addresses.empty()) return absl::InvalidArgumentError("no KV store address");
  options.deadline = timeout;
  // Connections of our own, so that a replacement client (StoreError) gets
  // fresh ones instead of the process-wide subchannels in reconnect backoff.
  options.own_connections = true;
  KVQ_ASSIGN_OR_RETURN(std::unique_ptr<store::StoreClient> client,
                       store::StoreClient::Create(options));
  return std::unique_ptr<WorkerStore>(
      new WorkerStore(options, addresses, std::move(client)));
}

WorkerStore::WorkerStore(const store::StoreClient::Options& options,
                         std::string addresses,
                         std::shared_ptr<store::StoreClient> client)
    : options_(options), addresses_(std::move(addresses)), client_(std::move(client)) {
  background_ = std::thread([this] { BackgroundLoop(); });
}

WorkerStore::~WorkerStore() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    background_cv_.notify_all();
  }
  background_.join();
}

void WorkerStore::ReleaseLeasesLater(std::vector<store::ShardLease> leases) {
  if (leases.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  to_release_.push_back(std::move(leases));
  background_cv_.notify_all();
}

uint64_t WorkerStore::Hold(std::vector<store::ShardLease> leases, absl::Duration ttl) {
  if (leases.empty() || ttl <= absl::ZeroDuration()) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_hold_id_++;
  const absl::Duration every = std::max(ttl / 3, absl::Milliseconds(10));
  held_[id] = Held{std::move(leases), ttl, absl::Now() + every};
  background_cv_.notify_all();
  return id;
}

void WorkerStore::Unhold(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  held_.erase(id);
}

void WorkerStore::BackgroundLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (!to_release_.empty()) {
      std::vector<store::ShardLease> leases = std::move(to_release_.front());
      to_release_.pop_front();
      lock.unlock();
      (void)ReleaseLeases(leases);
      lock.lock();
      continue;
    }
    if (stopping_) return;
    absl::Time due = absl::InfiniteFuture();
    uint64_t due_id = 0;
    for (const auto& [id, h] : held_) {
      if (h.next_renewal < due) {
        due = h.next_renewal;
        due_id = id;
      }
    }
    if (due_id != 0 && due <= absl::Now()) {
      Held& h = held_[due_id];
      h.next_renewal = absl::Now() + std::max(h.ttl / 3, absl::Milliseconds(10));
      const std::vector<store::ShardLease> leases = h.leases;
      const absl::Duration ttl = h.ttl;
      lock.unlock();
      const bool renewed = RenewLeases(leases, ttl).ok();
      lock.lock();
      if (!renewed) held_.erase(due_id);
      continue;
    }
    // Woken by a release, a new hold or stopping; the loop re-checks all.
    if (due_id == 0) {
      background_cv_.wait(lock);
    } else {
      background_cv_.wait_until(lock, absl::ToChronoTime(due));
    }
  }
}

std::shared_ptr<store::StoreClient> WorkerStore::client() const {
  std::lock_guard<std::mutex> lock(mu_);
  return client_;
}

int WorkerStore::ShardIndex(const std::string& address) const {
  for (size_t i = 0; i < options_.addresses.size(); ++i) {
    if (options_.addresses[i] == address) return static_cast<int>(i);
  }
  return -1;
}

absl::Status WorkerStore::StoreError(const absl::Status& status, absl::string_view what) {
  if (status.ok()) return status;
  absl::StatusCode code = status.code();
  if (code == absl::StatusCode::kDeadlineExceeded) code = absl::StatusCode::kUnavailable;
  if (code == absl::StatusCode::kUnavailable) {
    absl::StatusOr<std::unique_ptr<store::StoreClient>> fresh =
        store::StoreClient::Create(options_);
    if (fresh.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      client_ = std::move(*fresh);
    }
    return absl::UnavailableError(absl::StrCat("the KV store at ", addresses_,
                                               " is unavailable (", what,
                                               "): ", status.message()));
  }
  return absl::Status(
      code, absl::StrCat(what, " at the KV store ", addresses_, ": ", status.message()));
}

absl::StatusOr<store::LookupResult> WorkerStore::Lookup(
    absl::Span<const kvstore::BlockKey> keys, absl::Duration lease_ttl) {
  if (keys.empty()) return store::LookupResult();
  absl::StatusOr<store::LookupResult> r = client()->Lookup(keys, lease_ttl);
  if (!r.ok()) return StoreError(r.status(), "Lookup");
  return r;
}

absl::StatusOr<std::vector<kvstore::Block>> WorkerStore::GetBlocks(
    absl::Span<const kvstore::BlockKey> keys) {
  KVQ_ASSIGN_OR_RETURN(std::vector<kvstore::Block> out, GetLeadingBlocks(keys));
  if (out.size() < keys.size()) {
    const size_t i = out.size();
    return absl::NotFoundError(absl::StrCat(
        "the KV store does not hold block ", i, " (key ", keys[i].ToHex(), ") of ",
        keys.size(), " requested; it was never stored, was evicted, or was deleted"));
  }
  return out;
}

absl::StatusOr<std::vector<kvstore::Block>> WorkerStore::GetLeadingBlocks(
    absl::Span<const kvstore::BlockKey> keys) {
  std::vector<kvstore::Block> out;
  if (keys.empty()) return out;
  absl::StatusOr<store::GetResult> r = client()->GetBlocks(keys);
  if (!r.ok()) return StoreError(r.status(), "GetBlocks");
  for (size_t i = 0; i < keys.size(); ++i) {
    absl::StatusOr<kvstore::Block>& b = r->blocks[i];
    if (b.status().code() == absl::StatusCode::kNotFound) break;
    if (!b.ok()) return StoreError(b.status(), "GetBlocks");
    out.push_back(std::move(*b));
  }
  return out;
}

absl::Status WorkerStore::PutBlocks(absl::Span<const kvstore::Block> blocks) {
  if (blocks.empty()) return absl::OkStatus();
  return StoreError(client()->PutBlocks(blocks).status(), "PutBlocks");
}

absl::StatusOr<std::unique_ptr<BlockPutStream>> WorkerStore::OpenPut() {
  std::shared_ptr<store::StoreClient> c = client();
  absl::StatusOr<std::unique_ptr<store::BlockWriter>> writer = c->OpenWriter();
  if (!writer.ok()) return StoreError(writer.status(), "PutBlocks");
  return std::make_unique<BlockPutStream>(std::move(*writer), std::move(c));
}

absl::Status WorkerStore::RenewLeases(absl::Span<const store::ShardLease> leases,
                                      absl::Duration ttl) {
  if (leases.empty()) return absl::OkStatus();
  return StoreError(client()->RenewLeases(leases, ttl), "RenewLease");
}

absl::Status WorkerStore::ReleaseLeases(absl::Span<const store::ShardLease> leases) {
  if (leases.empty()) return absl::OkStatus();
  return StoreError(client()->ReleaseLeases(leases), "ReleaseLease");
}

// ---------------------------------------------------------------------------
// HeldLeases

HeldLeases::HeldLeases(WorkerStore* store, std::vector<store::ShardLease> leases,
                       absl::Duration ttl)
    : store_(store), leases_(std::move(leases)) {
  if (store_ != nullptr) hold_ = store_->Hold(leases_, ttl);
}

void HeldLeases::Release() {
  if (store_ == nullptr) return;
  if (hold_ != 0) store_->Unhold(std::exchange(hold_, 0));
  store_->ReleaseLeasesLater(std::exchange(leases_, {}));
}

std::vector<store::ShardLease> HeldLeases::Take() {
  if (store_ != nullptr && hold_ != 0) store_->Unhold(std::exchange(hold_, 0));
  return std::exchange(leases_, {});
}

}  // namespace kvq::serving
