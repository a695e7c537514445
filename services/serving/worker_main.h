// What every serving process does at start: load the model named by
// --model (and its tokenizer), start the /metrics endpoint on --metrics_port
// (printing "kvq <role> metrics on HOST:PORT"), then serve.
//
//   KVQ_ASSIGN_OR_RETURN(WorkerContext w, StartWorker("decode", WorkerNeeds::kModel));
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

// What a process serves with: prefill and decode run the model (a tokenizer
// is optional); the router only turns text into tokens, so it keeps the
// tokenizer and frees the weights right after loading.
enum class WorkerNeeds { kModel, kTokenizerOnly };

struct WorkerContext {
  model::LoadedModel model;  // model.model is null for kTokenizerOnly
  std::unique_ptr<model::Transformer> transformer;  // null for kTokenizerOnly
  std::unique_ptr<services::MetricsEndpoint> endpoint;
  std::unique_ptr<ServingMetrics> metrics;
};

// NOT_FOUND without a model (or, for kTokenizerOnly, a tokenizer).
absl::StatusOr<WorkerContext> StartWorker(const std::string& role, WorkerNeeds needs);

// --host, --worker_port and the role.
ServerOptions WorkerServerOptions(const std::string& role);

// Prints "kvq <role>: <status>" to stderr and returns 1.
int FailStartup(const std::string& role, const absl::Status& status);

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_WORKER_MAIN_H_
