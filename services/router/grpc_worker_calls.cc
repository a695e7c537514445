#include "services/router/grpc_worker_calls.h"

#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "services/common/grpc_status.h"
#include "services/serving/proto_convert.h"

namespace kvq::router {

WorkerStubs::WorkerStubs(const std::vector<std::string>& prefill,
                         const std::vector<std::string>& decode,
                         const services::ChannelSecurity& security) {
  for (const std::string& a : prefill) {
    prefill_.push_back(v1::Prefill::NewStub(security.CreateChannel(a)));
  }
  for (const std::string& a : decode) {
    decode_.push_back(v1::Decode::NewStub(security.CreateChannel(a)));
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
    int index, const serving::PrefillRequest& request) {
  v1::PrefillRequest proto;
  serving::ToProto(request, &proto);
  v1::PrefillResponse response;
  auto ctx = Downstream();
  const grpc::Status s = stubs_->prefill(index).Prefill(ctx.get(), proto, &response);
  if (!s.ok()) return services::FromGrpcStatus(s);
  return serving::FromProto(response);
}

absl::Status GrpcWorkerCalls::Decode(int index, const serving::DecodeRequest& request,
                                     const serving::DecodeSink& sink) {
  v1::DecodeRequest proto;
  serving::ToProto(request, &proto);
  auto ctx = Downstream();
  std::unique_ptr<grpc::ClientReader<v1::DecodeResponse>> reader =
      stubs_->decode(index).Generate(ctx.get(), proto);
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
