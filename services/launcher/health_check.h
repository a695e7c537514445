// A client for the standard gRPC health service (grpc.health.v1.Health/Check)
// without generated code: Debian's gRPC ships no health.proto, and the
// request/response are one-field messages encoded here by hand.
//
//   KVQ_RETURN_IF_ERROR(CheckHealth("127.0.0.1:5000", absl::Seconds(1)));
//   KVQ_RETURN_IF_ERROR(WaitHealthy("127.0.0.1:5000", absl::Seconds(20)));
#ifndef KVQ_SERVICES_LAUNCHER_HEALTH_CHECK_H_
#define KVQ_SERVICES_LAUNCHER_HEALTH_CHECK_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/common/tls.h"

namespace kvq::launcher {

// OK when the server at `address` answers SERVING for `service` ("" = the
// whole server); UNAVAILABLE with the reason otherwise (NOT_SERVING, an RPC
// error, a malformed reply). `security`: plaintext by default, or TLS.
absl::Status CheckHealth(const std::string& address, absl::Duration timeout,
                         const std::string& service = "",
                         const services::ChannelSecurity& security = {});

// Polls CheckHealth until it succeeds or `timeout` passes (DEADLINE_EXCEEDED
// carrying the last error).
absl::Status WaitHealthy(const std::string& address, absl::Duration timeout,
                         const services::ChannelSecurity& security = {});

}  // namespace kvq::launcher

#endif  // KVQ_SERVICES_LAUNCHER_HEALTH_CHECK_H_
