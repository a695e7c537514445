// `kvq generate`: text from a prompt with a local model, printed as it is
// produced (the prompt first, then the continuation, then a newline).
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "model/command_inputs.h"
#include "model/generate.h"
#include "model/model_loader.h"

namespace kvq::model {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "kvq generate: %s\n", s.ToString().c_str());
  return 1;
}

int RunGenerate(const std::vector<std::string>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "kvq generate: unexpected argument %s\n", args[0].c_str());
    return 2;
  }
  absl::StatusOr<KvMode> mode = ParseKvMode(absl::GetFlag(FLAGS_kv));
  if (!mode.ok()) return Fail(mode.status());
  absl::StatusOr<LoadedModel> loaded = LoadModelFromFlags();
  if (!loaded.ok()) return Fail(loaded.status());
  const Tokenizer& tok = *loaded->tokenizer;
  Transformer transformer(*loaded->model, RawWeights::kRelease);

  GenerateOptions options;
  options.steps = absl::GetFlag(FLAGS_steps);
  options.kv = *mode;
  options.sampling.temperature = static_cast<float>(absl::GetFlag(FLAGS_temperature));
  options.sampling.top_p = static_cast<float>(absl::GetFlag(FLAGS_top_p));
  options.sampling.top_k = absl::GetFlag(FLAGS_top_k);
  options.sampling.seed = absl::GetFlag(FLAGS_seed);
  options.bos_id = tok.bos_id();
  options.eos_id = tok.eos_id();

  const std::vector<int> prompt = tok.Encode(absl::GetFlag(FLAGS_prompt));
  for (size_t i = 0; i < prompt.size(); ++i) {
    std::fputs(tok.DecodePiece(i ? prompt[i - 1] : -1, prompt[i]).c_str(), stdout);
  }
  int prev = prompt.back();
  options.on_token = [&](int token) {
    const std::string piece = tok.DecodePiece(prev, token);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    prev = token;
  };
  absl::StatusOr<std::vector<int>> out = Generate(transformer, prompt, options);
  std::fputs("\n", stdout);
  if (!out.ok()) return Fail(out.status());
  return 0;
}

const cli::CommandRegistrar kGenerate({
    .path = "generate",
    .summary = "Generate text from a prompt with a local model.",
    .description =
        "Prints the prompt, then the continuation as it is produced. Greedy unless "
        "--temperature > 0; stops after --steps new tokens or at BOS/EOS.",
    .flags = {"model", "tokenizer", "weights", "prompt", "steps", "kv", "temperature",
              "top_p", "seed"},
    .run = RunGenerate,
});

}  // namespace
}  // namespace kvq::model
