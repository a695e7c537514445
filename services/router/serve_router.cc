// `kvq serve router`: the client-facing router (design section 5) until
// SIGTERM. Prints "kvq router listening on HOST:PORT" once serving.
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "model/kv_mode.h"
#include "services/common/grpc_server.h"
#include "services/common/tls.h"
#include "services/router/router_service.h"
#include "services/serving/worker_main.h"

ABSL_FLAG(absl::Duration, resolve_interval, absl::Seconds(5),
          "Router: how often dns:///NAME:PORT worker targets are resolved again (also "
          "a second after a worker answered UNAVAILABLE); 0 = only at start.");

namespace kvq::router {
namespace {

int ServeRouter(const std::vector<std::string>&) {
  auto worker = serving::StartWorker({.role = "router",
                                      .needs = serving::WorkerNeeds::kTokenizerOnly,
                                      .model_path = cli::ModelPathFromFlags(),
                                      .tokenizer_path = cli::TokenizerPathFromFlags(),
                                      .metrics_host = absl::GetFlag(FLAGS_host),
                                      .metrics_port = absl::GetFlag(FLAGS_metrics_port)});
  if (!worker.ok()) return serving::FailStartup("router", worker.status());
  RouterOptions options;
  options.prefill = absl::GetFlag(FLAGS_prefill);
  options.decode = absl::GetFlag(FLAGS_decode);
  options.tokenizer = worker->model.tokenizer.get();
  options.default_timeout = absl::GetFlag(FLAGS_request_timeout);
  options.metrics = worker->metrics.get();
  options.max_context_tokens = worker->config.seq_len;
  const services::TlsOptions tls = cli::TlsOptionsFromFlags();
  auto server_credentials = services::ServerCredentials(tls);
  if (!server_credentials.ok()) {
    return serving::FailStartup("router", server_credentials.status());
  }
  // The router dials its workers with the same certificate (mTLS).
  auto worker_security = services::ChannelSecurity::Create(tls);
  if (!worker_security.ok()) {
    return serving::FailStartup("router", worker_security.status());
  }
  options.resolve_interval = absl::GetFlag(FLAGS_resolve_interval);
  options.default_kv = absl::GetFlag(FLAGS_default_kv);
  if (absl::Status s = model::ParseKvMode(options.default_kv).status(); !s.ok()) {
    return serving::FailStartup("router", absl::InvalidArgumentError(absl::StrCat(
                                              "--default_kv: ", s.message())));
  }
  if (options.resolve_interval < absl::ZeroDuration()) {
    return serving::FailStartup(
        "router", absl::InvalidArgumentError("--resolve_interval must be >= 0"));
  }
  auto service = RouterService::Create(options, *worker_security);
  if (!service.ok()) return serving::FailStartup("router", service.status());
  absl::Status s = services::RunGrpcServer({.role = "router",
                                            .host = absl::GetFlag(FLAGS_host),
                                            .port = absl::GetFlag(FLAGS_worker_port),
                                            .grace = absl::GetFlag(FLAGS_shutdown_grace),
                                            .credentials = *server_credentials},
                                           {service->get()});
  return s.ok() ? 0 : serving::FailStartup("router", s);
}

const cli::CommandRegistrar kServeRouter({
    .path = "serve router",
    .summary = "Run the router (client-facing gRPC Router, design section 5).",
    .description =
        "Encodes prompts, picks the least-loaded prefill worker (--prefill, retried "
        "once\n"
        "on another) and a decode worker (--decode), and streams tokens back. A\n"
        "dns:///NAME:PORT target is every address NAME resolves to (re-resolved every\n"
        "--resolve_interval). Prints `kvq router listening on HOST:PORT`.",
    .flags = cli::WithTlsFlags({"model", "tokenizer", "host", "worker_port", "prefill",
                                "decode", "metrics_port", "request_timeout",
                                "shutdown_grace", "resolve_interval", "default_kv"}),
    .run = ServeRouter,
});

}  // namespace
}  // namespace kvq::router
