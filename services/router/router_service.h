// The client-facing Router gRPC service: a thin edge over Router (router.h).
// It converts the GenerateRequest once, runs the router with gRPC worker
// calls that carry the client's deadline and cancellation (and, for calls
// without a client deadline, `default_timeout`), streams each RouteChunk as
// a GenerateResponse and converts the final status once. While the server
// drains it refuses new work (UNAVAILABLE).
//
//   auto service = RouterService::Create({.prefill = {"127.0.0.1:5001"},
//                                         .decode = {...}, .tokenizer = tok.get()});
//   RunGrpcServer({.role = "router"}, {service->get()});
#ifndef KVQ_SERVICES_ROUTER_ROUTER_SERVICE_H_
#define KVQ_SERVICES_ROUTER_ROUTER_SERVICE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "proto/serving.grpc.pb.h"
#include "services/router/grpc_worker_calls.h"
#include "services/router/router.h"

namespace kvq::router {

class RouterService final : public v1::Router::Service {
 public:
  // INVALID_ARGUMENT without a tokenizer or without decode workers. The
  // channels of endpoints the router's targets no longer name are dropped.
  static absl::StatusOr<std::unique_ptr<RouterService>> Create(
      RouterOptions options,
      const services::ChannelSecurity& security = services::ChannelSecurity());

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;

 private:
  RouterService(std::shared_ptr<WorkerStubs> stubs, std::unique_ptr<Router> router);

  const std::shared_ptr<WorkerStubs> stubs_;  // shared with the router's callback
  std::unique_ptr<Router> router_;
};

}  // namespace kvq::router

#endif  // KVQ_SERVICES_ROUTER_ROUTER_SERVICE_H_
