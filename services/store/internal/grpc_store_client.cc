#include "services/store/internal/grpc_store_client.h"

#include <xxhash.h>

#include <algorithm>
#include <map>
#include <random>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "kvstore/block_assembler.h"
#include "services/common/grpc_status.h"
#include "services/store/chunk_encoder.h"
#include "services/store/proto_convert.h"

namespace kvq::store {
namespace {

using services::FromGrpcStatus;

// The full names of the raw methods (as in the generated stub).
constexpr char kPutBlocksMethod[] = "/kvq.v1.KvStore/PutBlocks";
constexpr char kGetBlocksMethod[] = "/kvq.v1.KvStore/GetBlocks";

std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> OpenRawWriter(
    grpc::ChannelInterface* channel, const grpc::internal::RpcMethod& method,
    grpc::ClientContext* ctx, grpc::ByteBuffer* response) {
  // The call's metadata goes out with its first message.
  ctx->set_initial_metadata_corked(true);
  return std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>>(
      grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(channel, method, ctx,
                                                                    response));
}

template <typename Message>
absl::StatusOr<Message> ParseResponse(grpc::ByteBuffer& bytes) {
  Message m;
  grpc::ProtoBufferReader reader(&bytes);
  if (!m.ParseFromZeroCopyStream(&reader)) {
    return absl::InternalError(
        absl::StrCat("store sent a ", m.GetTypeName(), " that does not parse"));
  }
  return m;
}

// Decodes a GetBlocks stream: headers and missing keys from the first
// message, chunk data copied straight into the blocks being assembled.
class GetDecoder final : public ChunkSink {
 public:
  explicit GetDecoder(size_t n_keys) : n_keys_(n_keys) {}

  // Decodes one message; the first problem is kept (the caller keeps reading
  // to finish the call).
  void Decode(grpc::ByteBuffer& message) {
    v1::GetBlocksResponse rest;
    rest_ = &rest;
    headers_done_ = 0;
    grpc::ProtoBufferReader in(&message);
    absl::Status s = DecodeChunked(&in, kGetChunkField, &rest, *this);
    if (s.ok()) s = TakeHeaders();
    if (!s.ok() && error_.ok()) {
      error_ = s.code() == absl::StatusCode::kInternal
                   ? s
                   : absl::InternalError(absl::StrCat(
                         "store sent a bad GetBlocks message: ", s.message()));
    }
    if (first_) {
      first_ = false;
      lease_id_ = rest.lease_id();
      missing_.assign(rest.missing().begin(), rest.missing().end());
    }
    rest_ = nullptr;
  }

  absl::Status OnChunk(const ChunkHeader& chunk, ChunkData& data) override {
    KVQ_RETURN_IF_ERROR(TakeHeaders());
    auto it = assemblers_.find(chunk.block_id);
    if (it == assemblers_.end()) {
      return absl::InternalError("store sent a chunk of an unannounced block");
    }
    absl::Status s = it->second.AddChunk(
        chunk.layer, chunk.offset, chunk.size,
        [&](kvstore::BlockAssembler::PieceFn piece) { return data.ReadPieces(piece); });
    if (!s.ok()) {
      return absl::InternalError(absl::StrCat("store sent a bad chunk: ", s.message()));
    }
    return absl::OkStatus();
  }

  const absl::Status& error() const { return error_; }
  uint64_t lease_id() const { return lease_id_; }
  const std::vector<uint32_t>& missing() const { return missing_; }
  absl::flat_hash_map<uint32_t, kvstore::BlockAssembler>& assemblers() {
    return assemblers_;
  }

 private:
  absl::Status TakeHeaders() {
    for (; headers_done_ < rest_->headers_size(); ++headers_done_) {
      const v1::BlockHeader& h = rest_->headers(headers_done_);
      absl::StatusOr<kvstore::BlockMeta> meta = MetaFromProto(h.meta());
      if (h.block_id() >= n_keys_ || !meta.ok()) {
        return absl::InternalError("store sent an invalid block header");
      }
      absl::StatusOr<kvstore::BlockAssembler> a = kvstore::BlockAssembler::Create(*meta);
      if (a.ok()) assemblers_.emplace(h.block_id(), std::move(*a));
    }
    return absl::OkStatus();
  }

  const size_t n_keys_;
  v1::GetBlocksResponse* rest_ = nullptr;  // the message being decoded
  int headers_done_ = 0;
  bool first_ = true;
  absl::Status error_;
  uint64_t lease_id_ = 0;
  std::vector<uint32_t> missing_;
  absl::flat_hash_map<uint32_t, kvstore::BlockAssembler> assemblers_;
};

absl::Status CheckBlock(const kvstore::Block& b) {
  KVQ_RETURN_IF_ERROR(kvstore::ValidateMeta(b.meta));
  if (b.bytes == nullptr || b.bytes->size() != b.meta.block_bytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("block ", b.key.ToHex(), ": bytes do not match its metadata's size ",
                     b.meta.block_bytes()));
  }
  return absl::OkStatus();
}

v1::BlockHeader Header(uint32_t id, const kvstore::BlockKey& key,
                       const kvstore::BlockMeta& meta) {
  v1::BlockHeader h;
  h.set_block_id(id);
  h.set_key(key.ToBytes());
  *h.mutable_meta() = MetaToProto(meta);
  return h;
}

absl::StatusOr<kvstore::PutOutcome> OutcomeFromProto(v1::PutOutcome o) {
  switch (o) {
    case v1::PUT_OUTCOME_STORED:
      return kvstore::PutOutcome::kStored;
    case v1::PUT_OUTCOME_ALREADY_PRESENT:
      return kvstore::PutOutcome::kAlreadyPresent;
    default:
      return absl::InternalError("store answered a put without an outcome");
  }
}

uint32_t DurationMs(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return 0;
  return static_cast<uint32_t>(
      std::min<int64_t>(absl::ToInt64Milliseconds(d) + (d < absl::Milliseconds(1)),
                        std::numeric_limits<uint32_t>::max()));
}

}  // namespace

namespace store_internal {

GrpcStoreClient::GrpcStoreClient(const Options& options,
                                 const services::ChannelSecurity& security)
    : options_(options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  if (options.own_connections) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Blocks are hundreds of KiB: start with a large HTTP/2 receive window
  // instead of 64 KiB and waiting for BDP probing to grow it.
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
  // First socket reads of a connection sized for a block-sized message (1 MiB)
  // instead of gRPC's 8 KiB, which it only grows as reads fill up: a new
  // connection's first gets otherwise arrive in dozens of small reads.
  args.SetInt(GRPC_ARG_TCP_READ_CHUNK_SIZE, 1 << 20);
  for (const std::string& address : options.addresses) {
    std::shared_ptr<grpc::Channel> channel = security.CreateChannel(address, args);
    stubs_.push_back(v1::KvStore::NewStub(channel));
    raw_.emplace_back(channel);
  }
}

GrpcStoreClient::RawMethods::RawMethods(const std::shared_ptr<grpc::Channel>& c)
    : channel(c),
      put_blocks(kPutBlocksMethod, grpc::internal::RpcMethod::CLIENT_STREAMING, c),
      get_blocks(kGetBlocksMethod, grpc::internal::RpcMethod::SERVER_STREAMING, c) {}

size_t GrpcStoreClient::ShardOf(const kvstore::BlockKey& key) const {
  const std::string k = key.ToBytes();
  size_t best = 0;
  uint64_t best_score = 0;
  for (size_t i = 0; i < options_.addresses.size(); ++i) {
    const std::string input = absl::StrCat(k, options_.addresses[i]);
    const uint64_t score = XXH3_64bits(input.data(), input.size());
    if (i == 0 || score > best_score ||
        (score == best_score && options_.addresses[i] < options_.addresses[best])) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

absl::Status GrpcStoreClient::WithRetries(const std::function<absl::Status()>& fn) const {
  absl::Duration backoff = options_.initial_backoff;
  thread_local std::minstd_rand rng(std::random_device{}());
  absl::Status status;
  for (int attempt = 1;; ++attempt) {
    status = fn();
    if (status.code() != absl::StatusCode::kUnavailable ||
        attempt >= options_.max_attempts) {
      return status;
    }
    // Full jitter in [backoff/2, backoff].
    const double f = 0.5 + 0.5 * std::uniform_real_distribution<double>(0, 1)(rng);
    absl::SleepFor(backoff * f);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

std::unique_ptr<grpc::ClientContext> GrpcStoreClient::NewContext() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  if (!options_.auth_token.empty()) {
    ctx->AddMetadata("authorization", absl::StrCat("Bearer ", options_.auth_token));
  }
  return ctx;
}

std::vector<std::vector<size_t>> GrpcStoreClient::GroupByShard(
    absl::Span<const kvstore::BlockKey> keys) const {
  std::vector<std::vector<size_t>> groups(stubs_.size());
  for (size_t i = 0; i < keys.size(); ++i) groups[ShardOf(keys[i])].push_back(i);
  return groups;
}

absl::StatusOr<std::vector<kvstore::PutOutcome>> GrpcStoreClient::PutShard(
    size_t shard, const std::vector<const kvstore::Block*>& blocks) {
  std::vector<kvstore::PutOutcome> outcomes;
  int max_layers = 0;
  for (const kvstore::Block* b : blocks)
    max_layers = std::max(max_layers, b->meta.n_layers);
  // The messages: all headers, then layer by layer interleaved across
  // blocks, packed into messages of about chunk_bytes. Built once, sending
  // the blocks' bytes in place (a retry resends them as they are).
  std::vector<grpc::ByteBuffer> messages;
  {
    std::vector<grpc::Slice> slices;
    v1::PutBlocksRequest headers;
    for (size_t i = 0; i < blocks.size(); ++i) {
      *headers.add_headers() =
          Header(static_cast<uint32_t>(i), blocks[i]->key, blocks[i]->meta);
    }
    AppendMessage(headers, &slices);
    size_t pending = 0;
    for (int layer = 0; layer < max_layers; ++layer) {
      for (size_t i = 0; i < blocks.size(); ++i) {
        const kvstore::Block& b = *blocks[i];
        if (layer >= b.meta.n_layers) continue;
        const size_t lb = b.meta.layer_bytes(layer);
        const size_t at = b.meta.layer_offset(layer);
        for (size_t off = 0; off < lb;) {
          const size_t n = std::min<size_t>(lb - off, options_.chunk_bytes - pending);
          AppendChunk(kPutChunkField,
                      {.block_id = static_cast<uint32_t>(i),
                       .layer = static_cast<uint32_t>(layer),
                       .offset = off},
                      absl::string_view(b.bytes->data() + at + off, n), b.bytes, &slices);
          off += n;
          pending += n;
          if (pending >= options_.chunk_bytes) {
            messages.emplace_back(slices.data(), slices.size());
            slices.clear();
            pending = 0;
          }
        }
      }
    }
    if (!slices.empty()) messages.emplace_back(slices.data(), slices.size());
  }
  KVQ_RETURN_IF_ERROR(WithRetries([&]() -> absl::Status {
    std::unique_ptr<grpc::ClientContext> ctx = NewContext();
    grpc::ByteBuffer response_bytes;
    std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer = OpenRawWriter(
        raw_[shard].channel.get(), raw_[shard].put_blocks, ctx.get(), &response_bytes);
    bool ok = true;
    for (size_t m = 0; ok && m + 1 < messages.size(); ++m)
      ok = writer->Write(messages[m]);
    // The last message carries the half-close (one frame less per put).
    if (ok && !messages.empty()) {
      writer->WriteLast(messages.back(), grpc::WriteOptions());
    } else if (ok) {
      writer->WritesDone();
    }
    KVQ_RETURN_IF_ERROR(FromGrpcStatus(writer->Finish()));
    KVQ_ASSIGN_OR_RETURN(v1::PutBlocksResponse response,
                         ParseResponse<v1::PutBlocksResponse>(response_bytes));
    if (response.results_size() != static_cast<int>(blocks.size())) {
      return absl::InternalError(
          "store answered PutBlocks with the wrong number of results");
    }
    outcomes.clear();
    for (const v1::PutResult& r : response.results()) {
      KVQ_ASSIGN_OR_RETURN(kvstore::PutOutcome o, OutcomeFromProto(r.outcome()));
      outcomes.push_back(o);
    }
    return absl::OkStatus();
  }));
  return outcomes;
}

absl::StatusOr<std::vector<kvstore::PutOutcome>> GrpcStoreClient::PutBlocks(
    absl::Span<const kvstore::Block> blocks) {
  std::vector<kvstore::BlockKey> keys;
  for (const kvstore::Block& b : blocks) {
    KVQ_RETURN_IF_ERROR(CheckBlock(b));
    keys.push_back(b.key);
  }
  const std::vector<std::vector<size_t>> groups = GroupByShard(keys);
  std::vector<absl::StatusOr<std::vector<kvstore::PutOutcome>>> results(groups.size());
  auto put_shard = [this, &groups, &blocks, &results](size_t s) {
    std::vector<const kvstore::Block*> mine;
    for (size_t i : groups[s]) mine.push_back(&blocks[i]);
    results[s] = PutShard(s, mine);
  };
  std::vector<size_t> busy;
  for (size_t s = 0; s < groups.size(); ++s) {
    if (!groups[s].empty()) busy.push_back(s);
  }
  // Shards in parallel, the last one on this thread.
  std::vector<std::thread> threads;
  for (size_t k = 0; k + 1 < busy.size(); ++k) threads.emplace_back(put_shard, busy[k]);
  if (!busy.empty()) put_shard(busy.back());
  for (std::thread& t : threads) t.join();
  std::vector<kvstore::PutOutcome> outcomes(blocks.size());
  for (size_t s = 0; s < groups.size(); ++s) {
    if (groups[s].empty()) continue;
    if (!results[s].ok()) return results[s].status();
    for (size_t j = 0; j < groups[s].size(); ++j)
      outcomes[groups[s][j]] = (*results[s])[j];
  }
  return outcomes;
}

absl::StatusOr<GetResult> GrpcStoreClient::GetBlocks(
    absl::Span<const kvstore::BlockKey> keys, absl::Duration lease_ttl) {
  GetResult result;
  result.blocks.assign(keys.size(), absl::NotFoundError("not fetched"));
  const std::vector<std::vector<size_t>> groups = GroupByShard(keys);
  for (size_t s = 0; s < groups.size(); ++s) {
    const std::vector<size_t>& idx = groups[s];
    if (idx.empty()) continue;
    v1::GetBlocksRequest request;
    for (size_t i : idx) request.add_keys(keys[i].ToBytes());
    request.set_lease_ttl_ms(DurationMs(lease_ttl));
    request.set_max_chunk_bytes(options_.chunk_bytes);
    uint64_t lease_id = 0;
    absl::Status status = WithRetries([&]() -> absl::Status {
      std::unique_ptr<grpc::ClientContext> ctx = NewContext();
      std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
          grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
              raw_[s].channel.get(), raw_[s].get_blocks, ctx.get(), request));
      GetDecoder decoder(idx.size());
      grpc::ByteBuffer msg;
      while (reader->Read(&msg)) decoder.Decode(msg);
      KVQ_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish()));
      KVQ_RETURN_IF_ERROR(decoder.error());
      lease_id = decoder.lease_id();
      for (uint32_t m : decoder.missing()) {
        if (m < idx.size()) {
          result.blocks[idx[m]] = absl::NotFoundError(
              absl::StrCat("no block ", keys[idx[m]].ToHex(), " on ", address(s)));
        }
      }
      for (auto& [id, a] : decoder.assemblers()) {
        const size_t i = idx[id];
        if (!a.complete()) {
          result.blocks[i] = absl::DataLossError(
              absl::StrCat("block ", keys[i].ToHex(), " arrived incomplete"));
          continue;
        }
        const kvstore::BlockMeta meta = a.meta();
        const uint64_t checksum = a.Checksum();  // hashed as the chunks arrived
        auto bytes = std::make_shared<const std::string>(std::move(a).TakeBytes());
        if (checksum != meta.checksum) {
          result.blocks[i] = absl::DataLossError(
              absl::StrCat("block ", keys[i].ToHex(), " arrived corrupted"));
          continue;
        }
        result.blocks[i] = kvstore::Block{keys[i], meta, std::move(bytes)};
      }
      return absl::OkStatus();
    });
    if (!status.ok()) {
      for (size_t i : idx) result.blocks[i] = status;
    } else if (lease_id != 0) {
      result.leases.push_back({s, lease_id});
    }
  }
  return result;
}

absl::StatusOr<LookupResult> GrpcStoreClient::Lookup(
    absl::Span<const kvstore::BlockKey> keys, absl::Duration lease_ttl) {
  LookupResult result;
  result.present.assign(keys.size(), false);
  const std::vector<std::vector<size_t>> groups = GroupByShard(keys);
  for (size_t s = 0; s < groups.size(); ++s) {
    if (groups[s].empty()) continue;
    v1::LookupRequest request;
    for (size_t i : groups[s]) request.add_keys(keys[i].ToBytes());
    request.set_lease_ttl_ms(DurationMs(lease_ttl));
    v1::LookupResponse response;
    KVQ_RETURN_IF_ERROR(WithRetries([&] {
      response.Clear();
      return FromGrpcStatus(stubs_[s]->Lookup(NewContext().get(), request, &response));
    }));
    if (response.present_size() != static_cast<int>(groups[s].size())) {
      return absl::InternalError("store answered Lookup with the wrong number of keys");
    }
    for (size_t j = 0; j < groups[s].size(); ++j) {
      result.present[groups[s][j]] = response.present(static_cast<int>(j));
    }
    if (response.lease_id() != 0) result.leases.push_back({s, response.lease_id()});
  }
  while (result.present_prefix < keys.size() && result.present[result.present_prefix]) {
    ++result.present_prefix;
  }
  return result;
}

absl::Status GrpcStoreClient::RenewLeases(absl::Span<const ShardLease> leases,
                                          absl::Duration ttl) {
  absl::Status first;
  for (const ShardLease& l : leases) {
    if (l.shard >= stubs_.size())
      return absl::InvalidArgumentError("lease of an unknown shard");
    v1::RenewLeaseRequest request;
    request.set_lease_id(l.id);
    request.set_ttl_ms(DurationMs(ttl));
    absl::Status s = WithRetries([&] {
      v1::RenewLeaseResponse response;
      return FromGrpcStatus(
          stubs_[l.shard]->RenewLease(NewContext().get(), request, &response));
    });
    if (first.ok()) first = s;
  }
  return first;
}

absl::Status GrpcStoreClient::ReleaseLeases(absl::Span<const ShardLease> leases) {
  absl::Status first;
  for (const ShardLease& l : leases) {
    if (l.shard >= stubs_.size())
      return absl::InvalidArgumentError("lease of an unknown shard");
    v1::ReleaseLeaseRequest request;
    request.set_lease_id(l.id);
    absl::Status s = WithRetries([&] {
      v1::ReleaseLeaseResponse response;
      return FromGrpcStatus(
          stubs_[l.shard]->ReleaseLease(NewContext().get(), request, &response));
    });
    if (first.ok()) first = s;
  }
  return first;
}

std::vector<absl::Status> GrpcStoreClient::Delete(
    absl::Span<const kvstore::BlockKey> keys) {
  std::vector<absl::Status> out(keys.size());
  const std::vector<std::vector<size_t>> groups = GroupByShard(keys);
  for (size_t s = 0; s < groups.size(); ++s) {
    if (groups[s].empty()) continue;
    v1::DeleteBlocksRequest request;
    for (size_t i : groups[s]) request.add_keys(keys[i].ToBytes());
    v1::DeleteBlocksResponse response;
    absl::Status status = WithRetries([&] {
      response.Clear();
      return FromGrpcStatus(
          stubs_[s]->DeleteBlocks(NewContext().get(), request, &response));
    });
    if (status.ok() && response.codes_size() != static_cast<int>(groups[s].size())) {
      status =
          absl::InternalError("store answered Delete with the wrong number of codes");
    }
    for (size_t j = 0; j < groups[s].size(); ++j) {
      out[groups[s][j]] =
          !status.ok()
              ? status
              : absl::Status(static_cast<absl::StatusCode>(response.codes(j)),
                             response.codes(j) == 0 ? "" : keys[groups[s][j]].ToHex());
    }
  }
  return out;
}

absl::StatusOr<kvstore::StoreStats> GrpcStoreClient::Stats(size_t shard) {
  if (shard >= stubs_.size()) return absl::InvalidArgumentError("no such shard");
  v1::StoreStatsResponse response;
  KVQ_RETURN_IF_ERROR(WithRetries([&] {
    response.Clear();
    return FromGrpcStatus(
        stubs_[shard]->Stats(NewContext().get(), v1::StoreStatsRequest(), &response));
  }));
  return StatsFromProto(response);
}

// One lazily opened PutBlocks stream per shard.
class BlockWriterImpl final : public BlockWriter {
 public:
  explicit BlockWriterImpl(GrpcStoreClient* client)
      : client_(client), streams_(client->num_shards()) {}

  ~BlockWriterImpl() override {
    for (Stream& s : streams_) {
      if (s.writer != nullptr && !s.finished) s.ctx->TryCancel();
      if (s.writer != nullptr && !s.finished) (void)s.writer->Finish();
    }
  }

  absl::StatusOr<int> Announce(const kvstore::BlockKey& key,
                               const kvstore::BlockMeta& meta) override {
    return AnnounceImpl(key, meta, /*checksum_follows=*/false);
  }

  absl::StatusOr<int> AnnounceUnsealed(const kvstore::BlockKey& key,
                                       const kvstore::BlockMeta& meta) override {
    return AnnounceImpl(key, meta, /*checksum_follows=*/true);
  }

  absl::Status Seal(int id, uint64_t checksum) override {
    if (id < 0 || id >= static_cast<int>(blocks_.size()) || !blocks_[id].unsealed) {
      return absl::InvalidArgumentError(
          absl::StrCat("no block ", id, " announced unsealed"));
    }
    blocks_[id].unsealed = false;
    Stream& s = streams_[blocks_[id].shard];
    v1::BlockSeal* seal = s.pending.add_seals();
    seal->set_block_id(static_cast<uint32_t>(id));
    seal->set_checksum(checksum);
    return Send(s);
  }

 private:
  absl::StatusOr<int> AnnounceImpl(const kvstore::BlockKey& key,
                                   const kvstore::BlockMeta& meta,
                                   bool checksum_follows) {
    KVQ_RETURN_IF_ERROR(kvstore::ValidateMeta(meta));
    const int id = static_cast<int>(blocks_.size());
    const size_t shard = client_->ShardOf(key);
    Stream& s = streams_[shard];
    if (s.writer == nullptr) {
      s.ctx = client_->NewContext();
      s.writer = OpenRawWriter(client_->raw_[shard].channel.get(),
                               client_->raw_[shard].put_blocks, s.ctx.get(), &s.response);
    }
    v1::BlockHeader* h = s.pending.add_headers();
    *h = Header(static_cast<uint32_t>(id), key, meta);
    h->set_checksum_follows(checksum_follows);
    blocks_.push_back({shard, meta, static_cast<int>(s.ids.size()), checksum_follows});
    s.ids.push_back(id);
    return id;
  }

 public:
  absl::Status WriteLayer(int id, int layer, absl::string_view part) override {
    if (id < 0 || id >= static_cast<int>(blocks_.size())) {
      return absl::InvalidArgumentError(absl::StrCat("no announced block ", id));
    }
    const BlockInfo& b = blocks_[id];
    if (layer < 0 || layer >= b.meta.n_layers ||
        part.size() != b.meta.layer_bytes(layer)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer ", layer, " of block ", id, ": expected ",
          layer >= 0 && layer < b.meta.n_layers ? b.meta.layer_bytes(layer) : 0,
          " bytes, got ", part.size()));
    }
    Stream& s = streams_[b.shard];
    for (size_t off = 0; off < part.size() || off == 0;) {
      const size_t n = std::min<size_t>(part.size() - off, client_->options_.chunk_bytes);
      // The caller's buffer is not ours to keep: copied once, into the slice.
      AppendChunk(kPutChunkField,
                  {.block_id = static_cast<uint32_t>(id),
                   .layer = static_cast<uint32_t>(layer),
                   .offset = off},
                  part.substr(off, n), /*owner=*/nullptr, &s.chunks);
      off += n;
      KVQ_RETURN_IF_ERROR(Send(s));
      if (part.empty()) break;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<kvstore::PutOutcome>> Finish() override {
    std::vector<kvstore::PutOutcome> outcomes(blocks_.size());
    absl::Status first;
    for (Stream& s : streams_) {
      if (!s.error.ok() && first.ok()) first = s.error;
      if (s.writer == nullptr || s.finished) continue;
      absl::Status st = Send(s);
      if (st.ok()) s.writer->WritesDone();
      s.finished = true;
      st = FromGrpcStatus(s.writer->Finish());
      v1::PutBlocksResponse response;
      if (st.ok()) {
        absl::StatusOr<v1::PutBlocksResponse> parsed =
            ParseResponse<v1::PutBlocksResponse>(s.response);
        if (parsed.ok()) response = std::move(*parsed);
        st = parsed.status();
      }
      if (st.ok() && response.results_size() != static_cast<int>(s.ids.size())) {
        st = absl::InternalError(
            "store answered PutBlocks with the wrong number of results");
      }
      for (size_t j = 0; st.ok() && j < s.ids.size(); ++j) {
        absl::StatusOr<kvstore::PutOutcome> o =
            OutcomeFromProto(response.results(static_cast<int>(j)).outcome());
        if (!o.ok()) st = o.status();
        if (o.ok()) outcomes[s.ids[j]] = *o;
      }
      if (first.ok()) first = st;
    }
    if (!first.ok()) return first;
    return outcomes;
  }

 private:
  struct Stream {
    std::unique_ptr<grpc::ClientContext> ctx;
    grpc::ByteBuffer response;
    std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer;
    v1::PutBlocksRequest pending;     // headers and seals not sent yet
    std::vector<grpc::Slice> chunks;  // encoded chunks not sent yet
    std::vector<int> ids;             // announced block ids, in order
    bool finished = false;
    absl::Status error;  // why the stream broke, if it did
  };
  struct BlockInfo {
    size_t shard;
    kvstore::BlockMeta meta;
    int index_in_stream;
    bool unsealed;  // announced unsealed, Seal not yet sent
  };

  absl::Status Send(Stream& s) {
    if (s.finished) {
      return s.error.ok() ? absl::FailedPreconditionError("stream already finished")
                          : s.error;
    }
    if (s.pending.headers_size() == 0 && s.chunks.empty() && s.pending.seals_size() == 0)
      return absl::OkStatus();
    // Headers (and seals) first: a block's header precedes its chunks.
    std::vector<grpc::Slice> slices;
    AppendMessage(s.pending, &slices);
    for (grpc::Slice& c : s.chunks) slices.push_back(std::move(c));
    const bool ok = s.writer->Write(grpc::ByteBuffer(slices.data(), slices.size()));
    s.pending.Clear();
    s.chunks.clear();
    if (ok) return absl::OkStatus();
    s.finished = true;
    absl::Status st = FromGrpcStatus(s.writer->Finish());
    s.error =
        st.ok() ? absl::UnavailableError("PutBlocks stream closed by the store") : st;
    return s.error;
  }

  GrpcStoreClient* const client_;
  std::vector<Stream> streams_;
  std::vector<BlockInfo> blocks_;
};

absl::StatusOr<std::unique_ptr<BlockWriter>> GrpcStoreClient::OpenWriter() {
  return std::unique_ptr<BlockWriter>(new BlockWriterImpl(this));
}

}  // namespace store_internal

std::vector<std::string> ParseAddressList(absl::string_view list) {
  return absl::StrSplit(list, ',', absl::SkipWhitespace());
}

absl::StatusOr<std::unique_ptr<StoreClient>> StoreClient::Create(const Options& options) {
  if (options.addresses.empty()) {
    return absl::InvalidArgumentError("StoreClient needs at least one store address");
  }
  absl::flat_hash_set<std::string> seen;
  for (const std::string& a : options.addresses) {
    if (a.empty() || !seen.insert(a).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("empty or repeated store address '", a, "'"));
    }
  }
  if (options.chunk_bytes == 0 ||
      options.chunk_bytes + (64 << 10) > options.max_message_bytes ||
      options.max_attempts < 1 || options.deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "StoreClient: chunk_bytes must be positive and 64 KiB below max_message_bytes; "
        "max_attempts >= 1; deadline > 0");
  }
  absl::StatusOr<services::ChannelSecurity> security =
      services::ChannelSecurity::Create(options.tls);
  if (!security.ok()) return security.status();
  return std::unique_ptr<StoreClient>(
      new store_internal::GrpcStoreClient(options, *security));
}

}  // namespace kvq::store
