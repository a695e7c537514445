// The flags every model-running subcommand shares (`kvq generate`, `kvq eval
// ppl`, serving workers): declare them here instead of defining a second
// --model or --kv, which would not link.
//
//   #include "model/model_flags.h"
//   std::string path = kvq::model::ModelPathFromFlags();
#ifndef KVQ_MODEL_MODEL_FLAGS_H_
#define KVQ_MODEL_MODEL_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"
#include "common/output_flags.h"  // --json, for the commands that use it via here

ABSL_DECLARE_FLAG(std::string, model);      // directory or checkpoint file
ABSL_DECLARE_FLAG(std::string, tokenizer);  // overrides the tokenizer search
ABSL_DECLARE_FLAG(std::string, kv);         // --kv MODE (model/kv_mode.h)

namespace kvq::model {

// --model resolved against the user's directory, or DefaultModelDir() when
// the flag is empty.
std::string ModelPathFromFlags();
// --tokenizer resolved against the user's directory ("" when empty).
std::string TokenizerPathFromFlags();

}  // namespace kvq::model

#endif  // KVQ_MODEL_MODEL_FLAGS_H_
