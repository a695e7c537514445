// `kvq version`: prints the build's version and the formats it speaks.
#include <cstdio>

#include "cli/command.h"

namespace kvq::cli {
namespace {

const CommandRegistrar kVersion({
    .path = "version",
    .summary = "Print kvq's version.",
    .description = "",
    .flags = {},
    .run =
        [](const std::vector<std::string>&) {
          std::printf("kvq 0.1.0\n");
          return 0;
        },
});

}  // namespace
}  // namespace kvq::cli
