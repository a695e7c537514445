// `kvq eval pareto`: effective bits and perplexity (design section 8) of a
// grid of KV cache modes on a text, and which of them are on the Pareto
// front (model/pareto.h). A table on stdout, or JSON Lines with --json.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "cli/kernel_variant.h"
#include "kernels/kernels.h"
#include "model/command_inputs.h"
#include "model/model_loader.h"
#include "model/pareto.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, modes, "",
          "kvq eval pareto: the modes to evaluate instead of the default grid, "
          "separated by ';' (each in --kv syntax, e.g. "
          "'fp16;kivi2;kivi:bits=4,block=32,group=8,residual=0').");

namespace kvq::model {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "kvq eval pareto: %s\n", s.ToString().c_str());
  return 1;
}

absl::StatusOr<int> ThreadsFromFlag() {
  const std::string flag = absl::GetFlag(FLAGS_threads);
  int threads = 1;
  if (!flag.empty() && (!absl::SimpleAtoi(flag, &threads) || threads < 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--threads: expected one positive number of modes evaluated at once, got \"%s\"",
        flag));
  }
  return threads;
}

const char* Kind(const KvMode& mode) {
  switch (mode.kind) {
    case KvMode::Kind::kFp32:
      return "fp32";
    case KvMode::Kind::kFp16:
      return "fp16";
    case KvMode::Kind::kKivi:
      break;
  }
  return mode.IsPureKivi() ? "kivi" : "kvq";
}

// Issue 15's two targets, judged on this sweep.
void PrintKiviComparison(absl::Span<const ParetoRow> rows, const KiviComparison& c) {
  if (c.kivi_front.empty()) return;
  auto row = [&](int i) {
    return absl::StrFormat("%s (%.3f bits, ppl %.4f)", rows[i].mode.ToString(),
                           rows[i].effective_bits, rows[i].result.ppl);
  };
  int covered = 0;
  for (const KiviComparison::Cover& cover : c.kivi_front) covered += cover.kvq >= 0;
  std::printf(
      "\nKIVI's own front (%zu modes): %d beaten by a kvq mode with the same or "
      "fewer bits and a lower ppl%s\n",
      c.kivi_front.size(), covered, c.Dominates() ? " (dominated)" : "");
  for (const KiviComparison::Cover& cover : c.kivi_front) {
    std::printf("  %s\n    %s\n", row(cover.kivi).c_str(),
                cover.kvq >= 0 ? ("beaten by " + row(cover.kvq)).c_str() : "not beaten");
  }
  std::printf("Reach, 1 bit below KIVI's cheapest %s: %s\n", row(c.cheapest_kivi).c_str(),
              c.ReachesFurther() ? row(c.further).c_str() : "no kvq mode");
}

int RunEvalPareto(const std::vector<std::string>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "kvq eval pareto: unexpected argument %s\n", args[0].c_str());
    return 2;
  }
  const std::string modes_flag = absl::GetFlag(FLAGS_modes);
  const bool quick = absl::GetFlag(FLAGS_quick);
  if (quick && !modes_flag.empty()) {
    return Fail(absl::InvalidArgumentError("give --modes or --quick, not both"));
  }
  absl::StatusOr<int> threads = ThreadsFromFlag();
  if (!threads.ok()) return Fail(threads.status());
  absl::StatusOr<TextInput> text = ReadTextFromFlags();
  if (!text.ok()) return Fail(text.status());
  const std::string& text_path = text->path;
  absl::StatusOr<LoadedModel> loaded = LoadModelFromFlags();
  if (!loaded.ok()) return Fail(loaded.status());
  const WeightsMode weights = loaded->model->weights_mode;
  const int head_dim = loaded->model->config.HeadDim();
  std::vector<std::string> grid;
  if (!modes_flag.empty()) {
    grid = absl::StrSplit(modes_flag, ';', absl::SkipWhitespace());
  } else {
    grid = quick ? QuickParetoGrid(head_dim) : DefaultParetoGrid(head_dim);
  }
  Transformer transformer(*loaded->model, RawWeights::kRelease);

  // One arithmetic for every mode: an integer variant attends over KIVI
  // encodings with int8 queries and probabilities but hands every other
  // encoding to its fp32 variant, so a sweep on it would compare KIVI's modes
  // and kvq's on different arithmetic (ppl differs in the 4th digit, enough
  // to flip noise-level verdicts). Unless --kernel_variant names one, the
  // sweep runs on the fp32 variant.
  const kernels::KernelSet& best = kernels::Best();
  const bool fp32_sibling =
      absl::GetFlag(FLAGS_kernel_variant).empty() && best.fp32 != nullptr;
  kernels::ScopedKernelsOverride one_arithmetic(fp32_sibling ? *best.fp32 : best);

  ParetoOptions options{.threads = *threads};
  if (isatty(STDERR_FILENO)) {
    options.progress = [](int done, int total) {
      std::fprintf(stderr, "\r[%d/%d modes]", done, total);
      if (done == total) std::fputc('\n', stderr);
    };
  }
  absl::StatusOr<std::vector<ParetoRow>> rows =
      SweepPareto(transformer, *loaded->tokenizer, text->text, grid, options);
  if (!rows.ok()) {
    return Fail(absl::Status(rows.status().code(),
                             text_path + ": " + std::string(rows.status().message())));
  }
  const std::string kernels = kernels::Best().name;
  if (fp32_sibling && !absl::GetFlag(FLAGS_json)) {
    std::printf(
        "(kernels %s, not %s: one arithmetic for every mode; --kernel_variant=%s "
        "sweeps on the integer path, which takes only pure KIVI modes)\n",
        kernels.c_str(), best.name.c_str(), best.name.c_str());
  }
  const KiviComparison vs_kivi = CompareWithKivi(*rows);
  // beaten_by[i]: for a row on KIVI's own front, the kvq row that beats it.
  std::vector<int> beaten_by(rows->size(), -2);
  for (const KiviComparison::Cover& cover : vs_kivi.kivi_front) {
    beaten_by[cover.kivi] = cover.kvq;
  }
  if (absl::GetFlag(FLAGS_json)) {
    for (size_t i = 0; i < rows->size(); ++i) {
      const ParetoRow& r = (*rows)[i];
      nlohmann::json j = {{"kv", r.mode.ToString()},
                          {"effective_bits", r.effective_bits},
                          {"ppl", r.result.ppl},
                          {"kivi", r.mode.IsPureKivi()},
                          {"pareto", r.pareto},
                          {"kind", Kind(r.mode)},
                          {"mean_nll", r.result.mean_nll},
                          {"tokens", r.result.tokens},
                          {"sequences", r.result.sequences},
                          {"weights", WeightsModeName(weights)},
                          {"kernels", kernels},
                          {"kivi_front", beaten_by[i] != -2}};
      if (beaten_by[i] >= 0) j["beaten_by"] = (*rows)[beaten_by[i]].mode.ToString();
      std::printf("%s\n", j.dump().c_str());
    }
    return 0;
  }
  const PerplexityResult& first = rows->front().result;
  std::printf(
      "kvq eval pareto: %s, %ld predicted tokens in %d sequences; %zu modes; weights %s "
      "(%s), kernels %s\n",
      text_path.c_str(), first.tokens, first.sequences, rows->size(),
      WeightsModeName(weights), transformer.weights_kernel(), kernels.c_str());
  std::printf("%9s  %8s  %5s  %-4s  %s\n", "eff.bits", "ppl", "front", "kind", "kv");
  for (const ParetoRow& r : *rows) {
    std::printf("%9.3f  %8.4f  %5s  %-4s  %s\n", r.effective_bits, r.result.ppl,
                r.pareto ? "*" : "", Kind(r.mode), r.mode.ToString().c_str());
  }
  PrintKiviComparison(*rows, vs_kivi);
  return 0;
}

const cli::CommandRegistrar kEvalPareto({
    .path = "eval pareto",
    .summary = "Effective bits vs perplexity over a grid of KV modes, and their front.",
    .description =
        "Runs `kvq eval ppl`'s measurement (design section 8) for every mode of a grid "
        "(default: fp16, pure KIVI over bits 2/4/8, B 16/32/64/128, G the divisors of "
        "head_dim up to 32, R 0/32/64/128 where a multiple of B, and kvq's modes beyond "
        "KIVI; --quick: a small grid; --modes: your own list) and computes each mode's "
        "effective bits per element over the text's sequences (codes, scales, zeros and "
        "the fp16 residual; model/kv_mode.h EffectiveBits). A row is on the Pareto front "
        "when no other row has fewer or equal bits and lower or equal ppl, one of them "
        "strictly. Rows are sorted by effective bits. --json prints one object a row: "
        "kv, effective_bits, ppl, kivi (a pure KIVI mode), pareto, kind (fp16, fp32, "
        "kivi or kvq), mean_nll, tokens, sequences, weights, kernels. "
        "scripts/plot_pareto.sh turns those rows into a PNG.",
    .flags = {"model", "tokenizer", "weights", "text", "modes", "quick", "threads",
              "json"},
    .run = RunEvalPareto,
});

}  // namespace
}  // namespace kvq::model
