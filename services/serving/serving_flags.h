// Flags of the serving roles (`kvq serve prefill|decode|router`). --model and
// --kv are model/model_flags.h's; --metrics_port is `kvq serve store`'s
// (services/store), shared so that one binary links one definition of each.
#ifndef KVQ_SERVICES_SERVING_SERVING_FLAGS_H_
#define KVQ_SERVICES_SERVING_SERVING_FLAGS_H_

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/time/time.h"

ABSL_DECLARE_FLAG(std::string, host);
ABSL_DECLARE_FLAG(int, worker_port);
ABSL_DECLARE_FLAG(std::string, store);
ABSL_DECLARE_FLAG(std::vector<std::string>, prefill);
ABSL_DECLARE_FLAG(std::vector<std::string>, decode);
ABSL_DECLARE_FLAG(int64_t, kv_budget_bytes);
ABSL_DECLARE_FLAG(int, max_batch);
ABSL_DECLARE_FLAG(absl::Duration, request_timeout);
ABSL_DECLARE_FLAG(absl::Duration, store_timeout);
ABSL_DECLARE_FLAG(absl::Duration, kv_lease_ttl);
ABSL_DECLARE_FLAG(absl::Duration, debug_fetch_delay);
ABSL_DECLARE_FLAG(absl::Duration, debug_layer_delay);
ABSL_DECLARE_FLAG(absl::Duration, debug_step_delay);
ABSL_DECLARE_FLAG(int, metrics_port);

#endif  // KVQ_SERVICES_SERVING_SERVING_FLAGS_H_
