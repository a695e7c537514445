// What every serving process does at start: load the model named by
// --model (and its tokenizer), start the /metrics endpoint on --metrics_port
// (printing "kvq <role> metrics on HOST:PORT"), then serve.
//
//   KVQ_ASSIGN_OR_RETURN(WorkerContext w, StartWorker("decode"));
//   DecodeService decode(*w.model.model, *w.transformer, ...);
//   return RunGrpcServer(WorkerServerOptions("decode"), {&decode});
#ifndef KVQ_SERVICES_SERVING_WORKER_MAIN_H_
#define KVQ_SERVICES_SERVING_WORKER_MAIN_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/model_loader.h"
#include "model/transformer.h"
#include "services/common/metrics.h"
#include "services/serving/grpc_server.h"
#include "services/serving/serving_metrics.h"

namespace kvq::serving {

struct WorkerContext {
  model::LoadedModel model;
  std::unique_ptr<model::Transformer> transformer;
  std::unique_ptr<services::MetricsEndpoint> endpoint;
  std::unique_ptr<ServingMetrics> metrics;
};

// NOT_FOUND without a model (or, when `need_tokenizer`, a tokenizer).
absl::StatusOr<WorkerContext> StartWorker(const std::string& role, bool need_tokenizer);

// --host, --worker_port and the role.
ServerOptions WorkerServerOptions(const std::string& role);

// Prints "kvq <role>: <status>" to stderr and returns 1.
int FailStartup(const std::string& role, const absl::Status& status);

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_WORKER_MAIN_H_
