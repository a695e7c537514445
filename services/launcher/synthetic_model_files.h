// Files for a synthetic model, so that `kvq demo` runs the whole path when no
// checkpoint is found: a llama2.c checkpoint with seeded random weights
// (model/synthetic_model.h) of the test model's shape, and a byte-level
// llama2.c tokenizer (BOS, EOS, the 256 byte pieces, filler pieces). Its text
// is gibberish; the demo says so.
//
//   KVQ_ASSIGN_OR_RETURN(std::string checkpoint, WriteSyntheticModelFiles(dir));
#ifndef KVQ_SERVICES_LAUNCHER_SYNTHETIC_MODEL_FILES_H_
#define KVQ_SERVICES_LAUNCHER_SYNTHETIC_MODEL_FILES_H_

#include <string>

#include "absl/status/statusor.h"

namespace kvq::launcher {

// Writes <dir>/synthetic.bin and <dir>/tok512.bin; returns the checkpoint's
// path. INTERNAL when a file cannot be written.
absl::StatusOr<std::string> WriteSyntheticModelFiles(const std::string& dir);

// Writes the byte-level tokenizer of a `vocab`-token model to
// <dir>/tok<vocab>.bin; returns its path. INVALID_ARGUMENT below 259 tokens
// (BOS, EOS, <unk> and the 256 bytes), INTERNAL when it cannot be written.
absl::StatusOr<std::string> WriteByteTokenizer(const std::string& dir, int vocab);

}  // namespace kvq::launcher

#endif  // KVQ_SERVICES_LAUNCHER_SYNTHETIC_MODEL_FILES_H_
