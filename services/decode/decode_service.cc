#include "services/decode/decode_service.h"

#include "absl/time/clock.h"
#include "services/common/grpc_server.h"
#include "services/common/grpc_status.h"
#include "services/serving/proto_convert.h"

namespace kvq::decode {

grpc::Status DecodeService::GetStats(grpc::ServerContext*, const v1::StatsRequest*,
                                     v1::WorkerStats* out) {
  const DecodeWorker::Stats s = worker_->stats();
  out->set_role("decode");
  out->mutable_model()->set_fingerprint(worker_->model_id());
  out->set_running(s.budget.holders);
  out->set_waiting(s.budget.waiting);
  out->set_kv_bytes_used(s.budget.used_bytes);
  out->set_kv_budget_bytes(s.budget.budget_bytes);
  out->set_requests_total(s.requests);
  out->set_requests_waited_total(s.budget.waited_total);
  out->set_requests_cancelled_total(s.cancelled);
  out->set_bytes_fetched_total(s.bytes_fetched);
  out->set_decode_steps_total(s.engine.steps);
  out->set_decode_tokens_total(s.engine.tokens);
  return grpc::Status::OK;
}

grpc::Status DecodeService::Generate(grpc::ServerContext* context,
                                     const v1::DecodeRequest* request,
                                     grpc::ServerWriter<v1::DecodeResponse>* writer) {
  if (services::Draining()) return services::DrainingStatus("decode worker");
  services::InFlight in_flight;
  const absl::Time start = absl::Now();
  absl::StatusOr<serving::DecodeRequest> converted = serving::FromProto(*request);
  absl::Status status = converted.status();
  if (converted.ok()) {
    status = worker_->Generate(
        *converted,
        [writer](const serving::DecodeChunk& chunk) {
          v1::DecodeResponse out;
          serving::ToProto(chunk, &out);
          return writer->Write(out);
        },
        [context] { return context->IsCancelled(); });
  }
  if (metrics_) {
    metrics_->RecordRpc("Generate", status.code(), absl::Now() - start);
  }
  return services::ToGrpcStatus(status);
}

}  // namespace kvq::decode
