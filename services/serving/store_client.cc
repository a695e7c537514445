#include "services/serving/store_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace kvq::serving {

// ---------------------------------------------------------------------------
// BlockPutStream

BlockPutStream::BlockPutStream(std::unique_ptr<store::BlockWriter> writer)
    : writer_(std::move(writer)) {
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
// StoreClient

absl::StatusOr<std::unique_ptr<StoreClient>> StoreClient::Connect(
    const std::string& addresses, absl::Duration timeout) {
  store::StoreClient::Options options;
  options.addresses = store::ParseAddressList(addresses);
  if (options.addresses.empty()) return absl::InvalidArgumentError("no KV store address");
  options.deadline = timeout;
  KVQ_ASSIGN_OR_RETURN(std::unique_ptr<store::StoreClient> client,
                       store::StoreClient::Create(options));
  return std::unique_ptr<StoreClient>(new StoreClient(std::move(client)));
}

absl::StatusOr<int> StoreClient::Lookup(absl::Span<const kvstore::BlockKey> keys) {
  if (keys.empty()) return 0;
  KVQ_ASSIGN_OR_RETURN(store::LookupResult r, client_->Lookup(keys));
  return static_cast<int>(r.present_prefix);
}

absl::StatusOr<std::vector<kvstore::Block>> StoreClient::GetBlocks(
    absl::Span<const kvstore::BlockKey> keys) {
  std::vector<kvstore::Block> out;
  if (keys.empty()) return out;
  KVQ_ASSIGN_OR_RETURN(store::GetResult r, client_->GetBlocks(keys));
  for (size_t i = 0; i < keys.size(); ++i) {
    absl::StatusOr<kvstore::Block>& b = r.blocks[i];
    if (b.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat(
          "the KV store does not hold block ", i, " (key ", keys[i].ToHex(), ") of ",
          keys.size(), " requested; it was never stored, was evicted, or was deleted"));
    }
    if (!b.ok()) return b.status();
    out.push_back(std::move(*b));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<BlockPutStream>> StoreClient::OpenPut() {
  KVQ_ASSIGN_OR_RETURN(std::unique_ptr<store::BlockWriter> writer, client_->OpenWriter());
  return std::make_unique<BlockPutStream>(std::move(writer));
}

}  // namespace kvq::serving
