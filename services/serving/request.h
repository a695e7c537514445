// Checks a worker core applies to a request against its model: the kv mode
// resolved for the model's head_dim, and the prompt's ids and length. Domain
// types only (the proto side is proto_convert.h); errors are
// INVALID_ARGUMENT naming the field.
//
//   KVQ_ASSIGN_OR_RETURN(model::KvMode mode, ResolveKvMode(req.kv, config, false));
//   KVQ_RETURN_IF_ERROR(CheckPrompt(req.tokens, req.generation.max_tokens, config));
#ifndef KVQ_SERVICES_SERVING_REQUEST_H_
#define KVQ_SERVICES_SERVING_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/kv_mode.h"

namespace kvq::serving {

// The kv mode a worker uses when a request leaves it empty, unless its
// --default_kv says otherwise.
inline constexpr char kDefaultKv[] = "kivi2";

// Parses `kv` ("" = `default_kv`) and resolves it against the model.
// `allow_fp32` is false where the cache must be stored as blocks
// (disaggregated path).
absl::StatusOr<model::KvMode> ResolveKvMode(const std::string& kv,
                                            const model::ModelConfig& config,
                                            bool allow_fp32,
                                            const std::string& default_kv = kDefaultKv);

// The mode's metric label (ServingMetrics::NoteKvMode): "fp32", "fp16" or
// "kivi<bits>"; B, G and R are not part of it.
std::string KvModeLabel(const model::KvMode& mode);

// Checks the prompt (non-empty, ids in range) and that prompt + max_tokens
// fits the model's seq_len.
absl::Status CheckPrompt(const std::vector<int>& tokens, int max_tokens,
                         const model::ModelConfig& config);

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_REQUEST_H_
