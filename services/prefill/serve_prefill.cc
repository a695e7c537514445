// `kvq serve prefill`: the prefill worker (design section 5) until SIGTERM.
// Prints "kvq prefill listening on HOST:PORT" once serving.
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "services/common/grpc_server.h"
#include "services/common/tls.h"
#include "services/prefill/prefill_service.h"
#include "services/prefill/prefill_worker.h"
#include "services/serving/request.h"
#include "services/serving/worker_main.h"
#include "services/serving/worker_store.h"

ABSL_FLAG(bool, push_after_prefill, false,
          "Prefill worker: push the KV blocks after the whole prefill instead of each "
          "layer as computed (the baseline of `kvq bench serve`'s overlap measurement).");

namespace kvq::prefill {
namespace {

int ServePrefill(const std::vector<std::string>&) {
  absl::StatusOr<model::WeightsMode> weights = cli::WeightsModeFromFlags();
  if (!weights.ok()) return serving::FailStartup("prefill", weights.status());
  auto worker = serving::StartWorker({.role = "prefill",
                                      .model_path = cli::ModelPathFromFlags(),
                                      .tokenizer_path = cli::TokenizerPathFromFlags(),
                                      .weights = *weights,
                                      .metrics_host = absl::GetFlag(FLAGS_host),
                                      .metrics_port = absl::GetFlag(FLAGS_metrics_port)});
  if (!worker.ok()) return serving::FailStartup("prefill", worker.status());
  if (absl::GetFlag(FLAGS_store).empty()) {
    return serving::FailStartup(
        "prefill", absl::InvalidArgumentError("--store HOST:PORT is required"));
  }
  if (absl::GetFlag(FLAGS_kv_lease_ttl) < absl::ZeroDuration()) {
    return serving::FailStartup(
        "prefill", absl::InvalidArgumentError("--kv_lease_ttl must be >= 0"));
  }
  const std::string default_kv = absl::GetFlag(FLAGS_default_kv);
  if (absl::Status s =
          serving::ResolveKvMode(default_kv, worker->model.model->config, false).status();
      !s.ok()) {
    return serving::FailStartup("prefill", absl::InvalidArgumentError(absl::StrCat(
                                               "--default_kv: ", s.message())));
  }
  const services::TlsOptions tls = cli::TlsOptionsFromFlags();
  auto server_credentials = services::ServerCredentials(tls);
  if (!server_credentials.ok()) {
    return serving::FailStartup("prefill", server_credentials.status());
  }
  auto store_credentials =
      serving::StoreCredentials(absl::GetFlag(FLAGS_store_token_file), tls);
  if (!store_credentials.ok()) {
    return serving::FailStartup("prefill", store_credentials.status());
  }
  auto store = serving::WorkerStore::Connect(
      absl::GetFlag(FLAGS_store), absl::GetFlag(FLAGS_store_timeout), *store_credentials);
  if (!store.ok()) return serving::FailStartup("prefill", store.status());
  PrefillWorker core(*worker->model.model, *worker->transformer, store->get(),
                     worker->metrics.get(),
                     {.debug_layer_delay = absl::GetFlag(FLAGS_debug_layer_delay),
                      .push_after_prefill = absl::GetFlag(FLAGS_push_after_prefill),
                      .lease_ttl = absl::GetFlag(FLAGS_kv_lease_ttl),
                      .debug_fetch_delay = absl::GetFlag(FLAGS_debug_fetch_delay),
                      .default_kv = default_kv});
  PrefillService service(&core, worker->metrics.get());
  absl::Status s = services::RunGrpcServer({.role = "prefill",
                                            .host = absl::GetFlag(FLAGS_host),
                                            .port = absl::GetFlag(FLAGS_worker_port),
                                            .grace = absl::GetFlag(FLAGS_shutdown_grace),
                                            .credentials = *server_credentials},
                                           {&service});
  return s.ok() ? 0 : serving::FailStartup("prefill", s);
}

const cli::CommandRegistrar kServePrefill({
    .path = "serve prefill",
    .summary = "Run a prefill worker (gRPC Prefill, design section 5).",
    .description =
        "Runs prompts through the model, pushes their KV blocks to the store (--store)\n"
        "and answers with a handle. Prints `kvq prefill listening on HOST:PORT`.",
    .flags = cli::WithTlsFlags({"model", "tokenizer", "weights", "host", "worker_port",
                                "store", "store_token_file", "metrics_port",
                                "request_timeout", "store_timeout", "shutdown_grace",
                                "kv_lease_ttl", "debug_layer_delay", "debug_fetch_delay",
                                "push_after_prefill", "default_kv"}),
    .run = ServePrefill,
});

}  // namespace
}  // namespace kvq::prefill
