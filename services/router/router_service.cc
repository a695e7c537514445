#include "services/router/router_service.h"

#include <utility>

#include "absl/time/clock.h"
#include "services/common/grpc_server.h"
#include "services/common/grpc_status.h"
#include "services/serving/proto_convert.h"

namespace kvq::router {
namespace {

// GenerateRequest -> RouteRequest. The sampling fields are checked by the
// workers (max_tokens here), so a bad temperature is still INVALID_ARGUMENT.
absl::StatusOr<RouteRequest> FromProto(const v1::GenerateRequest& request) {
  RouteRequest r;
  switch (request.prompt_case()) {
    case v1::GenerateRequest::kText:
      r.text = request.text();
      break;
    case v1::GenerateRequest::kTokens:
      r.tokens.assign(request.tokens().ids().begin(), request.tokens().ids().end());
      break;
    default:
      return absl::InvalidArgumentError("the request has neither text nor token ids");
  }
  r.kv = request.cache().kv();
  r.return_text = request.return_text();
  const v1::SamplingParams& s = request.sampling();
  r.generation.sampling = {s.temperature(), s.top_p(), s.top_k(), s.seed()};
  r.generation.max_tokens = s.max_tokens();
  r.generation.stop_ids.assign(s.stop_token_ids().begin(), s.stop_token_ids().end());
  r.generation.ignore_eos = s.ignore_eos();
  return r;
}

void ToProto(const RouteChunk& c, v1::GenerateResponse* out) {
  out->mutable_tokens()->Add(c.tokens.begin(), c.tokens.end());
  out->set_text(c.text);
  out->set_finished(c.finished);
  out->set_finish_reason(c.finish_reason);
  out->set_prefill_worker(c.prefill_worker);
  out->set_decode_worker(c.decode_worker);
  out->set_prefill_attempts(c.prefill_attempts);
  if (c.prefill) serving::ToProto(*c.prefill, out->mutable_prefill());
  out->set_decode_bytes_fetched(c.decode_bytes_fetched);
  out->set_fp16_equivalent_bytes(c.fp16_equivalent_bytes);
  out->set_stored_bytes(c.stored_bytes);
  out->mutable_prompt_tokens()->Add(c.prompt_tokens.begin(), c.prompt_tokens.end());
  out->set_reprefills(c.reprefills);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RouterService>> RouterService::Create(
    RouterOptions options, const services::ChannelSecurity& security) {
  auto stubs = std::make_shared<WorkerStubs>(security);
  auto chained = std::move(options.on_endpoints_changed);
  options.on_endpoints_changed = [stubs, chained](const std::vector<std::string>& all) {
    stubs->Retain(all);
    if (chained) chained(all);
  };
  absl::StatusOr<std::unique_ptr<Router>> router = Router::Create(std::move(options));
  if (!router.ok()) return router.status();
  return std::unique_ptr<RouterService>(
      new RouterService(std::move(stubs), std::move(*router)));
}

RouterService::RouterService(std::shared_ptr<WorkerStubs> stubs,
                             std::unique_ptr<Router> router)
    : stubs_(std::move(stubs)), router_(std::move(router)) {}

grpc::Status RouterService::Generate(grpc::ServerContext* context,
                                     const v1::GenerateRequest* request,
                                     grpc::ServerWriter<v1::GenerateResponse>* writer) {
  if (services::Draining()) return services::DrainingStatus("router");
  services::InFlight in_flight;
  const absl::Time start = absl::Now();
  absl::StatusOr<RouteRequest> converted = FromProto(*request);
  absl::Status status = converted.status();
  if (converted.ok()) {
    GrpcWorkerCalls calls(stubs_.get(), context, router_->options().default_timeout);
    status = router_->Generate(
        *converted, calls,
        [writer](const RouteChunk& chunk) {
          v1::GenerateResponse out;
          ToProto(chunk, &out);
          return writer->Write(out);
        },
        [context] { return context->IsCancelled(); });
  }
  if (serving::ServingMetrics* m = router_->options().metrics) {
    m->RecordRpc("Generate", status.code(), absl::Now() - start);
  }
  return services::ToGrpcStatus(status);
}

}  // namespace kvq::router
