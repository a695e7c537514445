#include "services/store/put_session.h"

#include <cstring>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "services/store/chunk_decoder.h"
#include "services/store/proto_convert.h"

namespace kvq::store {

PutSession::AssemblyBudget::AssemblyBudget(uint64_t max_bytes,
                                           uint64_t max_bytes_per_client)
    : max_bytes_(max_bytes), max_bytes_per_client_(max_bytes_per_client) {}

absl::Status PutSession::AssemblyBudget::Take(absl::string_view client, uint64_t bytes,
                                              absl::string_view what) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t used = used_.load(std::memory_order_relaxed);
  if (max_bytes_ > 0 && (bytes > max_bytes_ || used > max_bytes_ - bytes)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, ": the store is receiving ", used, " bytes of blocks, its limit is ",
        max_bytes_, " (--max_assembling_bytes); retry later"));
  }
  auto it = per_client_.find(client);
  const uint64_t mine = it == per_client_.end() ? 0 : it->second;
  if (max_bytes_per_client_ > 0 &&
      (bytes > max_bytes_per_client_ || mine > max_bytes_per_client_ - bytes)) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": client ", client, " is sending ", mine,
                     " bytes of blocks, its limit is ", max_bytes_per_client_,
                     " (--max_assembling_bytes_per_client); finish some blocks first"));
  }
  if (it == per_client_.end()) it = per_client_.emplace(std::string(client), 0).first;
  it->second += bytes;
  used_.store(used + bytes, std::memory_order_relaxed);
  return absl::OkStatus();
}

void PutSession::AssemblyBudget::Give(absl::string_view client, uint64_t bytes) {
  if (bytes == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  used_.store(used_.load(std::memory_order_relaxed) - bytes, std::memory_order_relaxed);
  auto it = per_client_.find(client);
  if (it != per_client_.end() && (it->second -= bytes) == 0) per_client_.erase(it);
}

uint64_t PutSession::AssemblyBudget::used_by(absl::string_view client) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = per_client_.find(client);
  return it == per_client_.end() ? 0 : it->second;
}

uint64_t PutSession::AnnounceBytes(const kvstore::BlockMeta& meta) {
  // The pending entry, its assembler (with a counter per layer), the result
  // and the id seen, rounded up.
  return 512 + 8 * static_cast<uint64_t>(meta.n_layers);
}

PutSession::PutSession(kvstore::KvStore* store, const Options& options)
    : store_(store), options_(options) {}

void PutSession::DropIncomplete() {
  if (options_.budget != nullptr) options_.budget->Give(options_.client, charged_bytes_);
  charged_bytes_ = 0;
  pending_bytes_ = 0;
  pending_.clear();
}

absl::Status PutSession::WithCommitted(const absl::Status& status) const {
  if (status.ok() || committed_ == 0) return status;
  return absl::Status(
      status.code(),
      absl::StrCat(status.message(), " (this stream committed ", committed_,
                   " block(s) before the error; they stay stored: puts are idempotent, "
                   "re-put them all)"));
}

absl::Status PutSession::NotPending(absl::string_view what, uint32_t block_id) const {
  auto seen = seen_ids_.find(block_id);
  if (seen != seen_ids_.end() && seen->second) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " for block id ", block_id,
                     " after it was complete and committed; the stream ends here"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      what, " for block id ", block_id,
      seen == seen_ids_.end() ? " which is not announced" : " which is not pending"));
}

absl::Status PutSession::Apply(const v1::PutBlocksRequest& request) {
  return WithCommitted(ApplyParsed(request));
}

absl::Status PutSession::ApplyParsed(const v1::PutBlocksRequest& request) {
  for (const v1::BlockHeader& header : request.headers()) {
    KVQ_RETURN_IF_ERROR(AddHeader(header));
  }
  for (const v1::BlockChunk& chunk : request.chunks()) {
    const std::string& data = chunk.data();
    KVQ_RETURN_IF_ERROR(AddChunk(chunk.block_id(), chunk.layer(), chunk.offset(),
                                 data.size(),
                                 [&](kvstore::BlockAssembler::PieceFn piece) {
                                   piece(data);
                                   return true;
                                 }));
  }
  for (const v1::BlockSeal& seal : request.seals()) {
    KVQ_RETURN_IF_ERROR(AddSeal(seal));
  }
  return absl::OkStatus();
}

// Applies headers as they are decoded (before the chunks that follow them)
// and chunks straight from the wire.
class PutSession::Decoder final : public ChunkSink {
 public:
  explicit Decoder(PutSession* session) : session_(session) {}

  absl::Status OnChunk(const ChunkHeader& chunk, ChunkData& data) override {
    KVQ_RETURN_IF_ERROR(ApplyNewHeaders());
    return session_->AddChunk(
        chunk.block_id, chunk.layer, chunk.offset, chunk.size,
        [&](kvstore::BlockAssembler::PieceFn piece) { return data.ReadPieces(piece); });
  }

  absl::Status ApplyNewHeaders() {
    for (; headers_done_ < rest_.headers_size(); ++headers_done_) {
      KVQ_RETURN_IF_ERROR(session_->AddHeader(rest_.headers(headers_done_)));
    }
    return absl::OkStatus();
  }

  v1::PutBlocksRequest& rest() { return rest_; }

 private:
  PutSession* const session_;
  v1::PutBlocksRequest rest_;  // the fields other than chunks
  int headers_done_ = 0;
};

absl::Status PutSession::ApplyEncoded(
    google::protobuf::io::ZeroCopyInputStream* message) {
  return WithCommitted(ApplyEncodedImpl(message));
}

absl::Status PutSession::ApplyEncodedImpl(
    google::protobuf::io::ZeroCopyInputStream* message) {
  Decoder decoder(this);
  KVQ_RETURN_IF_ERROR(DecodeChunked(message, kPutChunkField, &decoder.rest(), decoder));
  KVQ_RETURN_IF_ERROR(decoder.ApplyNewHeaders());
  for (const v1::BlockSeal& seal : decoder.rest().seals()) {
    KVQ_RETURN_IF_ERROR(AddSeal(seal));
  }
  return absl::OkStatus();
}

absl::Status PutSession::AddHeader(const v1::BlockHeader& header) {
  if (!seen_ids_.emplace(header.block_id(), true).second) {
    return absl::InvalidArgumentError(
        absl::StrCat("block id ", header.block_id(), " announced twice in one stream"));
  }
  KVQ_ASSIGN_OR_RETURN(kvstore::BlockKey key, KeyFromProto(header.key()));
  absl::StatusOr<kvstore::BlockMeta> meta = MetaFromProto(header.meta());
  if (!meta.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("block ", key.ToHex(), ": ", meta.status().message()));
  }
  const uint64_t size = meta->block_bytes();
  if (seen_ids_.size() > options_.max_blocks) {
    return absl::InvalidArgumentError(absl::StrCat("a stream may announce at most ",
                                                   options_.max_blocks,
                                                   " blocks; use more streams"));
  }
  if (pending_bytes_ + size > options_.max_pending_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stream holds more than ", options_.max_pending_bytes,
        " bytes of incomplete blocks; send each block's chunks before announcing more"));
  }
  // Refuse early what can never fit, before receiving its bytes.
  KVQ_RETURN_IF_ERROR(store_->CheckFits(size));
  if (const AssemblyBudget* b = options_.budget; b != nullptr) {
    const uint64_t limit =
        b->max_bytes_per_client() > 0 && b->max_bytes_per_client() < b->max_bytes()
            ? b->max_bytes_per_client()
            : b->max_bytes();
    if (limit > 0 && size > limit) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "block ", key.ToHex(), " of ", size, " bytes is larger than the ", limit,
          " bytes a client may have in flight (--max_assembling_bytes",
          b->max_bytes_per_client() > 0 ? "_per_client" : "", ")"));
    }
  }
  // The header's bookkeeping is charged now; its bytes are allocated and
  // charged when they start to arrive (AddChunk).
  const uint64_t announce_bytes = AnnounceBytes(*meta);
  if (options_.budget != nullptr) {
    KVQ_RETURN_IF_ERROR(options_.budget->Take(options_.client, announce_bytes,
                                              absl::StrCat("block ", key.ToHex())));
  }
  charged_bytes_ += announce_bytes;
  KVQ_ASSIGN_OR_RETURN(kvstore::BlockAssembler assembler,
                       kvstore::BlockAssembler::Create(*meta));
  v1::PutResult* result = response_.add_results();
  result->set_key(header.key());
  pending_.emplace(header.block_id(),
                   Pending{response_.results_size() - 1, key, std::move(assembler),
                           header.checksum_follows(), meta->checksum, announce_bytes});
  pending_bytes_ += size;
  return absl::OkStatus();
}

absl::Status PutSession::AddChunk(
    uint32_t block_id, uint32_t layer, uint64_t offset, uint64_t size,
    absl::FunctionRef<bool(kvstore::BlockAssembler::PieceFn)> read) {
  auto it = pending_.find(block_id);
  if (it == pending_.end()) return NotPending("chunk", block_id);
  Pending& p = it->second;
  if (!p.started && size > 0) {
    // The block's memory is allocated with its first bytes: charge it now
    // (its bookkeeping, charged at the header, counts as part of it).
    const uint64_t block_bytes = p.assembler.meta().block_bytes();
    const uint64_t more = block_bytes > p.charged ? block_bytes - p.charged : 0;
    if (options_.budget != nullptr) {
      KVQ_RETURN_IF_ERROR(options_.budget->Take(options_.client, more,
                                                absl::StrCat("block ", p.key.ToHex())));
    }
    p.started = true;
    p.charged += more;
    charged_bytes_ += more;
  }
  if (absl::Status s = p.assembler.AddChunk(layer, offset, size, read); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("block ", p.key.ToHex(), ": ", s.message()));
  }
  return MaybeCommit(it);
}

absl::Status PutSession::AddSeal(const v1::BlockSeal& seal) {
  auto it = pending_.find(seal.block_id());
  if (it == pending_.end()) return NotPending("seal", seal.block_id());
  if (!it->second.awaiting_seal) {
    return absl::InvalidArgumentError(
        absl::StrCat("seal for block id ", seal.block_id(),
                     " which is not announced with checksum_follows, or already sealed"));
  }
  it->second.awaiting_seal = false;
  it->second.checksum = seal.checksum();
  return MaybeCommit(it);
}

absl::Status PutSession::MaybeCommit(PendingMap::iterator it) {
  Pending& p = it->second;
  if (p.awaiting_seal || !p.assembler.complete()) return absl::OkStatus();
  kvstore::BlockMeta meta = p.assembler.meta();
  meta.checksum = p.checksum;
  const kvstore::BlockKey key = p.key;
  const int index = p.result_index;
  // Hashed as the chunks arrived; the engine does not hash again.
  const uint64_t checksum = p.assembler.Checksum();
  const uint32_t block_id = it->first;
  std::string bytes = std::move(p.assembler).TakeBytes();
  pending_bytes_ -= bytes.size();
  charged_bytes_ -= p.charged;
  if (options_.budget != nullptr) options_.budget->Give(options_.client, p.charged);
  pending_.erase(it);
  seen_ids_[block_id] = true;
  KVQ_ASSIGN_OR_RETURN(kvstore::PutOutcome outcome,
                       store_->PutHashed(key, meta, std::move(bytes), checksum));
  ++committed_;
  response_.mutable_results(index)->set_outcome(outcome == kvstore::PutOutcome::kStored
                                                    ? v1::PUT_OUTCOME_STORED
                                                    : v1::PUT_OUTCOME_ALREADY_PRESENT);
  return absl::OkStatus();
}

absl::StatusOr<v1::PutBlocksResponse> PutSession::Finish() {
  if (!pending_.empty()) {
    return WithCommitted(absl::InvalidArgumentError(
        absl::StrCat("stream ended with ", pending_.size(),
                     " incomplete or unsealed block(s); they were not stored")));
  }
  return std::move(response_);
}

}  // namespace kvq::store
