#include "services/store/store_service.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "services/common/grpc_status.h"
#include "services/store/chunk_encoder.h"
#include "services/store/proto_convert.h"
#include "services/store/put_session.h"

namespace kvq::store {
namespace {

using services::Caller;
using services::Role;
using services::ToGrpcStatus;

constexpr uint32_t kMaxChunkBytes = 3 << 20;  // below gRPC's 4 MiB default

absl::Duration TtlFromMs(uint32_t ms) { return absl::Milliseconds(ms); }

absl::Status ShuttingDown() { return absl::UnavailableError("store is shutting down"); }

grpc::ByteBuffer Encode(const google::protobuf::MessageLite& message) {
  std::vector<grpc::Slice> slices;
  AppendMessage(message, &slices);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

// Parses an encoded request; INVALID_ARGUMENT naming the method if it does not parse.
absl::Status Decode(const grpc::ByteBuffer& encoded, const char* method,
                    google::protobuf::MessageLite* message) {
  grpc::ByteBuffer copy = encoded;  // shares the slices
  grpc::ProtoBufferReader reader(&copy);
  if (!message->ParseFromZeroCopyStream(&reader)) {
    return absl::InvalidArgumentError(absl::StrCat(
        method, ": the request does not parse as a ", message->GetTypeName()));
  }
  return absl::OkStatus();
}

// A lease taken by `caller`: renewable and releasable by the same principal,
// counted against its client's open leases.
kvstore::LeaseOwner OwnerOf(const Caller& caller) {
  return {.principal = caller.principal, .client = caller.client()};
}

// Whose leases `caller` may renew or release: its own; an admin's, any.
absl::string_view LeasePrincipal(const Caller& caller) {
  return caller.role == Role::kAdmin ? kvstore::kAnyPrincipal
                                     : absl::string_view(caller.principal);
}

// Taking a lease pins memory: it needs a writer; reading does not.
Role RoleForLease(uint32_t lease_ttl_ms) {
  return lease_ttl_ms > 0 ? Role::kWriter : Role::kReader;
}

// PutBlocks: one PutSession per stream. Reactions only copy bytes and take the
// engine's lock briefly; nothing blocks.
class PutReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  PutReactor(StoreService* service, grpc::CallbackServerContext* context,
             grpc::ByteBuffer* response)
      : service_(service),
        context_(context),
        response_(response),
        caller_(service->Identify(*context)),
        session_(service->store(),
                 {.max_pending_bytes = service->options().max_pending_bytes_per_stream,
                  .budget = service->assembly_budget(),
                  .client = caller_.ok() ? caller_->client() : std::string()}),
        start_(absl::Now()) {
    entered_ = service_->EnterCall();
    if (!entered_) {
      Done(ToGrpcStatus(ShuttingDown()));
      return;
    }
    absl::Status allowed = caller_.status();
    if (allowed.ok())
      allowed = services::Authorizer::Require(*caller_, Role::kWriter, "PutBlocks");
    if (!allowed.ok()) {
      Done(ToGrpcStatus(allowed));
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // Half-close by the client, or the call broke (cancelled, deadline).
      if (context_->IsCancelled()) {
        Done(grpc::Status(grpc::StatusCode::CANCELLED, "PutBlocks cancelled"));
        return;
      }
      absl::StatusOr<v1::PutBlocksResponse> response = session_.Finish();
      if (response.ok()) *response_ = Encode(*response);
      Done(ToGrpcStatus(response.status()));
      return;
    }
    // No read-ahead: the transport keeps receiving (8 MiB window) while this
    // runs, and a raw message needs no parsing that a second read could overlap.
    absl::Status status;
    {
      grpc::ProtoBufferReader reader(&request_);
      status = session_.ApplyEncoded(&reader);
    }
    request_.Clear();
    if (!status.ok()) {
      Done(ToGrpcStatus(status));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override {
    if (entered_) service_->LeaveCall();
    delete this;
  }

 private:
  // Records the call before finishing it, so that a client that saw the
  // status also sees it counted.
  void Done(const grpc::Status& status) {
    // Before the client can see the status: a put it sends next must find
    // this stream's room in the assembly budget free again.
    session_.DropIncomplete();
    service_->RecordRpc("PutBlocks", status.error_code(), start_);
    Finish(status);
  }

  StoreService* const service_;
  grpc::CallbackServerContext* const context_;
  grpc::ByteBuffer* const response_;
  const absl::StatusOr<Caller> caller_;
  PutSession session_;
  grpc::ByteBuffer request_;
  const absl::Time start_;
  bool entered_ = false;
};

// GetBlocks: the first message names what was found and carries the first
// chunks; the blocks' bytes follow layer by layer, packed into messages of at
// most `chunk_bytes`. The last message goes out with the status (one write
// and one reaction per message, none for the status alone): a 768 KiB block
// is one message.
class GetReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  GetReactor(StoreService* service, const grpc::CallbackServerContext& context,
             const grpc::ByteBuffer& request)
      : service_(service), start_(absl::Now()) {
    entered_ = service_->EnterCall();
    absl::Status status = entered_ ? Prepare(context, request) : ShuttingDown();
    if (!status.ok()) {
      Done(ToGrpcStatus(status));
      return;
    }
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Done(grpc::Status(grpc::StatusCode::CANCELLED, "GetBlocks: client went away"));
      return;
    }
    WriteNext();
  }

  void OnDone() override {
    if (entered_) service_->LeaveCall();
    delete this;
  }

 private:
  absl::Status Prepare(const grpc::CallbackServerContext& context,
                       const grpc::ByteBuffer& encoded) {
    v1::GetBlocksRequest request;
    if (absl::Status s = Decode(encoded, "GetBlocks", &request); !s.ok()) return s;
    absl::StatusOr<Caller> caller = service_->Identify(context);
    if (!caller.ok()) return caller.status();
    if (absl::Status s = services::Authorizer::Require(
            *caller, RoleForLease(request.lease_ttl_ms()), "GetBlocks with a lease");
        !s.ok()) {
      return s;
    }
    absl::StatusOr<std::vector<kvstore::BlockKey>> keys = KeysFromProto(request.keys());
    if (!keys.ok()) return keys.status();
    absl::flat_hash_set<kvstore::BlockKey> distinct(keys->begin(), keys->end());
    if (distinct.size() != keys->size()) {
      return absl::InvalidArgumentError(
          "GetBlocks: a key is repeated; ask for each block once");
    }
    chunk_bytes_ = request.max_chunk_bytes() == 0
                       ? service_->options().default_chunk_bytes
                       : request.max_chunk_bytes();
    chunk_bytes_ = std::clamp<uint32_t>(chunk_bytes_, 1, kMaxChunkBytes);
    v1::GetBlocksResponse first;
    if (request.lease_ttl_ms() > 0) {
      absl::StatusOr<kvstore::LeaseId> lease = service_->store()->AcquireLease(
          *keys, TtlFromMs(request.lease_ttl_ms()), OwnerOf(*caller));
      if (!lease.ok()) return lease.status();
      first.set_lease_id(*lease);
    }
    std::vector<absl::StatusOr<kvstore::Block>> got = service_->store()->Get(*keys);
    uint64_t total = 0;
    for (const absl::StatusOr<kvstore::Block>& b : got) {
      if (b.ok()) total += b->bytes->size();
    }
    const uint64_t max_bytes = service_->options().max_get_bytes;
    if (max_bytes > 0 && total > max_bytes) {
      if (first.lease_id() != 0) {
        (void)service_->store()->ReleaseLease(first.lease_id(), kvstore::kAnyPrincipal);
      }
      return absl::ResourceExhaustedError(
          absl::StrCat("GetBlocks of ", keys->size(), " keys would send ", total,
                       " bytes; a call may send at most ", max_bytes,
                       " (the store's --max_get_bytes): ask for fewer keys per call"));
    }
    for (size_t i = 0; i < got.size(); ++i) {
      if (!got[i].ok()) {
        first.add_missing(static_cast<uint32_t>(i));
        continue;
      }
      v1::BlockHeader* h = first.add_headers();
      h->set_block_id(static_cast<uint32_t>(i));
      h->set_key(request.keys(static_cast<int>(i)));
      *h->mutable_meta() = MetaToProto(got[i]->meta);
      blocks_.push_back({static_cast<uint32_t>(i), std::move(*got[i])});
    }
    // Its fields (1-3) precede the chunks (4) of the same message, as a
    // standard encoder would write them; they count against the chunk budget.
    AppendMessage(first, &slices_);
    first_bytes_ = first.ByteSizeLong();
    return absl::OkStatus();
  }

  // Sends the next message, with the status if it is the last.
  void WriteNext() {
    NextMessage();
    message_ = grpc::ByteBuffer(slices_.data(), slices_.size());
    slices_.clear();
    if (block_ < blocks_.size()) {
      StartWrite(&message_);
      return;
    }
    // Recorded before the status can reach the client (as Done does).
    service_->RecordRpc("GetBlocks", grpc::StatusCode::OK, start_);
    StartWriteAndFinish(&message_, grpc::WriteOptions(), grpc::Status::OK);
  }

  // Appends the next chunks to slices_ (after the first message's fields, if
  // not sent yet), sent from the blocks' own bytes.
  void NextMessage() {
    // Many headers fill a message of their own.
    size_t budget = first_bytes_ < chunk_bytes_ ? chunk_bytes_ - first_bytes_ : 0;
    first_bytes_ = 0;
    while (budget > 0 && block_ < blocks_.size()) {
      const auto& [id, block] = blocks_[block_];
      const size_t layer_bytes = block.meta.layer_bytes(layer_);
      const size_t n = std::min(budget, layer_bytes - offset_);
      AppendChunk(
          kGetChunkField,
          {.block_id = id, .layer = static_cast<uint32_t>(layer_), .offset = offset_},
          absl::string_view(
              block.bytes->data() + block.meta.layer_offset(layer_) + offset_, n),
          block.bytes, &slices_);
      budget -= n;
      offset_ += n;
      if (offset_ == layer_bytes) {
        offset_ = 0;
        if (++layer_ == block.meta.n_layers) {
          layer_ = 0;
          ++block_;
        }
      }
    }
  }

  // Records the call before finishing it, so that a client that saw the
  // status also sees it counted.
  void Done(const grpc::Status& status) {
    service_->RecordRpc("GetBlocks", status.error_code(), start_);
    Finish(status);
  }

  StoreService* const service_;
  const absl::Time start_;
  bool entered_ = false;
  uint32_t chunk_bytes_ = 0;
  size_t first_bytes_ = 0;  // the first message's fields, until it is built
  std::vector<std::pair<uint32_t, kvstore::Block>> blocks_;  // (request index, block)
  size_t block_ = 0;
  int layer_ = 0;
  size_t offset_ = 0;
  std::vector<grpc::Slice> slices_;
  grpc::ByteBuffer message_;
};

}  // namespace

StoreService::StoreService(kvstore::KvStore* store, const Options& options,
                           services::RpcMetrics* rpc_metrics, StoreMetrics* store_metrics)
    : store_(store),
      options_(options),
      rpc_metrics_(rpc_metrics),
      store_metrics_(store_metrics),
      assembly_budget_(
          options.max_assembling_bytes > 0 || options.max_assembling_bytes_per_client > 0
              ? std::make_unique<PutSession::AssemblyBudget>(
                    options.max_assembling_bytes, options.max_assembling_bytes_per_client)
              : nullptr) {}

absl::StatusOr<Caller> StoreService::Identify(
    const grpc::CallbackServerContext& context) const {
  if (options_.authorizer == nullptr) {
    Caller open;
    open.role = Role::kAdmin;
    open.peer_host = services::PeerHost(context.peer());
    return open;
  }
  return options_.authorizer->Identify(context);
}

template <typename Request, typename Response, typename Handler>
grpc::ServerUnaryReactor* StoreService::Unary(grpc::CallbackServerContext* context,
                                              const char* method,
                                              const grpc::ByteBuffer* request,
                                              grpc::ByteBuffer* response,
                                              Handler handle) {
  const absl::Time start = absl::Now();
  if (draining_) return FinishUnary(context, method, start, ShuttingDown());
  Request parsed;
  if (absl::Status s = Decode(*request, method, &parsed); !s.ok()) {
    return FinishUnary(context, method, start, s);
  }
  absl::StatusOr<Caller> caller = Identify(*context);
  if (!caller.ok()) return FinishUnary(context, method, start, caller.status());
  Response out;
  absl::Status status = handle(*caller, parsed, &out);
  if (status.ok()) *response = Encode(out);
  return FinishUnary(context, method, start, status);
}

bool StoreService::EnterCall() {
  ++active_calls_;
  if (!draining_) return true;
  --active_calls_;
  return false;
}

void StoreService::RecordRpc(const char* method, grpc::StatusCode code,
                             absl::Time start) {
  if (rpc_metrics_ != nullptr)
    rpc_metrics_->Record(method, static_cast<absl::StatusCode>(code),
                         absl::Now() - start);
  if (store_metrics_ != nullptr) {
    store_metrics_->Update(store_->Stats());
    store_metrics_->SetAssemblingBytes(assembling_bytes());
  }
}

grpc::ServerUnaryReactor* StoreService::FinishUnary(grpc::CallbackServerContext* context,
                                                    const char* method, absl::Time start,
                                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const grpc::Status g = ToGrpcStatus(status);
  RecordRpc(method, g.error_code(), start);
  reactor->Finish(g);
  return reactor;
}

grpc::ServerReadReactor<grpc::ByteBuffer>* StoreService::PutBlocks(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  return new PutReactor(this, context, response);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* StoreService::GetBlocks(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  return new GetReactor(this, *context, *request);
}

grpc::ServerUnaryReactor* StoreService::Lookup(grpc::CallbackServerContext* context,
                                               const grpc::ByteBuffer* request,
                                               grpc::ByteBuffer* response) {
  return Unary<v1::LookupRequest, v1::LookupResponse>(
      context, "Lookup", request, response,
      [this](const Caller& caller, const v1::LookupRequest& request,
             v1::LookupResponse* response) -> absl::Status {
        KVQ_RETURN_IF_ERROR(services::Authorizer::Require(
            caller, RoleForLease(request.lease_ttl_ms()), "Lookup with a lease"));
        KVQ_ASSIGN_OR_RETURN(std::vector<kvstore::BlockKey> keys,
                             KeysFromProto(request.keys()));
        std::vector<bool> present;
        if (request.lease_ttl_ms() > 0) {
          // One step: a block reported present is pinned before anything can
          // evict it. Nothing present: no lease (lease_id 0).
          KVQ_ASSIGN_OR_RETURN(
              kvstore::LeaseId lease,
              store_->LeasePresent(keys, TtlFromMs(request.lease_ttl_ms()),
                                   OwnerOf(caller), &present));
          response->set_lease_id(lease);
        } else {
          present = store_->Contains(keys);
        }
        uint32_t prefix = 0;
        while (prefix < present.size() && present[prefix]) ++prefix;
        for (bool p : present) response->add_present(p);
        response->set_present_prefix(prefix);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* StoreService::RenewLease(grpc::CallbackServerContext* context,
                                                   const grpc::ByteBuffer* request,
                                                   grpc::ByteBuffer* response) {
  return Unary<v1::RenewLeaseRequest, v1::RenewLeaseResponse>(
      context, "RenewLease", request, response,
      [this](const Caller& caller, const v1::RenewLeaseRequest& request,
             v1::RenewLeaseResponse*) -> absl::Status {
        KVQ_RETURN_IF_ERROR(
            services::Authorizer::Require(caller, Role::kWriter, "RenewLease"));
        return store_->RenewLease(request.lease_id(), TtlFromMs(request.ttl_ms()),
                                  LeasePrincipal(caller));
      });
}

grpc::ServerUnaryReactor* StoreService::ReleaseLease(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  return Unary<v1::ReleaseLeaseRequest, v1::ReleaseLeaseResponse>(
      context, "ReleaseLease", request, response,
      [this](const Caller& caller, const v1::ReleaseLeaseRequest& request,
             v1::ReleaseLeaseResponse*) -> absl::Status {
        KVQ_RETURN_IF_ERROR(
            services::Authorizer::Require(caller, Role::kWriter, "ReleaseLease"));
        return store_->ReleaseLease(request.lease_id(), LeasePrincipal(caller));
      });
}

grpc::ServerUnaryReactor* StoreService::DeleteBlocks(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  return Unary<v1::DeleteBlocksRequest, v1::DeleteBlocksResponse>(
      context, "DeleteBlocks", request, response,
      [this](const Caller& caller, const v1::DeleteBlocksRequest& request,
             v1::DeleteBlocksResponse* response) -> absl::Status {
        KVQ_RETURN_IF_ERROR(
            services::Authorizer::Require(caller, Role::kAdmin, "DeleteBlocks"));
        KVQ_ASSIGN_OR_RETURN(std::vector<kvstore::BlockKey> keys,
                             KeysFromProto(request.keys()));
        for (const absl::Status& s : store_->Delete(keys)) {
          response->add_codes(static_cast<int32_t>(s.code()));
        }
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* StoreService::Stats(grpc::CallbackServerContext* context,
                                              const grpc::ByteBuffer* request,
                                              grpc::ByteBuffer* response) {
  return Unary<v1::StoreStatsRequest, v1::StoreStatsResponse>(
      context, "Stats", request, response,
      [this](const Caller&, const v1::StoreStatsRequest&,
             v1::StoreStatsResponse* response) -> absl::Status {
        *response = StatsToProto(store_->Stats());
        return absl::OkStatus();
      });
}

}  // namespace kvq::store
