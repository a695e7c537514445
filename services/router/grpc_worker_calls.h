// The router's calls to its workers over gRPC (router.h WorkerCalls): one
// channel per worker address, made once (WorkerStubs), and per request a
// GrpcWorkerCalls that propagates the client's deadline and cancellation to
// every downstream call (the earlier of the client's deadline and the
// router's default timeout applies). Protos are converted here, once
// (serving/proto_convert.h).
//
//   WorkerStubs stubs(options.prefill, options.decode);
//   GrpcWorkerCalls calls(&stubs, server_context, absl::Minutes(5));
//   router.Generate(request, calls, sink, cancelled);
#ifndef KVQ_SERVICES_ROUTER_GRPC_WORKER_CALLS_H_
#define KVQ_SERVICES_ROUTER_GRPC_WORKER_CALLS_H_

#include <memory>
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
  WorkerStubs(const std::vector<std::string>& prefill,
              const std::vector<std::string>& decode,
              const services::ChannelSecurity& security = services::ChannelSecurity());
  v1::Prefill::Stub& prefill(int i) { return *prefill_[i]; }
  v1::Decode::Stub& decode(int i) { return *decode_[i]; }

 private:
  std::vector<std::unique_ptr<v1::Prefill::Stub>> prefill_;
  std::vector<std::unique_ptr<v1::Decode::Stub>> decode_;
};

class GrpcWorkerCalls final : public WorkerCalls {
 public:
  // Everything must outlive this object (one request).
  GrpcWorkerCalls(WorkerStubs* stubs, grpc::ServerContext* context,
                  absl::Duration default_timeout)
      : stubs_(stubs), context_(context), default_timeout_(default_timeout) {}

  absl::StatusOr<serving::PrefillResult> Prefill(
      int index, const serving::PrefillRequest& request) override;
  absl::Status Decode(int index, const serving::DecodeRequest& request,
                      const serving::DecodeSink& sink) override;

 private:
  std::unique_ptr<grpc::ClientContext> Downstream() const;

  WorkerStubs* const stubs_;
  grpc::ServerContext* const context_;
  const absl::Duration default_timeout_;
};

}  // namespace kvq::router

#endif  // KVQ_SERVICES_ROUTER_GRPC_WORKER_CALLS_H_
