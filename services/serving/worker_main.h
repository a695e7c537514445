// What every serving worker process does at start: load the model (and its
// tokenizer), start the /metrics endpoint (printing "kvq <role> metrics on
// HOST:PORT"), then serve (services/common/grpc_server.h). The command files
// (serve_*.cc) fill WorkerOptions from their flags.
//
//   KVQ_ASSIGN_OR_RETURN(WorkerContext w, StartWorker({.role = "decode", ...}));
//   DecodeGrpcService decode(...);
//   return RunGrpcServer({.role = "decode", ...}, {&decode});
#ifndef KVQ_SERVICES_SERVING_WORKER_MAIN_H_
#define KVQ_SERVICES_SERVING_WORKER_MAIN_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/model_loader.h"
#include "model/transformer.h"
#include "services/common/metrics.h"
#include "services/common/tls_options.h"
#include "services/serving/serving_metrics.h"
#include "services/serving/worker_store.h"

namespace kvq::serving {

// What a process serves with: prefill and decode run the model (a tokenizer
// is optional); the router only turns text into tokens, so it keeps the
// tokenizer and frees the weights right after loading.
enum class WorkerNeeds { kModel, kTokenizerOnly };

struct WorkerContext {
  model::LoadedModel model;   // model.model is null for kTokenizerOnly
  model::ModelConfig config;  // the model's, kept for kTokenizerOnly too
  std::unique_ptr<model::Transformer> transformer;  // null for kTokenizerOnly
  std::unique_ptr<services::MetricsEndpoint> endpoint;
  std::unique_ptr<ServingMetrics> metrics;
};

struct WorkerOptions {
  std::string role;  // "prefill", "decode", "router"
  WorkerNeeds needs = WorkerNeeds::kModel;
  std::string model_path;      // checkpoint file or directory
  std::string tokenizer_path;  // "" = the one beside the model
  model::WeightsMode weights = model::WeightsMode::kFp32;  // how matrices are held
  std::string metrics_host = "127.0.0.1";
  int metrics_port = -1;  // -1: no endpoint, 0: any free port
};

// NOT_FOUND without a model (or, for kTokenizerOnly, a tokenizer).
absl::StatusOr<WorkerContext> StartWorker(const WorkerOptions& options);

// How a worker reaches the store: the first token of `token_file` ("" =
// none; INVALID_ARGUMENT naming an unreadable or empty file) and `tls`.
absl::StatusOr<WorkerStore::Credentials> StoreCredentials(
    const std::string& token_file, const services::TlsOptions& tls);

// Prints "kvq <role>: <status>" to stderr and returns 1.
int FailStartup(const std::string& role, const absl::Status& status);

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_WORKER_MAIN_H_
