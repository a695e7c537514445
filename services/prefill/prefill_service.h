// The Prefill gRPC service: a thin edge over PrefillWorker
// (prefill_worker.h). It converts the request once
// (serving/proto_convert.h), runs the worker, converts the result or the
// status once (services/common/grpc_status.h), and records the RPC's
// metrics. While the server drains it refuses new work (UNAVAILABLE).
//
//   PrefillWorker worker(model, transformer, store.get(), metrics, {});
//   PrefillService service(&worker, metrics);
//   RunGrpcServer({.role = "prefill"}, {&service});
#ifndef KVQ_SERVICES_PREFILL_PREFILL_SERVICE_H_
#define KVQ_SERVICES_PREFILL_PREFILL_SERVICE_H_

#include "proto/serving.grpc.pb.h"
#include "services/prefill/prefill_worker.h"
#include "services/serving/serving_metrics.h"

namespace kvq::prefill {

class PrefillService final : public v1::Prefill::Service {
 public:
  // `worker` must outlive the service; `metrics` may be null.
  PrefillService(PrefillWorker* worker, serving::ServingMetrics* metrics)
      : worker_(worker), metrics_(metrics) {}

  grpc::Status Prefill(grpc::ServerContext* context, const v1::PrefillRequest* request,
                       v1::PrefillResponse* response) override;
  grpc::Status GetStats(grpc::ServerContext* context, const v1::StatsRequest* request,
                        v1::WorkerStats* response) override;

 private:
  PrefillWorker* const worker_;
  serving::ServingMetrics* const metrics_;
};

}  // namespace kvq::prefill

#endif  // KVQ_SERVICES_PREFILL_PREFILL_SERVICE_H_
