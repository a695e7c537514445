#include "services/prefill/prefill_service.h"

#include "absl/time/clock.h"
#include "services/common/grpc_server.h"
#include "services/common/grpc_status.h"
#include "services/serving/proto_convert.h"

namespace kvq::prefill {

grpc::Status PrefillService::GetStats(grpc::ServerContext*, const v1::StatsRequest*,
                                      v1::WorkerStats* out) {
  const PrefillWorker::Stats s = worker_->stats();
  out->set_role("prefill");
  out->mutable_model()->set_fingerprint(worker_->model_id());
  out->set_running(s.running);
  out->set_requests_total(s.requests);
  out->set_blocks_reused_total(s.reused);
  out->set_blocks_pushed_total(s.pushed_blocks);
  out->set_bytes_pushed_total(s.pushed_bytes);
  out->set_bytes_fetched_total(s.fetched_bytes);
  return grpc::Status::OK;
}

grpc::Status PrefillService::Prefill(grpc::ServerContext* context,
                                     const v1::PrefillRequest* request,
                                     v1::PrefillResponse* response) {
  if (services::Draining()) return services::DrainingStatus("prefill worker");
  services::InFlight in_flight;
  const absl::Time start = absl::Now();
  absl::StatusOr<serving::PrefillRequest> converted = serving::FromProto(*request);
  absl::StatusOr<serving::PrefillResult> result =
      converted.ok()
          ? worker_->Run(*converted, [context] { return context->IsCancelled(); })
          : converted.status();
  const absl::Status status = result.status();
  if (status.ok()) serving::ToProto(*result, response);
  if (metrics_) {
    metrics_->RecordRpc("Prefill", status.code(), absl::Now() - start);
  }
  return services::ToGrpcStatus(status);
}

}  // namespace kvq::prefill
