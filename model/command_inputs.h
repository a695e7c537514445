// What the model commands (`kvq generate`, `kvq eval ppl|pareto`) read from
// their flags, loaded once here so that every command validates them alike:
//
//   KVQ_ASSIGN_OR_RETURN(LoadedModel loaded, LoadModelFromFlags());
//   KVQ_ASSIGN_OR_RETURN(TextInput text, ReadTextFromFlags());
#ifndef KVQ_MODEL_COMMAND_INPUTS_H_
#define KVQ_MODEL_COMMAND_INPUTS_H_

#include <string>

#include "absl/status/statusor.h"
#include "model/model_loader.h"

namespace kvq::model {

// --model, --tokenizer and --weights (cli/flags.h): the checkpoint with its
// tokenizer at those weights; INVALID_ARGUMENT for a bad --weights, the
// loader's error for a bad checkpoint.
absl::StatusOr<LoadedModel> LoadModelFromFlags();

struct TextInput {
  std::string path;  // resolved
  std::string text;
};
// --text resolved against the user's directory, by default
// ../shared/data/stories_dev.txt where the shared folder exists;
// INVALID_ARGUMENT when neither is there, the read error otherwise.
absl::StatusOr<TextInput> ReadTextFromFlags();

}  // namespace kvq::model

#endif  // KVQ_MODEL_COMMAND_INPUTS_H_
