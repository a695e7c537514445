#include "model/command_inputs.h"

#include "absl/flags/flag.h"
#include "cli/flags.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "model/internal/read_file.h"

namespace kvq::model {

absl::StatusOr<LoadedModel> LoadModelFromFlags() {
  KVQ_ASSIGN_OR_RETURN(WeightsMode weights, cli::WeightsModeFromFlags());
  return LoadModelWithTokenizer(
      cli::ModelPathFromFlags(),
      {.tokenizer_path = cli::TokenizerPathFromFlags(), .weights = weights});
}

absl::StatusOr<TextInput> ReadTextFromFlags() {
  TextInput in;
  in.path = ResolveUserPath(absl::GetFlag(FLAGS_text));
  if (in.path.empty() && !SharedDir().empty()) {
    in.path = SharedDir() + "/data/stories_dev.txt";
  }
  if (in.path.empty()) return absl::InvalidArgumentError("--text is required");
  KVQ_ASSIGN_OR_RETURN(in.text, model_internal::ReadFile(in.path));
  return in;
}

}  // namespace kvq::model
