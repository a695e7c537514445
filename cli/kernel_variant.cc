#include "cli/kernel_variant.h"

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_join.h"
#include "cli/command.h"
#include "kernels/kernels.h"

ABSL_FLAG(std::string, kernel_variant, "",
          "The KV-cache kernel variant to use instead of the fastest one this CPU runs "
          "(`kvq version` lists them; e.g. reference, avx2, avx512, int_portable, "
          "int_avx512vnni). A variant the CPU cannot run is an error.");

namespace kvq::cli {
namespace {

const GlobalFlagRegistrar kKernelVariant({
    .name = "kernel_variant",
    .apply = []() -> std::string {
      const std::string name = absl::GetFlag(FLAGS_kernel_variant);
      if (name.empty()) return "";
      absl::Status s = kernels::ForceKernels(name);
      return s.ok() ? "" : std::string(s.message());
    },
});

}  // namespace
}  // namespace kvq::cli
