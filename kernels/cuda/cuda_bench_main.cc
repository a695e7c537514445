// cuda_bench: runs RunCudaBench (cuda_bench.h) and prints its table or JSON.
//
//   cuda_bench [--json] [--contexts=1024,4096,16384,65536] [--bits=2] [--reps=30]
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "kernels/cuda/cuda_bench.h"

ABSL_FLAG(bool, json, false, "Print JSON instead of a table.");
ABSL_FLAG(std::string, contexts, "1024,4096,16384,65536", "Context lengths (tokens).");
ABSL_FLAG(int, bits, 2, "Bits of the quantized cache (2, 4 or 8).");
ABSL_FLAG(int, reps, 30, "Timed calls per row; the median is reported.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  kvq::kernels::CudaBenchOptions options;
  options.bits = absl::GetFlag(FLAGS_bits);
  options.reps = absl::GetFlag(FLAGS_reps);
  options.contexts.clear();
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_contexts), ',')) {
    int ctx = 0;
    if (!absl::SimpleAtoi(part, &ctx)) {
      std::fprintf(stderr, "cuda_bench: bad --contexts entry '%s'\n",
                   std::string(part).c_str());
      return 2;
    }
    options.contexts.push_back(ctx);
  }
  double read_gb_per_s = 0;
  const auto rows = kvq::kernels::RunCudaBench(options, &read_gb_per_s);
  if (!rows.ok()) {
    std::fprintf(stderr, "cuda_bench: %s\n", rows.status().ToString().c_str());
    return 1;
  }
  std::fputs(
      kvq::kernels::FormatCudaBench(*rows, read_gb_per_s, absl::GetFlag(FLAGS_json))
          .c_str(),
      stdout);
  return 0;
}
