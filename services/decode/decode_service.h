// The Decode gRPC service: a thin edge over DecodeWorker (decode_worker.h).
// It converts the request once (serving/proto_convert.h), streams the
// worker's chunks as DecodeResponse messages, converts the final status once
// (services/common/grpc_status.h) and records the RPC's metrics. While the
// server drains it refuses new work (UNAVAILABLE).
//
//   DecodeWorker worker(model, transformer, store.get(), metrics, {});
//   DecodeService service(&worker, metrics);
//   RunGrpcServer({.role = "decode", .on_drain = [&] { worker.Shutdown(); }},
//                 {&service});
#ifndef KVQ_SERVICES_DECODE_DECODE_SERVICE_H_
#define KVQ_SERVICES_DECODE_DECODE_SERVICE_H_

#include "proto/serving.grpc.pb.h"
#include "services/decode/decode_worker.h"
#include "services/serving/serving_metrics.h"

namespace kvq::decode {

class DecodeService final : public v1::Decode::Service {
 public:
  // `worker` must outlive the service; `metrics` may be null.
  DecodeService(DecodeWorker* worker, serving::ServingMetrics* metrics)
      : worker_(worker), metrics_(metrics) {}

  grpc::Status Generate(grpc::ServerContext* context, const v1::DecodeRequest* request,
                        grpc::ServerWriter<v1::DecodeResponse>* writer) override;
  grpc::Status GetStats(grpc::ServerContext* context, const v1::StatsRequest* request,
                        v1::WorkerStats* response) override;

 private:
  DecodeWorker* const worker_;
  serving::ServingMetrics* const metrics_;
};

}  // namespace kvq::decode

#endif  // KVQ_SERVICES_DECODE_DECODE_SERVICE_H_
