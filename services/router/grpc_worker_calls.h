// The router's calls to its workers over gRPC (router.h WorkerCalls): one
// channel per worker endpoint, made on first use and kept (WorkerStubs; the
// router drops gone endpoints' channels through Retain), and per request a
// GrpcWorkerCalls that propagates the client's deadline and cancellation to
// every downstream call (the earlier of the client's deadline and the
// router's default timeout applies). Protos are converted here, once
// (serving/proto_convert.h).
//
//   WorkerStubs stubs;
//   GrpcWorkerCalls calls(&stubs, server_context, absl::Minutes(5));
//   router.Generate(request, calls, sink, cancelled);
#ifndef KVQ_SERVICES_ROUTER_GRPC_WORKER_CALLS_H_
#define KVQ_SERVICES_ROUTER_GRPC_WORKER_CALLS_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/serving.grpc.pb.h"
#include "services/common/tls.h"
#include "services/router/router.h"

namespace kvq::router {

class WorkerStubs {
 public:
  // `security`: plaintext by default; TLS / mTLS (services/common/tls.h).
  explicit WorkerStubs(services::ChannelSecurity security = services::ChannelSecurity());
  // The stubs of the worker at `endpoint` (HOST:PORT), made on first use.
  std::shared_ptr<v1::Prefill::Stub> prefill(const std::string& endpoint);
  std::shared_ptr<v1::Decode::Stub> decode(const std::string& endpoint);
  // Drops the channels of every endpoint not in `endpoints` (calls in flight
  // keep theirs until they finish).
  void Retain(const std::vector<std::string>& endpoints);

 private:
  struct Stubs {
    std::shared_ptr<v1::Prefill::Stub> prefill;
    std::shared_ptr<v1::Decode::Stub> decode;
  };
  Stubs& For(const std::string& endpoint);  // under mu_

  const services::ChannelSecurity security_;
  std::mutex mu_;
  std::map<std::string, Stubs> stubs_;  // guarded by mu_
};

class GrpcWorkerCalls final : public WorkerCalls {
 public:
  // Everything must outlive this object (one request).
  GrpcWorkerCalls(WorkerStubs* stubs, grpc::ServerContext* context,
                  absl::Duration default_timeout)
      : stubs_(stubs), context_(context), default_timeout_(default_timeout) {}

  absl::StatusOr<serving::PrefillResult> Prefill(
      const std::string& endpoint, const serving::PrefillRequest& request) override;
  absl::Status Decode(const std::string& endpoint, const serving::DecodeRequest& request,
                      const serving::DecodeSink& sink) override;

 private:
  std::unique_ptr<grpc::ClientContext> Downstream() const;

  WorkerStubs* const stubs_;
  grpc::ServerContext* const context_;
  const absl::Duration default_timeout_;
};

}  // namespace kvq::router

#endif  // KVQ_SERVICES_ROUTER_GRPC_WORKER_CALLS_H_
