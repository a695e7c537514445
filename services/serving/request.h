// Validation and conversion of the serving protos (proto/serving.proto) into
// domain types, shared by the prefill and decode workers. Every message from
// the network goes through here; errors are INVALID_ARGUMENT naming the field.
//
//   KVQ_ASSIGN_OR_RETURN(model::KvMode mode, ParseCacheConfig(req.cache(), config));
//   KVQ_ASSIGN_OR_RETURN(Sampling s, ParseSampling(req.sampling()));
#ifndef KVQ_SERVICES_SERVING_REQUEST_H_
#define KVQ_SERVICES_SERVING_REQUEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/kv_mode.h"
#include "proto/serving.pb.h"
#include "services/serving/sampler.h"

namespace kvq::serving {

// The kv mode a worker uses when a request leaves CacheConfig.kv empty.
inline constexpr char kDefaultKv[] = "kivi2";

// Parses and resolves the request's kv mode against the model. `allow_fp32`
// is false where the cache must be stored as blocks (disaggregated path).
absl::StatusOr<model::KvMode> ParseCacheConfig(const v1::CacheConfig& cache,
                                               const model::ModelConfig& config,
                                               bool allow_fp32);

absl::StatusOr<Sampling> ParseSampling(const v1::SamplingParams& params);

// Checks the prompt (non-empty, ids in range) and that prompt + max_tokens
// fits the model's seq_len.
absl::Status CheckPrompt(const std::vector<int>& tokens, int max_tokens,
                         const model::ModelConfig& config);

// Stop ids: the request's, plus BOS and EOS unless ignore_eos.
std::vector<int> StopIds(const v1::SamplingParams& params, int bos_id, int eos_id);

// 16 lowercase hex digits.
std::string ModelIdHex(uint64_t model_id);

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_REQUEST_H_
