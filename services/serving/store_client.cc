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
      ready_.clear();
      closing_ = true;
      cv_.notify_all();
    }
    sender_.join();
    // The writer's streams are cancelled when it is destroyed: nothing of an
    // unfinished stream becomes visible.
  }
}

void BlockPutStream::AddLayerPart(uint32_t id, int layer, std::string bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string>& parts = parts_[id];
  if (parts.size() <= static_cast<size_t>(layer)) parts.resize(layer + 1);
  parts[layer] = std::move(bytes);
}

void BlockPutStream::Seal(uint32_t id, const kvstore::BlockKey& key,
                          kvstore::BlockMeta meta) {
  Item item{key, meta, {}};
  {
    std::lock_guard<std::mutex> lock(mu_);
    item.parts = std::move(parts_[id]);
    parts_.erase(id);
  }
  std::string whole;
  for (const std::string& p : item.parts) whole += p;
  item.meta.checksum = kvstore::BlockChecksum(whole);
  std::lock_guard<std::mutex> lock(mu_);
  ready_.push_back(std::move(item));
  cv_.notify_all();
}

void BlockPutStream::SendLoop() {
  while (true) {
    Item item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return closing_ || !ready_.empty(); });
      if (ready_.empty()) return;
      item = std::move(ready_.front());
      ready_.pop_front();
      if (!error_.ok()) continue;
    }
    absl::Status s;
    uint64_t sent = 0;
    absl::StatusOr<int> id = writer_->Announce(item.key, item.meta);
    s = id.status();
    for (size_t layer = 0; s.ok() && layer < item.parts.size(); ++layer) {
      s = writer_->WriteLayer(*id, static_cast<int>(layer), item.parts[layer]);
      sent += item.parts[layer].size();
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
