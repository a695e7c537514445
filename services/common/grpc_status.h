// The one adapter between absl::Status (used everywhere inside kvq) and
// grpc::Status (at the edge). The canonical codes are the same numbers in
// both, so the conversion keeps code and message.
//
//   return reactor->Finish(ToGrpcStatus(store->Put(...).status()));
//   absl::Status s = FromGrpcStatus(stub->Lookup(&ctx, req, &resp));
#ifndef KVQ_SERVICES_COMMON_GRPC_STATUS_H_
#define KVQ_SERVICES_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace kvq::services {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace kvq::services

#endif  // KVQ_SERVICES_COMMON_GRPC_STATUS_H_
