// `kvq serve decode`: the decode worker (design section 5) until SIGTERM.
// Prints "kvq decode listening on HOST:PORT" once serving. Without --store it
// serves only colocated requests (prompt in, no handle).
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "services/common/grpc_server.h"
#include "services/common/tls.h"
#include "services/decode/decode_service.h"
#include "services/decode/decode_worker.h"
#include "services/serving/request.h"
#include "services/serving/worker_main.h"
#include "services/serving/worker_store.h"

namespace kvq::decode {
namespace {

int ServeDecode(const std::vector<std::string>&) {
  absl::StatusOr<model::WeightsMode> weights = cli::WeightsModeFromFlags();
  if (!weights.ok()) return serving::FailStartup("decode", weights.status());
  auto worker = serving::StartWorker({.role = "decode",
                                      .model_path = cli::ModelPathFromFlags(),
                                      .tokenizer_path = cli::TokenizerPathFromFlags(),
                                      .weights = *weights,
                                      .metrics_host = absl::GetFlag(FLAGS_host),
                                      .metrics_port = absl::GetFlag(FLAGS_metrics_port)});
  if (!worker.ok()) return serving::FailStartup("decode", worker.status());
  const services::TlsOptions tls = cli::TlsOptionsFromFlags();
  auto server_credentials = services::ServerCredentials(tls);
  if (!server_credentials.ok()) {
    return serving::FailStartup("decode", server_credentials.status());
  }
  std::unique_ptr<serving::WorkerStore> store;
  if (!absl::GetFlag(FLAGS_store).empty()) {
    // Decode workers renew and release the leases handed to them: they need
    // the worker token (or a writer certificate) too.
    auto store_credentials =
        serving::StoreCredentials(absl::GetFlag(FLAGS_store_token_file), tls);
    if (!store_credentials.ok()) {
      return serving::FailStartup("decode", store_credentials.status());
    }
    auto s = serving::WorkerStore::Connect(absl::GetFlag(FLAGS_store),
                                           absl::GetFlag(FLAGS_store_timeout),
                                           *store_credentials);
    if (!s.ok()) return serving::FailStartup("decode", s.status());
    store = std::move(*s);
  }
  if (absl::GetFlag(FLAGS_kv_budget_bytes) <= 0 || absl::GetFlag(FLAGS_max_batch) < 1) {
    return serving::FailStartup(
        "decode",
        absl::InvalidArgumentError("--kv_budget_bytes and --max_batch must be > 0"));
  }
  DecodeOptions options;
  options.kv_budget_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_kv_budget_bytes));
  options.max_batch = absl::GetFlag(FLAGS_max_batch);
  options.debug_step_delay = absl::GetFlag(FLAGS_debug_step_delay);
  options.default_kv = absl::GetFlag(FLAGS_default_kv);
  if (absl::Status s =
          serving::ResolveKvMode(options.default_kv, worker->model.model->config, true)
              .status();
      !s.ok()) {
    return serving::FailStartup("decode", absl::InvalidArgumentError(absl::StrCat(
                                              "--default_kv: ", s.message())));
  }
  if (worker->model.tokenizer) {
    options.bos_id = worker->model.tokenizer->bos_id();
    options.eos_id = worker->model.tokenizer->eos_id();
  }
  DecodeWorker core(*worker->model.model, *worker->transformer, store.get(),
                    worker->metrics.get(), options);
  DecodeService service(&core, worker->metrics.get());
  absl::Status s = services::RunGrpcServer({.role = "decode",
                                            .host = absl::GetFlag(FLAGS_host),
                                            .port = absl::GetFlag(FLAGS_worker_port),
                                            .grace = absl::GetFlag(FLAGS_shutdown_grace),
                                            .credentials = *server_credentials,
                                            .on_drain = [&core] { core.Shutdown(); }},
                                           {&service});
  return s.ok() ? 0 : serving::FailStartup("decode", s);
}

const cli::CommandRegistrar kServeDecode({
    .path = "serve decode",
    .summary = "Run a decode worker (gRPC Decode, design section 5).",
    .description =
        "Fetches a handle's KV blocks from the store (--store) and generates, many\n"
        "sequences batched within --kv_budget_bytes. Prints `kvq decode listening on\n"
        "HOST:PORT`.",
    .flags = cli::WithTlsFlags({"model", "tokenizer", "weights", "host", "worker_port",
                                "store", "store_token_file", "kv_budget_bytes",
                                "max_batch", "metrics_port", "request_timeout",
                                "store_timeout", "shutdown_grace", "debug_step_delay",
                                "default_kv"}),
    .run = ServeDecode,
});

}  // namespace
}  // namespace kvq::decode
