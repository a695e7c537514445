#include "services/serving/worker_main.h"

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/authorizer.h"
#include "services/common/build_info.h"

namespace kvq::serving {

absl::StatusOr<WorkerContext> StartWorker(const WorkerOptions& options) {
  const std::string& role = options.role;
  const WorkerNeeds needs = options.needs;
  WorkerContext w;
  const std::string& path = options.model_path;
  if (path.empty())
    return absl::NotFoundError("no --model given and no default model found");
  absl::StatusOr<model::LoadedModel> loaded = model::LoadModel(
      path, {.tokenizer_path = options.tokenizer_path, .weights = options.weights});
  if (!loaded.ok()) return loaded.status();
  w.model = std::move(*loaded);
  w.config = w.model.model->config;
  if (needs == WorkerNeeds::kTokenizerOnly) {
    if (w.model.tokenizer == nullptr) {
      return absl::NotFoundError(absl::StrCat("no tokenizer found beside ",
                                              w.model.model_path, "; pass --tokenizer"));
    }
    w.model.model.reset();  // the weights: hundreds of MB a router never reads
  } else {
    w.transformer =
        std::make_unique<model::Transformer>(*w.model.model, model::RawWeights::kRelease);
  }
  auto endpoint = services::MetricsEndpoint::Start(
      {.role = role, .port = options.metrics_port, .bind_host = options.metrics_host});
  if (!endpoint.ok()) return endpoint.status();
  w.endpoint = std::move(*endpoint);
  std::map<std::string, std::string> weights;
  if (w.transformer != nullptr) {
    weights = {{"weights", model::WeightsModeName(w.model.model->weights_mode)},
               {"weights_kernel", w.transformer->weights_kernel()}};
  }
  services::ExportBuildInfo(w.endpoint->registry(), role, weights);
  std::string name = std::filesystem::path(w.model.model_path).filename().string();
  if (name.empty())
    name = std::filesystem::path(w.model.model_path).parent_path().filename();
  w.metrics = std::make_unique<ServingMetrics>(w.endpoint->registry(), role, name);
  if (w.endpoint->port() >= 0) {
    std::printf("kvq %s metrics on %s:%d\n", role.c_str(), options.metrics_host.c_str(),
                w.endpoint->port());
    std::fflush(stdout);
  }
  return w;
}

absl::StatusOr<WorkerStore::Credentials> StoreCredentials(
    const std::string& token_file, const services::TlsOptions& tls) {
  WorkerStore::Credentials credentials;
  credentials.tls = tls;
  if (!token_file.empty()) {
    absl::StatusOr<std::vector<std::string>> tokens = services::ReadTokenFile(token_file);
    if (!tokens.ok()) return tokens.status();
    credentials.auth_token = (*tokens)[0];
  }
  return credentials;
}

int FailStartup(const std::string& role, const absl::Status& status) {
  std::fprintf(stderr, "kvq serve %s: %s\n", role.c_str(), status.ToString().c_str());
  return 1;
}

}  // namespace kvq::serving
