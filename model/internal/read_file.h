// Reads a whole file into memory for the loaders.
#ifndef KVQ_MODEL_INTERNAL_READ_FILE_H_
#define KVQ_MODEL_INTERNAL_READ_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace kvq::model_internal {

// NOT_FOUND if the file cannot be opened, DATA_LOSS on a read error,
// INVALID_ARGUMENT if `path` is a directory.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace kvq::model_internal

#endif  // KVQ_MODEL_INTERNAL_READ_FILE_H_
