#include "services/serving/store_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "grpcpp/create_channel.h"
#include "kvstore/block_assembler.h"
#include "services/store/proto_convert.h"

namespace kvq::serving {
namespace {

absl::Status FromGrpcStatus(const grpc::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

}  // namespace

// ---------------------------------------------------------------------------
// BlockPutStream

BlockPutStream::BlockPutStream(v1::KvStore::Stub* stub, absl::Time deadline,
                               size_t chunk_bytes)
    : chunk_bytes_(chunk_bytes) {
  context_.set_deadline(absl::ToChronoTime(deadline));
  writer_ = stub->PutBlocks(&context_, &response_);
  sender_ = std::thread([this] { SendLoop(); });
}

BlockPutStream::~BlockPutStream() {
  if (!finished_) {
    context_.TryCancel();
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
      cv_.notify_all();
    }
    sender_.join();
    writer_->Finish();
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
  std::lock_guard<std::mutex> lock(mu_);
  Item item{id, key, meta, std::move(parts_[id])};
  parts_.erase(id);
  std::string whole;
  for (const std::string& p : item.parts) whole += p;
  item.meta.checksum = kvstore::BlockChecksum(whole);
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
      if (write_failed_) continue;
    }
    v1::PutBlocksRequest head;
    v1::BlockHeader* h = head.add_headers();
    h->set_block_id(item.id);
    h->set_key(item.key.ToBytes());
    *h->mutable_meta() = store::MetaToProto(item.meta);
    bool ok = writer_->Write(head);
    uint64_t sent = 0;
    for (size_t layer = 0; ok && layer < item.parts.size(); ++layer) {
      const std::string& part = item.parts[layer];
      for (size_t off = 0; ok && off < part.size(); off += chunk_bytes_) {
        v1::PutBlocksRequest msg;
        v1::BlockChunk* c = msg.add_chunks();
        c->set_block_id(item.id);
        c->set_layer(static_cast<uint32_t>(layer));
        c->set_offset(off);
        c->set_data(part.substr(off, chunk_bytes_));
        sent += c->data().size();
        ok = writer_->Write(msg);
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    bytes_sent_ += sent;
    if (!ok) write_failed_ = true;
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
  writer_->WritesDone();
  return FromGrpcStatus(writer_->Finish(), "KV store PutBlocks");
}

uint64_t BlockPutStream::bytes_sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_sent_;
}

// ---------------------------------------------------------------------------
// StoreClient

absl::StatusOr<std::unique_ptr<StoreClient>> StoreClient::Connect(
    const std::string& address) {
  if (address.empty()) return absl::InvalidArgumentError("no KV store address");
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(8 << 20);
  auto channel =
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  return std::unique_ptr<StoreClient>(
      new StoreClient(address, v1::KvStore::NewStub(channel)));
}

absl::StatusOr<int> StoreClient::Lookup(absl::Span<const kvstore::BlockKey> keys,
                                        absl::Time deadline) {
  if (keys.empty()) return 0;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  v1::LookupRequest req;
  for (const auto& k : keys) req.add_keys(k.ToBytes());
  v1::LookupResponse resp;
  KVQ_RETURN_IF_ERROR(FromGrpcStatus(stub_->Lookup(&ctx, req, &resp), "KV store Lookup"));
  if (resp.present_prefix() > keys.size()) {
    return absl::InternalError("KV store Lookup answered more blocks than asked");
  }
  return static_cast<int>(resp.present_prefix());
}

absl::StatusOr<std::vector<kvstore::Block>> StoreClient::GetBlocks(
    absl::Span<const kvstore::BlockKey> keys, absl::Time deadline) {
  std::vector<kvstore::Block> out(keys.size());
  if (keys.empty()) return out;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  v1::GetBlocksRequest req;
  for (const auto& k : keys) req.add_keys(k.ToBytes());
  auto reader = stub_->GetBlocks(&ctx, req);
  std::vector<std::unique_ptr<kvstore::BlockAssembler>> parts(keys.size());
  v1::GetBlocksResponse msg;
  absl::Status error;
  while (error.ok() && reader->Read(&msg)) {
    if (msg.missing_size() > 0) {
      const uint32_t i = msg.missing(0);
      error = absl::NotFoundError(absl::StrCat(
          "the KV store does not hold block ", i, " (key ",
          i < keys.size() ? keys[i].ToHex() : "?", ") of ", keys.size(),
          " requested; it was never stored, was evicted, or belongs to another store"));
      break;
    }
    for (const v1::BlockHeader& h : msg.headers()) {
      if (h.block_id() >= keys.size()) {
        error = absl::InternalError("KV store sent a block that was not requested");
        break;
      }
      auto meta = store::MetaFromProto(h.meta());
      if (!meta.ok()) {
        error = meta.status();
        break;
      }
      auto a = kvstore::BlockAssembler::Create(*meta);
      if (!a.ok()) {
        error = a.status();
        break;
      }
      parts[h.block_id()] = std::make_unique<kvstore::BlockAssembler>(std::move(*a));
      out[h.block_id()].key = keys[h.block_id()];
      out[h.block_id()].meta = *meta;
    }
    for (const v1::BlockChunk& c : msg.chunks()) {
      if (!error.ok()) break;
      if (c.block_id() >= keys.size() || parts[c.block_id()] == nullptr) {
        error = absl::InternalError("KV store sent a chunk of an unannounced block");
        break;
      }
      error = parts[c.block_id()]->AddChunk(c.layer(), c.offset(), c.data());
    }
  }
  if (!error.ok()) {
    ctx.TryCancel();
    reader->Finish();
    return error;
  }
  KVQ_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish(), "KV store GetBlocks"));
  for (size_t i = 0; i < keys.size(); ++i) {
    if (parts[i] == nullptr || !parts[i]->complete()) {
      return absl::DataLossError(
          absl::StrCat("KV store GetBlocks ended before block ", i, " was complete"));
    }
    std::string bytes = std::move(*parts[i]).TakeBytes();
    if (kvstore::BlockChecksum(bytes) != out[i].meta.checksum) {
      return absl::DataLossError(
          absl::StrCat("block ", keys[i].ToHex(), " failed its checksum after transfer"));
    }
    out[i].bytes = std::make_shared<const std::string>(std::move(bytes));
  }
  return out;
}

std::unique_ptr<BlockPutStream> StoreClient::OpenPut(absl::Time deadline) {
  return std::make_unique<BlockPutStream>(stub_.get(), deadline, size_t{1} << 20);
}

absl::StatusOr<v1::StoreStatsResponse> StoreClient::Stats(absl::Time deadline) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  v1::StoreStatsResponse resp;
  KVQ_RETURN_IF_ERROR(FromGrpcStatus(stub_->Stats(&ctx, v1::StoreStatsRequest(), &resp),
                                     "KV store Stats"));
  return resp;
}

}  // namespace kvq::serving
