// proto/common.proto's shared types <-> their domain types, for the store's
// and the serving protocol's converters (one conversion of each).
//
//   KVQ_ASSIGN_OR_RETURN(kernels::BlockEncoding e, EncodingFromProto(p,
//   "meta.encoding")); EncodingToProto(e, out.mutable_encoding());
#ifndef KVQ_SERVICES_COMMON_COMMON_PROTO_H_
#define KVQ_SERVICES_COMMON_COMMON_PROTO_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/block_format.h"
#include "proto/common.pb.h"

namespace kvq::services {

// INVALID_ARGUMENT (naming `field`) when a value does not fit 16 bits; the
// encoding itself is validated where it is used (kernels::Validate).
absl::StatusOr<kernels::BlockEncoding> EncodingFromProto(const v1::BlockEncoding& proto,
                                                         absl::string_view field);
void EncodingToProto(const kernels::BlockEncoding& encoding, v1::BlockEncoding* out);

}  // namespace kvq::services

#endif  // KVQ_SERVICES_COMMON_COMMON_PROTO_H_
