#include "services/router/grpc_worker_calls.h"

#include <iterator>
#include <set>
#include <utility>

#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "services/common/grpc_status.h"
#include "services/serving/proto_convert.h"

namespace kvq::router {

WorkerStubs::WorkerStubs(services::ChannelSecurity security)
    : security_(std::move(security)) {}

WorkerStubs::Stubs& WorkerStubs::For(const std::string& endpoint) {
  Stubs& s = stubs_[endpoint];
  if (s.prefill == nullptr) {
    // One channel per endpoint, shared by both services' stubs. A worker
    // that restarts (same address) is reconnected to within a second, not
    // after gRPC's default backoff, which grows to two minutes. gRPC takes
    // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS as the time one connection attempt
    // may take (not the pause between attempts, which the other two set):
    // at 100 ms a worker busy with 64 streams (under ASan) failed requests
    // with "connection attempt timed out before receiving SETTINGS frame".
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    std::shared_ptr<grpc::Channel> channel = security_.CreateChannel(endpoint, args);
    s.prefill = v1::Prefill::NewStub(channel);
    s.decode = v1::Decode::NewStub(channel);
  }
  return s;
}

std::shared_ptr<v1::Prefill::Stub> WorkerStubs::prefill(const std::string& endpoint) {
  std::lock_guard<std::mutex> lock(mu_);
  return For(endpoint).prefill;
}

std::shared_ptr<v1::Decode::Stub> WorkerStubs::decode(const std::string& endpoint) {
  std::lock_guard<std::mutex> lock(mu_);
  return For(endpoint).decode;
}

void WorkerStubs::Retain(const std::vector<std::string>& endpoints) {
  const std::set<std::string> keep(endpoints.begin(), endpoints.end());
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = stubs_.begin(); it != stubs_.end();) {
    it = keep.count(it->first) ? std::next(it) : stubs_.erase(it);
  }
}

std::unique_ptr<grpc::ClientContext> GrpcWorkerCalls::Downstream() const {
  // Propagates the client's deadline and cancellation; the earlier of the
  // client's deadline and ours applies.
  std::unique_ptr<grpc::ClientContext> c =
      grpc::ClientContext::FromServerContext(*context_);
  c->set_deadline(absl::ToChronoTime(absl::Now() + default_timeout_));
  return c;
}

absl::StatusOr<serving::PrefillResult> GrpcWorkerCalls::Prefill(
    const std::string& endpoint, const serving::PrefillRequest& request) {
  v1::PrefillRequest proto;
  serving::ToProto(request, &proto);
  v1::PrefillResponse response;
  auto ctx = Downstream();
  const grpc::Status s = stubs_->prefill(endpoint)->Prefill(ctx.get(), proto, &response);
  if (!s.ok()) return services::FromGrpcStatus(s);
  return serving::FromProto(response);
}

absl::Status GrpcWorkerCalls::Decode(const std::string& endpoint,
                                     const serving::DecodeRequest& request,
                                     const serving::DecodeSink& sink) {
  v1::DecodeRequest proto;
  serving::ToProto(request, &proto);
  auto ctx = Downstream();
  const std::shared_ptr<v1::Decode::Stub> stub = stubs_->decode(endpoint);
  std::unique_ptr<grpc::ClientReader<v1::DecodeResponse>> reader =
      stub->Generate(ctx.get(), proto);
  v1::DecodeResponse chunk;
  while (reader->Read(&chunk)) {
    if (!sink(serving::FromProto(chunk))) {
      ctx->TryCancel();
      break;
    }
  }
  return services::FromGrpcStatus(reader->Finish());
}

}  // namespace kvq::router
