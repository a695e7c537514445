// `kvq bench kernels [--json] [--quick] [--variant=NAME,...|all] [--contexts=N,...]
// [--threads=N,...] [--repeats=N]`: runs the workloads of kernels_bench.h and prints a
// table, or JSON Lines with --json (one object per line: "config",
// "bandwidth", "compute", "attention" and "quantize" records).
#include <cstdio>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "kernels/bench/kernels_bench.h"
#include "kernels/kernels.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, variant, "",
          "kvq bench kernels: comma-separated kernel variants to measure, one set of "
          "rows each (reference, int_portable, int_avx2, int_avxvnni, int_avx512vnni, "
          "avx2, avx512; 'all': every one this CPU runs but the two scalar ones); "
          "empty: the one kvq picks for this CPU.");
ABSL_FLAG(std::string, contexts, "",
          "kvq bench kernels: comma-separated context lengths in tokens (e.g. 16384); "
          "empty: 1024,4096,16384,65536 (1024,4096 with --quick).");

namespace kvq::kernels::bench {
namespace {

void PrintJson(const KernelsBenchResult& r) {
  const KernelsBenchOptions& o = r.options;
  nlohmann::json config = {{"record", "config"},
                           {"variant", r.variant},
                           {"cpu", r.cpu},
                           {"head_dim", o.head_dim},
                           {"n_heads", o.n_heads},
                           {"n_kv_heads", o.n_kv_heads},
                           {"block_tokens", o.block_tokens},
                           {"group", o.group},
                           {"residual", o.residual},
                           {"bits", o.bits},
                           {"working_set_bytes", o.working_set_bytes},
                           {"reps", o.reps},
                           {"rounds", r.rounds}};
  std::printf("%s\n", config.dump().c_str());
  for (const BandwidthRow& b : r.bandwidth) {
    nlohmann::json j = {{"record", "bandwidth"}, {"variant", r.variant},
                        {"cpu", r.cpu},          {"threads", b.threads},
                        {"bytes", b.bytes},      {"gbps", b.gbps}};
    std::printf("%s\n", j.dump().c_str());
  }
  for (const ComputeRow& c : r.compute) {
    nlohmann::json j = {{"record", "compute"},
                        {"variant", r.variant},
                        {"cpu", r.cpu},
                        {"threads", c.threads},
                        {"fma_per_s", c.fma_per_s},
                        {"fp16_ceiling_gbps", c.fp16_ceiling_gbps},
                        {"quant_ceiling_gbps", c.quant_ceiling_gbps}};
    std::printf("%s\n", j.dump().c_str());
  }
  for (const AttentionRow& a : r.attention) {
    nlohmann::json j = {{"record", "attention"},
                        {"variant", r.variant},
                        {"cpu", r.cpu},
                        {"ctx", a.ctx},
                        {"threads", a.threads},
                        {"kv", a.kv},
                        {"us_per_call", a.us_per_call},
                        {"bytes_read", a.bytes_read},
                        {"gbps", a.gbps},
                        {"bw_gbps", a.bw_gbps},
                        {"bw_fraction", a.bw_fraction},
                        {"sequences", a.sequences}};
    if (a.kv != "fp16") j["speedup_vs_fp16"] = a.speedup_vs_fp16;
    if (a.slowdown_vs_no_outliers > 0) {
      j["slowdown_vs_no_outliers"] = a.slowdown_vs_no_outliers;
    }
    if (r.rounds > 1) {  // each round's figures (the fields above: their medians)
      j["us_per_call_runs"] = a.us_per_call_runs;
      j["bw_fraction_runs"] = a.bw_fraction_runs;
      if (a.kv != "fp16") j["speedup_vs_fp16_runs"] = a.speedup_vs_fp16_runs;
      if (a.slowdown_vs_no_outliers > 0) {
        j["slowdown_vs_no_outliers_runs"] = a.slowdown_vs_no_outliers_runs;
      }
    }
    std::printf("%s\n", j.dump().c_str());
  }
  for (const QuantizeRow& q : r.quantize) {
    nlohmann::json j = {{"record", "quantize"},
                        {"variant", r.variant},
                        {"cpu", r.cpu},
                        {"bits", q.bits},
                        {"gbps", q.gbps},
                        {"mvalues_per_s", q.mvalues_per_s},
                        {"speedup_vs_reference", q.speedup_vs_reference}};
    std::printf("%s\n", j.dump().c_str());
  }
}

void PrintTable(const KernelsBenchResult& r) {
  const KernelsBenchOptions& o = r.options;
  std::printf(
      "kvq bench kernels: variant %s on %s\n"
      "head_dim %d, %d query heads, %d KV heads, B %d, G %d, R %d, %d-bit; one query "
      "token per sequence; %.0f MiB of caches per pass, median of %d passes%s\n\n",
      r.variant.c_str(), r.cpu.c_str(), o.head_dim, o.n_heads, o.n_kv_heads,
      o.block_tokens, o.group, o.residual, o.bits, o.working_set_bytes / 1048576.0,
      o.reps,
      r.rounds > 1
          ? absl::StrFormat("; every figure the median of %d rounds (each round's "
                            "in --json)",
                            r.rounds)
                .c_str()
          : "");
  for (const BandwidthRow& b : r.bandwidth) {
    std::printf("read bandwidth, %d thread(s): %.1f GB/s (median of every round)\n",
                b.threads, b.gbps);
  }
  for (const ComputeRow& c : r.compute) {
    std::printf(
        "fp32 FMA rate, %d thread(s): %.2f G 256-bit FMAs/s; attention's multiply-adds "
        "at that rate allow at most %.1f GB/s of fp16 cache, %.1f GB/s of %d-bit cache\n",
        c.threads, c.fma_per_s / 1e9, c.fp16_ceiling_gbps, c.quant_ceiling_gbps, o.bits);
  }
  std::printf("\n%7s %7s %19s %12s %12s %7s %8s %11s %15s %13s\n", "ctx", "threads", "kv",
              "us_per_call", "bytes_read", "GB/s", "bw_GB/s", "bw_fraction",
              "speedup_vs_fp16", "vs_no_outlier");
  for (const AttentionRow& a : r.attention) {
    const std::string speedup =
        a.kv == "fp16" ? "" : absl::StrFormat("%.2f", a.speedup_vs_fp16);
    const std::string slowdown = a.slowdown_vs_no_outliers > 0
                                     ? absl::StrFormat("%.2fx", a.slowdown_vs_no_outliers)
                                     : "";
    std::printf("%7d %7d %19s %12.1f %12zu %7.2f %8.1f %11.3f %15s %13s\n", a.ctx,
                a.threads, a.kv.c_str(), a.us_per_call, a.bytes_read, a.gbps, a.bw_gbps,
                a.bw_fraction, speedup.c_str(), slowdown.c_str());
  }
  for (const QuantizeRow& q : r.quantize) {
    std::printf(
        "\nquantize (%d-bit, B %d, G %d): %.2f GB/s of fp32 K+V input, %.0f M values/s, "
        "%.1fx the scalar reference\n",
        q.bits, o.block_tokens, o.group, q.gbps, q.mvalues_per_s, q.speedup_vs_reference);
  }
}

// "1,2,4" -> {1, 2, 4}; every item a positive integer.
absl::StatusOr<std::vector<int>> ParsePositiveList(const std::string& flag,
                                                   const std::string& text) {
  std::vector<int> out;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    int v = 0;
    if (!absl::SimpleAtoi(item, &v) || v < 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--%s: '%s' is not a positive integer", flag, std::string(item)));
    }
    out.push_back(v);
  }
  return out;
}

int Run(const std::vector<std::string>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "kvq bench kernels: unexpected argument '%s'\n",
                 args[0].c_str());
    return 2;
  }
  KernelsBenchOptions options =
      absl::GetFlag(FLAGS_quick) ? KernelsBenchOptions::Quick() : KernelsBenchOptions();
  for (auto [name, text, list] :
       {std::tuple{"contexts", absl::GetFlag(FLAGS_contexts), &options.contexts},
        std::tuple{"threads", absl::GetFlag(FLAGS_threads), &options.threads}}) {
    if (text.empty()) continue;
    absl::StatusOr<std::vector<int>> parsed = ParsePositiveList(name, text);
    if (!parsed.ok()) {
      std::fprintf(stderr, "kvq bench kernels: %s\n",
                   std::string(parsed.status().message()).c_str());
      return 2;
    }
    *list = *std::move(parsed);
  }
  std::vector<const KernelSet*> sets;
  const std::string variants = absl::GetFlag(FLAGS_variant);
  if (variants == "all") {
    for (const KernelSet* set : Available()) {
      if (set->name != "reference" && set->name != "int_portable") sets.push_back(set);
    }
  } else if (!variants.empty()) {
    for (absl::string_view name : absl::StrSplit(variants, ',')) {
      const KernelSet* set = FindKernels(name);
      if (set == nullptr) {
        std::fprintf(stderr, "kvq bench kernels: no variant '%s' runs on this CPU (%s)\n",
                     std::string(name).c_str(), CpuModelName().c_str());
        return 2;
      }
      sets.push_back(set);
    }
  } else {
    sets.push_back(&Best());
  }
  const int repeats = absl::GetFlag(FLAGS_repeats);
  if (repeats < 1 || repeats > 100) {
    std::fprintf(stderr, "kvq bench kernels: --repeats must be in [1, 100], not %d\n",
                 repeats);
    return 2;
  }
  // Rounds outermost, the variants in turn within each, so that every
  // variant sees the same spread of the machine's moods.
  std::vector<std::vector<KernelsBenchResult>> runs(sets.size());
  for (int round = 0; round < repeats; ++round) {
    for (size_t v = 0; v < sets.size(); ++v) {
      options.kernels = sets[v];
      const std::string prefix = repeats > 1
                                     ? absl::StrFormat("[round %d of %d, %s] ", round + 1,
                                                       repeats, sets[v]->name)
                                     : "";
      absl::StatusOr<KernelsBenchResult> r =
          RunKernelsBench(options, [&prefix](const std::string& line) {
            std::fprintf(stderr, "%s%s\n", prefix.c_str(), line.c_str());
          });
      if (!r.ok()) {
        std::fprintf(stderr, "kvq bench kernels: %s\n", r.status().ToString().c_str());
        return 1;
      }
      runs[v].push_back(*std::move(r));
      if (round + 1 < repeats) continue;
      // A variant's last round: its medians, printed as soon as they exist.
      const absl::StatusOr<KernelsBenchResult> m = MedianOfRounds(runs[v]);
      if (!m.ok()) {
        std::fprintf(stderr, "kvq bench kernels: %s\n", m.status().ToString().c_str());
        return 1;
      }
      if (absl::GetFlag(FLAGS_json)) {
        PrintJson(*m);
      } else {
        PrintTable(*m);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

const cli::CommandRegistrar kBenchKernels({
    .path = "bench kernels",
    .summary = "Measure decode attention (fp16 vs 2-bit cache) and quantize speed.",
    .description =
        "Decode attention over fp16 and kivi2 caches at contexts 1k, 4k, 16k and 64k "
        "on 1 and 2 threads, each row against the read bandwidth measured in the same "
        "run (>= 1 GiB working sets), and quantize throughput. About a minute. "
        "--json prints JSON Lines: one object per record (config, bandwidth, compute, "
        "attention rows, quantize). --contexts=16384 --threads=1 restricts the rows "
        "(a quicker run for one target). --variant=avx512,int_avx512vnni (or 'all') "
        "measures several variants, one set of rows each; every JSON record names "
        "the variant and the CPU. --repeats=5 runs five rounds (the variants in "
        "turn) and reports medians: the form the figures in docs/performance.md "
        "take.",
    .flags = {"json", "quick", "variant", "contexts", "threads", "repeats"},
    .run = Run,
});

}  // namespace
}  // namespace kvq::kernels::bench
