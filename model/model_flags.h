// The flags every model-running subcommand shares (`kvq generate`, `kvq eval
// ppl`, `kvq bench model`, serving workers): declare them here instead of defining a
// second
// --model or --kv, which would not link.
//
//   #include "model/model_flags.h"
//   std::string path = kvq::model::ModelPathFromFlags();
#ifndef KVQ_MODEL_MODEL_FLAGS_H_
#define KVQ_MODEL_MODEL_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "model/weights_mode.h"

ABSL_DECLARE_FLAG(std::string, model);      // directory or checkpoint file
ABSL_DECLARE_FLAG(std::string, tokenizer);  // overrides the tokenizer search
ABSL_DECLARE_FLAG(std::string, kv);         // --kv MODE (model/kv_mode.h)
ABSL_DECLARE_FLAG(std::string, weights);    // --weights MODE (model/weights_mode.h)
ABSL_DECLARE_FLAG(bool, json);              // machine-readable output

namespace kvq::model {

// --model resolved against the user's directory, or DefaultModelDir() when
// the flag is empty.
std::string ModelPathFromFlags();
// --tokenizer resolved against the user's directory ("" when empty).
std::string TokenizerPathFromFlags();
// --weights parsed; INVALID_ARGUMENT naming the accepted values.
//   KVQ_ASSIGN_OR_RETURN(WeightsMode w, WeightsModeFromFlags());
//   LoadModel(ModelPathFromFlags(), {.tokenizer_path = TokenizerPathFromFlags(),
//                                    .weights = w});
absl::StatusOr<WeightsMode> WeightsModeFromFlags();

}  // namespace kvq::model

#endif  // KVQ_MODEL_MODEL_FLAGS_H_
