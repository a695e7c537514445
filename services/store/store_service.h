// The KvStore gRPC service (proto/kvstore.proto) over a kvstore::KvStore
// engine, with the callback API: PutBlocks reads a client stream into a
// PutSession, GetBlocks writes a server stream chunk by chunk, the rest are
// unary. Every RPC is timed into RpcMetrics and refreshes StoreMetrics.
// PutBlocks and GetBlocks are raw methods (grpc::ByteBuffer, chunk_decoder.h,
// chunk_encoder.h): chunk data is copied once from the receive buffers into the block,
// and sent from the stored block without a copy. The unary methods are raw
// too, parsed here, so that a request that does not parse is
// INVALID_ARGUMENT (gRPC's generated callback handlers answer UNIMPLEMENTED).
//
// Who may call what (Options::authorizer; docs/security.md): anyone reads
// (GetBlocks and Lookup without a lease, Stats); writers (workers) put
// blocks and take, renew and release leases; admins (operators) delete.
// Leases are owned by the principal that took them.
//
//   auto engine = kvstore::KvStore::Open({.capacity_bytes = 1 << 30});
//   StoreService service(engine->get(), {.max_lease_ttl = absl::Seconds(60)},
//                        &rpc_metrics, &store_metrics);
//   builder.RegisterService(&service);
#ifndef KVQ_SERVICES_STORE_STORE_SERVICE_H_
#define KVQ_SERVICES_STORE_STORE_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/time/time.h"
#include "kvstore/kv_store.h"
#include "proto/kvstore.grpc.pb.h"
#include "services/common/authorizer.h"
#include "services/common/metrics.h"
#include "services/store/put_session.h"
#include "services/store/store_metrics.h"

namespace kvq::store {

// Every method is raw (grpc::ByteBuffer in and out).
using StoreServiceBase = v1::KvStore::WithRawCallbackMethod_PutBlocks<
    v1::KvStore::WithRawCallbackMethod_GetBlocks<
        v1::KvStore::WithRawCallbackMethod_Lookup<
            v1::KvStore::WithRawCallbackMethod_RenewLease<
                v1::KvStore::WithRawCallbackMethod_ReleaseLease<
                    v1::KvStore::WithRawCallbackMethod_DeleteBlocks<
                        v1::KvStore::WithRawCallbackMethod_Stats<
                            v1::KvStore::CallbackService>>>>>>>;

class StoreService final : public StoreServiceBase {
 public:
  struct Options {
    // Largest chunk GetBlocks sends when the request does not ask for less.
    uint32_t default_chunk_bytes = 1 << 20;
    // Bytes of incomplete blocks one PutBlocks stream may hold.
    uint64_t max_pending_bytes_per_stream = uint64_t{1} << 30;
    // Bytes of blocks being received that all streams together, and all
    // streams of one client (Caller::client()), may hold (a block whose
    // first chunk would pass either gets RESOURCE_EXHAUSTED); 0: no limit.
    uint64_t max_assembling_bytes = 0;
    uint64_t max_assembling_bytes_per_client = 0;
    // Bytes of blocks one GetBlocks call may send (more: RESOURCE_EXHAUSTED,
    // ask for fewer keys); 0: no limit.
    uint64_t max_get_bytes = uint64_t{256} << 20;
    // Who may do what; null: everyone may do everything (must outlive the
    // service).
    const services::Authorizer* authorizer = nullptr;
  };

  // `store`, `rpc_metrics` and `store_metrics` must outlive the service;
  // the metrics may be null.
  StoreService(kvstore::KvStore* store, const Options& options,
               services::RpcMetrics* rpc_metrics, StoreMetrics* store_metrics);

  // PutBlocksRequest in, PutBlocksResponse out, encoded.
  grpc::ServerReadReactor<grpc::ByteBuffer>* PutBlocks(
      grpc::CallbackServerContext* context, grpc::ByteBuffer* response) override;
  // GetBlocksRequest in, GetBlocksResponse stream out, encoded.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* GetBlocks(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) override;
  // The unary methods: their request message in, their response out, encoded.
  grpc::ServerUnaryReactor* Lookup(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RenewLease(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ReleaseLease(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* DeleteBlocks(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;

  // The caller of a call (UNAUTHENTICATED for a bad credential).
  absl::StatusOr<services::Caller> Identify(
      const grpc::CallbackServerContext& context) const;

  // Records one finished RPC in the metrics (used by the reactors).
  void RecordRpc(const char* method, grpc::StatusCode code, absl::Time start);

  // Graceful shutdown: after StartDraining, new calls fail UNAVAILABLE (the
  // client retries elsewhere) while calls in progress run to completion;
  // active_calls() counts those.
  void StartDraining() { draining_ = true; }
  int active_calls() const { return active_calls_; }
  // Reactor bookkeeping: Enter returns false (and counts nothing) when draining.
  bool EnterCall();
  void LeaveCall() { --active_calls_; }

  kvstore::KvStore* store() const { return store_; }
  const Options& options() const { return options_; }
  // The budget of every PutBlocks stream's incomplete blocks (null: none).
  PutSession::AssemblyBudget* assembly_budget() { return assembly_budget_.get(); }
  // Bytes of incomplete blocks the PutBlocks streams hold now.
  uint64_t assembling_bytes() const {
    return assembly_budget_ != nullptr ? assembly_budget_->used() : 0;
  }

 private:
  grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                        const char* method, absl::Time start,
                                        const absl::Status& status);
  // Runs a unary call: refuses it while draining, parses the request
  // (INVALID_ARGUMENT if it does not parse), identifies the caller, calls
  // `handle`, encodes its response.
  template <typename Request, typename Response, typename Handler>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context,
                                  const char* method, const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response, Handler handle);

  // Constant after construction.
  kvstore::KvStore* const store_;
  const Options options_;
  services::RpcMetrics* const rpc_metrics_;
  StoreMetrics* const store_metrics_;
  const std::unique_ptr<PutSession::AssemblyBudget> assembly_budget_;

  std::atomic<bool> draining_{false};
  std::atomic<int> active_calls_{0};
};

}  // namespace kvq::store

#endif  // KVQ_SERVICES_STORE_STORE_SERVICE_H_
