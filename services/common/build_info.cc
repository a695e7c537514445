#include "services/common/build_info.h"

#include <string>

#include "common/version.h"
#include "kernels/block_format.h"
#include "kernels/kernels.h"
#include "prometheus/gauge.h"

namespace kvq::services {

std::map<std::string, std::string> BuildInfoLabels() {
  return {{"version", kVersion},
          {"kernel_variant", kernels::Best().name},
          {"cpu", kernels::CpuModelName()},
          {"block_format", std::to_string(kernels::kFormatVersion)}};
}

void ExportBuildInfo(prometheus::Registry& registry, const std::string& role,
                     const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> labels = BuildInfoLabels();
  labels.insert(extra.begin(), extra.end());
  labels["role"] = role;
  prometheus::BuildGauge()
      .Name("kvq_build_info")
      .Help(
          "1, labelled with the version, the KV-cache kernel variant in use, the CPU "
          "model, the block format version and, on workers holding a model, the "
          "weights mode and its matrix-product kernel")
      .Register(registry)
      .Add(labels)
      .Set(1);
}

}  // namespace kvq::services
