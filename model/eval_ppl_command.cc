// `kvq eval ppl`: perplexity of a text file under a KV cache mode (design
// section 8), with a progress line on a terminal and --json for scripts.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "model/command_inputs.h"
#include "model/model_loader.h"
#include "model/perplexity.h"
#include "nlohmann/json.hpp"

namespace kvq::model {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "kvq eval ppl: %s\n", s.ToString().c_str());
  return 1;
}

int RunEvalPpl(const std::vector<std::string>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "kvq eval ppl: unexpected argument %s\n", args[0].c_str());
    return 2;
  }
  absl::StatusOr<KvMode> parsed = ParseKvMode(absl::GetFlag(FLAGS_kv));
  if (!parsed.ok()) return Fail(parsed.status());
  absl::StatusOr<TextInput> text = ReadTextFromFlags();
  if (!text.ok()) return Fail(text.status());
  const std::string& text_path = text->path;
  absl::StatusOr<LoadedModel> loaded = LoadModelFromFlags();
  if (!loaded.ok()) return Fail(loaded.status());
  const WeightsMode weights = loaded->model->weights_mode;
  absl::StatusOr<KvMode> mode = parsed->Resolve(loaded->model->config.HeadDim());
  if (!mode.ok()) return Fail(mode.status());
  Transformer transformer(*loaded->model, RawWeights::kRelease);

  PerplexityProgress progress;
  const bool tty = isatty(STDERR_FILENO);
  if (tty) {
    progress = [](int done, int total, const PerplexityResult& r) {
      std::fprintf(stderr, "\r[%d/%d lines] %ld tokens, ppl %.4f", done, total, r.tokens,
                   r.ppl);
      if (done == total) std::fputc('\n', stderr);
    };
  }
  absl::StatusOr<PerplexityResult> r =
      EvaluatePerplexity(transformer, *loaded->tokenizer, text->text, *mode, progress);
  if (!r.ok())
    return Fail(absl::Status(r.status().code(),
                             text_path + ": " + std::string(r.status().message())));
  const double bits = r->cache.BitsPerElement();
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j = {{"ppl", r->ppl},
                        {"mean_nll", r->mean_nll},
                        {"tokens", r->tokens},
                        {"sequences", r->sequences},
                        {"kv", mode->ToString()},
                        {"weights", WeightsModeName(weights)},
                        {"weights_kernel", transformer.weights_kernel()},
                        {"model_id", absl::StrFormat("%016x", loaded->model->id)},
                        {"bits_per_element", bits},
                        {"effective_bits", bits},
                        {"compression_vs_fp16", 16.0 / bits}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf(
        "ppl %.4f  mean_nll %.6f  tokens %ld  sequences %d\n"
        "kv %s: %.3f effective bits per element, %.2fx vs fp16; weights %s (%s)\n",
        r->ppl, r->mean_nll, r->tokens, r->sequences, mode->ToString().c_str(), bits,
        16.0 / bits, WeightsModeName(weights), transformer.weights_kernel());
  }
  return 0;
}

const cli::CommandRegistrar kEvalPpl({
    .path = "eval ppl",
    .summary = "Perplexity of a text under a KV cache mode (design section 8).",
    .description =
        "Each non-empty line is a sequence fed one token at a time through the cache "
        "(decode mode). --json prints one object: ppl, mean_nll, tokens, kv, weights, "
        "weights_kernel, bits_per_element (= effective_bits: codes, scales, zeros, "
        "outliers, sinks and the fp16 residual and tail, model::EffectiveBits), "
        "compression_vs_fp16.",
    .flags = {"model", "tokenizer", "weights", "text", "kv", "json"},
    .run = RunEvalPpl,
});

}  // namespace
}  // namespace kvq::model
