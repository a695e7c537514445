// Flags of the `kvq client ...` operator commands (clients/cli): where the
// router is and how long a call may take. The commands also read flags other
// libraries own (--prompt, --steps, --temperature, --top_p, --seed from
// `kvq generate`; --kv and --json from model/model_flags.h; --store from
// services/serving/serving_flags.h): one definition of each in the binary.
#ifndef KVQ_CLIENTS_CLI_CLIENT_FLAGS_H_
#define KVQ_CLIENTS_CLI_CLIENT_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"
#include "absl/time/time.h"

ABSL_DECLARE_FLAG(std::string, router);
ABSL_DECLARE_FLAG(absl::Duration, rpc_timeout);

namespace kvq::clients {

// Whether --rpc_timeout is positive and finite.
bool RpcTimeoutValid();

}  // namespace kvq::clients

#endif  // KVQ_CLIENTS_CLI_CLIENT_FLAGS_H_
