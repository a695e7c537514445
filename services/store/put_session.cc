#include "services/store/put_session.h"

#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "services/store/chunk_decoder.h"
#include "services/store/proto_convert.h"

namespace kvq::store {

bool PutSession::AssemblyBudget::TryTake(uint64_t bytes) {
  uint64_t used = used_.load(std::memory_order_relaxed);
  do {
    if (bytes > max_bytes_ || used > max_bytes_ - bytes) return false;
  } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  return true;
}

PutSession::PutSession(kvstore::KvStore* store, const Options& options)
    : store_(store), options_(options) {}

void PutSession::DropIncomplete() {
  if (options_.budget != nullptr) options_.budget->Give(pending_bytes_);
  pending_bytes_ = 0;
  pending_.clear();
}

absl::Status PutSession::Apply(const v1::PutBlocksRequest& request) {
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
  if (pending_bytes_ + size > options_.max_pending_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stream holds more than ", options_.max_pending_bytes,
        " bytes of incomplete blocks; send each block's chunks before announcing more"));
  }
  // Refuse early what can never fit, before receiving its bytes.
  KVQ_RETURN_IF_ERROR(store_->CheckFits(size));
  KVQ_ASSIGN_OR_RETURN(kvstore::BlockAssembler assembler,
                       kvstore::BlockAssembler::Create(*meta));
  if (options_.budget != nullptr && !options_.budget->TryTake(size)) {
    if (size > options_.budget->max_bytes()) {
      return absl::ResourceExhaustedError(
          absl::StrCat("block ", key.ToHex(), " of ", size,
                       " bytes is larger than the store's --max_assembling_bytes (",
                       options_.budget->max_bytes(), ")"));
    }
    return absl::ResourceExhaustedError(absl::StrCat(
        "block ", key.ToHex(), ": the store is receiving ", options_.budget->used(),
        " bytes of blocks, its limit is ", options_.budget->max_bytes(),
        " (--max_assembling_bytes); retry later"));
  }
  v1::PutResult* result = response_.add_results();
  result->set_key(header.key());
  pending_.emplace(header.block_id(),
                   Pending{response_.results_size() - 1, key, std::move(assembler),
                           header.checksum_follows(), meta->checksum});
  pending_bytes_ += size;
  return absl::OkStatus();
}

absl::Status PutSession::AddChunk(
    uint32_t block_id, uint32_t layer, uint64_t offset, uint64_t size,
    absl::FunctionRef<bool(kvstore::BlockAssembler::PieceFn)> read) {
  auto it = pending_.find(block_id);
  if (it == pending_.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk for block id ", block_id, " which is not announced or already complete"));
  }
  Pending& p = it->second;
  if (absl::Status s = p.assembler.AddChunk(layer, offset, size, read); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("block ", p.key.ToHex(), ": ", s.message()));
  }
  return MaybeCommit(it);
}

absl::Status PutSession::AddSeal(const v1::BlockSeal& seal) {
  auto it = pending_.find(seal.block_id());
  if (it == pending_.end() || !it->second.awaiting_seal) {
    return absl::InvalidArgumentError(
        absl::StrCat("seal for block id ", seal.block_id(),
                     " which is not announced with checksum_follows, already sealed "
                     "or already complete"));
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
  std::string bytes = std::move(p.assembler).TakeBytes();
  pending_bytes_ -= bytes.size();
  if (options_.budget != nullptr) options_.budget->Give(bytes.size());
  pending_.erase(it);
  KVQ_ASSIGN_OR_RETURN(kvstore::PutOutcome outcome,
                       store_->PutHashed(key, meta, std::move(bytes), checksum));
  response_.mutable_results(index)->set_outcome(outcome == kvstore::PutOutcome::kStored
                                                    ? v1::PUT_OUTCOME_STORED
                                                    : v1::PUT_OUTCOME_ALREADY_PRESENT);
  return absl::OkStatus();
}

absl::StatusOr<v1::PutBlocksResponse> PutSession::Finish() {
  if (!pending_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("stream ended with ", pending_.size(),
                     " incomplete or unsealed block(s); they were not stored"));
  }
  return std::move(response_);
}

}  // namespace kvq::store
