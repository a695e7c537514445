// `kvq bench serve [--json]`: issue 6's serving benchmark (services/bench):
// decode throughput at equal memory, fp16 against kivi2, through a launcher
// cluster; and the transfer overlap of layer-wise streaming against pushing
// after the whole prefill, over a capped veth link (root only).
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "cli/kernel_variant.h"
#include "nlohmann/json.hpp"
#include "services/bench/overlap_bench.h"
#include "services/bench/serve_bench.h"
#include "services/common/build_info.h"

ABSL_FLAG(bool, throughput, true,
          "kvq bench serve: run the decode-throughput-at-equal-memory workload.");
ABSL_FLAG(
    bool, overlap, true,
    "kvq bench serve: run the transfer-overlap workload (needs root and iproute2).");
ABSL_FLAG(std::string, bench_kv, "fp16,kivi2",
          "kvq bench serve: KV modes of the throughput workload, the baseline first "
          "(throughput_ratio = last over first).");
ABSL_FLAG(int, prompts, 8,
          "kvq bench serve: distinct shared prompts warmed into the store.");
ABSL_FLAG(int, prompt_tokens, 2048,
          "kvq bench serve: tokens of each shared prompt (also the overlap prompt).");
ABSL_FLAG(int, suffix_tokens, 32, "kvq bench serve: each request's own tokens.");
ABSL_FLAG(int, requests, 64, "kvq bench serve: concurrent requests.");
ABSL_FLAG(int, gen_tokens, 128, "kvq bench serve: tokens each request generates.");
ABSL_FLAG(int, budget_sequences, 8,
          "kvq bench serve: the decode KV budget is the fp16 bytes of this many "
          "sequences of prompt + suffix + generated tokens.");
ABSL_FLAG(std::string, overlap_kv, "kivi2",
          "kvq bench serve: KV mode of the overlap run.");
ABSL_FLAG(int, overlap_runs, 3, "kvq bench serve: capped prefills per push mode.");
ABSL_FLAG(double, transfer_ratio, 0.5,
          "kvq bench serve: the cap makes pushing the prompt's KV take this many times "
          "its prefill compute (>= 0.5).");

namespace kvq::bench {
namespace {

constexpr double kThroughputTarget = 2.5;
constexpr double kOverlapTargetShares = 2.0;

int Fail(const std::string& what) {
  std::fprintf(stderr, "kvq bench serve: %s\n", what.c_str());
  return 1;
}

// One JSON line, naming the version, CPU and kernel variant it ran on.
std::string Line(nlohmann::json j) {
  for (const auto& [key, value] : services::BuildInfoLabels()) j[key] = value;
  return j.dump();
}

nlohmann::json ToJson(const ThroughputRow& r) {
  return {{"bench", "decode_throughput"},
          {"kv", r.kv},
          {"requests", r.requests},
          {"prompt_tokens", r.prompt_tokens},
          {"suffix_tokens", r.suffix_tokens},
          {"gen_tokens", r.gen_tokens},
          {"kv_budget_bytes", r.kv_budget_bytes},
          {"sequence_bytes", r.sequence_bytes},
          {"sequences_fit", r.sequences_fit},
          {"tokens", r.tokens},
          {"seconds", r.seconds},
          {"tokens_per_s", r.tokens_per_s},
          {"ttft_p50_ms", r.ttft_p50_ms},
          {"ttft_p99_ms", r.ttft_p99_ms},
          {"itl_p50_ms", r.itl_p50_ms},
          {"itl_p99_ms", r.itl_p99_ms},
          {"mean_tokens_computed", r.mean_tokens_computed},
          {"requests_waited", r.requests_waited},
          {"mean_batch", r.mean_batch},
          {"mean_step_ms", r.mean_step_ms},
          {"warm_seconds", r.warm_seconds}};
}

nlohmann::json ToJson(const OverlapRow& r) {
  return {{"bench", "transfer_overlap"},
          {"kv", r.kv},
          {"prompt_tokens", r.prompt_tokens},
          {"layers", r.layers},
          {"runs", r.runs},
          {"bytes_pushed", r.bytes_pushed},
          {"calibration_compute_s", r.calibration_compute_s},
          {"calibration_exposed_s", r.calibration_exposed_s},
          {"cap_bits_per_s", r.cap_bits_per_s},
          {"whole_transfer_s", r.whole_transfer_s},
          {"layer_share_s", r.layer_share_s},
          {"streaming_exposed_s", r.streaming_exposed_s},
          {"after_exposed_s", r.after_exposed_s},
          {"streaming_compute_s", r.streaming_compute_s},
          {"after_compute_s", r.after_compute_s},
          {"streaming_exposed_runs", r.streaming_exposed_runs},
          {"after_exposed_runs", r.after_exposed_runs},
          {"streaming_compute_runs", r.streaming_compute_runs},
          {"after_compute_runs", r.after_compute_runs},
          {"streaming_exposed_layer_shares", r.streaming_exposed_layer_shares},
          {"target_layer_shares", kOverlapTargetShares},
          {"target_met", r.streaming_exposed_layer_shares <= kOverlapTargetShares}};
}

void Print(const ThroughputRow& r) {
  std::printf(
      "%-8s %8.1f tok/s  TTFT p50 %9.1f p99 %9.1f ms  ITL p50 %7.1f p99 %7.1f ms  "
      "%d fit in %llu B (%llu B each), %d waited, mean batch %.1f, %.1f ms/step, "
      "%.1f prompt tokens computed/request\n",
      r.kv.c_str(), r.tokens_per_s, r.ttft_p50_ms, r.ttft_p99_ms, r.itl_p50_ms,
      r.itl_p99_ms, r.sequences_fit, static_cast<unsigned long long>(r.kv_budget_bytes),
      static_cast<unsigned long long>(r.sequence_bytes),
      static_cast<int>(r.requests_waited), r.mean_batch, r.mean_step_ms,
      r.mean_tokens_computed);
}

void Print(const OverlapRow& r) {
  std::printf(
      "transfer overlap (%s, %d-token prompt, %d layers, %llu bytes pushed, %d runs):\n"
      "  uncapped compute %.3f s; cap %.3f Mbit/s: whole push %.3f s, one layer's "
      "share %.3f s\n"
      "  exposed transfer: streaming %.3f s (%.2f layer shares, target <= %.0f: %s), "
      "push after prefill %.3f s\n"
      "  compute under the cap: streaming %.3f s, after %.3f s\n",
      r.kv.c_str(), r.prompt_tokens, r.layers,
      static_cast<unsigned long long>(r.bytes_pushed), r.runs, r.calibration_compute_s,
      r.cap_bits_per_s / 1e6, r.whole_transfer_s, r.layer_share_s, r.streaming_exposed_s,
      r.streaming_exposed_layer_shares, kOverlapTargetShares,
      r.streaming_exposed_layer_shares <= kOverlapTargetShares ? "met" : "NOT met",
      r.after_exposed_s, r.streaming_compute_s, r.after_compute_s);
}

int RunBenchServe(const std::vector<std::string>& args) {
  if (!args.empty()) return Fail("unexpected argument " + args[0]);
  const bool json = absl::GetFlag(FLAGS_json);
  BenchModel model;
  model.model = absl::GetFlag(FLAGS_model).empty() ? std::string("synthetic")
                                                   : cli::ModelPathFromFlags();
  model.tokenizer = cli::TokenizerPathFromFlags();
  if (absl::Status w = cli::WeightsModeFromFlags().status(); !w.ok()) {
    std::fprintf(stderr, "kvq bench serve: %s\n", w.ToString().c_str());
    return 2;
  }
  model.weights = absl::GetFlag(FLAGS_weights);
  model.kernel_variant = absl::GetFlag(FLAGS_kernel_variant);
  char tmpl[] = "/tmp/kvq-bench-serve-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return Fail("cannot create a temporary directory");
  struct RemoveDir {
    std::string dir;
    ~RemoveDir() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } remove_tmp{tmpl};
  if (absl::Status s = WriteBenchTokenizer(tmpl, &model); !s.ok()) {
    return Fail(s.ToString());
  }
  const bool verbose = absl::GetFlag(FLAGS_verbose);
  if (absl::GetFlag(FLAGS_throughput)) {
    ThroughputOptions o;
    o.model = model;
    o.prompts = absl::GetFlag(FLAGS_prompts);
    o.prompt_tokens = absl::GetFlag(FLAGS_prompt_tokens);
    o.suffix_tokens = absl::GetFlag(FLAGS_suffix_tokens);
    o.requests = absl::GetFlag(FLAGS_requests);
    o.gen_tokens = absl::GetFlag(FLAGS_gen_tokens);
    o.budget_sequences = absl::GetFlag(FLAGS_budget_sequences);
    o.verbose = verbose;
    const std::vector<std::string> modes =
        absl::StrSplit(absl::GetFlag(FLAGS_bench_kv), ',', absl::SkipEmpty());
    if (modes.empty()) return Fail("--bench_kv names no KV mode");
    if (!json) {
      std::printf(
          "decode throughput at equal memory (model %s): %d requests of a %d+%d "
          "token prompt, %d tokens each\n",
          model.model.c_str(), o.requests, o.prompt_tokens, o.suffix_tokens,
          o.gen_tokens);
      std::fflush(stdout);
    }
    const int repeats = absl::GetFlag(FLAGS_repeats);
    if (repeats < 1) return Fail("--repeats must be >= 1");
    // Runs alternate between the modes (fp16, kivi2, fp16, ...) so that each
    // sees the same machine load; the ratio is of the per-mode medians.
    std::vector<std::vector<double>> rates(modes.size());
    for (int run = 0; run < repeats; ++run) {
      for (size_t m = 0; m < modes.size(); ++m) {
        absl::StatusOr<ThroughputRow> row = DecodeThroughput(o, modes[m]);
        if (!row.ok()) return Fail(modes[m] + ": " + row.status().ToString());
        rates[m].push_back(row->tokens_per_s);
        if (json) {
          nlohmann::json j = ToJson(*row);
          j["run"] = run;
          j["weights"] = model.weights;
          std::printf("%s\n", Line(j).c_str());
        } else {
          Print(*row);
        }
        std::fflush(stdout);
      }
    }
    if (modes.size() > 1) {
      const double base = Median(rates.front()), last = Median(rates.back());
      const double ratio = base > 0 ? last / base : 0;
      if (json) {
        const nlohmann::json j = {{"bench", "decode_throughput_ratio"},
                                  {"kv", modes.back()},
                                  {"weights", model.weights},
                                  {"baseline", modes.front()},
                                  {"tokens_per_s", last},
                                  {"baseline_tokens_per_s", base},
                                  {"runs", repeats},
                                  {"throughput_ratio", ratio},
                                  {"target", kThroughputTarget},
                                  {"target_met", ratio >= kThroughputTarget}};
        std::printf("%s\n", Line(j).c_str());
      } else {
        std::printf(
            "throughput_ratio (%s / %s, medians of %d runs): %.2f (target >= %.1f: "
            "%s)\n",
            modes.back().c_str(), modes.front().c_str(), repeats, ratio,
            kThroughputTarget, ratio >= kThroughputTarget ? "met" : "NOT met");
      }
      std::fflush(stdout);
    }
  }
  if (absl::GetFlag(FLAGS_overlap)) {
    OverlapOptions o;
    o.model = model;
    o.kv = absl::GetFlag(FLAGS_overlap_kv);
    o.prompt_tokens = absl::GetFlag(FLAGS_prompt_tokens);
    o.runs = absl::GetFlag(FLAGS_overlap_runs);
    o.transfer_ratio = absl::GetFlag(FLAGS_transfer_ratio);
    o.verbose = verbose;
    absl::StatusOr<OverlapRow> row = TransferOverlap(o);
    if (!row.ok()) return Fail("transfer overlap: " + row.status().ToString());
    if (json) {
      std::printf("%s\n", Line(ToJson(*row)).c_str());
    } else {
      Print(*row);
    }
  }
  return 0;
}

const cli::CommandRegistrar kBenchServe({
    .path = "bench serve",
    .summary = "Serving benchmark: decode throughput at equal memory; transfer overlap.",
    .description =
        "1. Decode throughput at equal memory: starts store, prefill, decode and router\n"
        "   (--model, default the synthetic bench model), warms the store with "
        "--prompts\n"
        "   prompts of --prompt_tokens, then sends --requests concurrent requests (a\n"
        "   prompt + --suffix_tokens of their own, --gen_tokens each, EOS ignored) with\n"
        "   the decode KV budget at the fp16 bytes of --budget_sequences sequences.\n"
        "   Per --bench_kv mode: tokens/s, TTFT and ITL p50/p99; then throughput_ratio.\n"
        "2. Transfer overlap (root, iproute2): the store in a network namespace behind "
        "a\n"
        "   veth pair capped with tc so that the push takes --transfer_ratio x the\n"
        "   prefill compute; exposed transfer with layer-wise streaming vs pushing\n"
        "   after the whole prefill. --overlap=false skips it.\n"
        "The defaults are issue 6's workload (many minutes on 2 CPUs); scale down with\n"
        "e.g. --requests 16 --prompt_tokens 512 --gen_tokens 32 --prompts 2.\n"
        "Example: kvq bench serve --json",
    .flags = {"json", "model", "tokenizer", "weights", "verbose", "throughput", "overlap",
              "bench_kv", "prompts", "prompt_tokens", "suffix_tokens", "requests",
              "gen_tokens", "budget_sequences", "repeats", "overlap_kv", "overlap_runs",
              "transfer_ratio"},
    .run = RunBenchServe,
});

}  // namespace
}  // namespace kvq::bench
