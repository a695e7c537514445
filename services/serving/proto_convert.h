// The one place the serving protos (proto/serving.proto) meet the domain
// types (worker_types.h): every message from the network is validated and
// converted here, and every answer built here. Errors are INVALID_ARGUMENT
// naming the field. Used by the thin gRPC services of the prefill and decode
// workers (requests in, results out) and by the router's worker clients
// (requests out, results in).
//
//   KVQ_ASSIGN_OR_RETURN(PrefillRequest req, FromProto(proto_request));
//   ToProto(result, &proto_response);
#ifndef KVQ_SERVICES_SERVING_PROTO_CONVERT_H_
#define KVQ_SERVICES_SERVING_PROTO_CONVERT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/serving.pb.h"
#include "services/serving/worker_types.h"

namespace kvq::serving {

// Temperature, top_p, top_k validated (model::Sampling::Validate) and
// max_tokens >= 1.
absl::StatusOr<GenerationParams> FromProto(const v1::SamplingParams& params);
void ToProto(const GenerationParams& params, v1::SamplingParams* out);

// A handle's blocks keep their order; keys must be 16 bytes.
absl::StatusOr<KvHandle> FromProto(const v1::KvHandle& handle);
void ToProto(const KvHandle& handle, v1::KvHandle* out);

absl::StatusOr<PrefillRequest> FromProto(const v1::PrefillRequest& request);
void ToProto(const PrefillRequest& request, v1::PrefillRequest* out);

void ToProto(const PrefillStats& stats, v1::PrefillStats* out);
PrefillStats FromProto(const v1::PrefillStats& stats);
void ToProto(const PrefillResult& result, v1::PrefillResponse* out);
absl::StatusOr<PrefillResult> FromProto(const v1::PrefillResponse& response);

// INVALID_ARGUMENT when the request has neither a handle nor a prompt.
absl::StatusOr<DecodeRequest> FromProto(const v1::DecodeRequest& request);
void ToProto(const DecodeRequest& request, v1::DecodeRequest* out);

void ToProto(const DecodeChunk& chunk, v1::DecodeResponse* out);
DecodeChunk FromProto(const v1::DecodeResponse& response);

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_PROTO_CONVERT_H_
