#include "services/serving/serving_flags.h"

#include <cstdint>

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, host, "127.0.0.1",
          "Address a serving role binds (0.0.0.0 for every interface).");
ABSL_FLAG(int, worker_port, 0,
          "gRPC port of a prefill/decode/router process (0: any free).");
ABSL_FLAG(std::string, store, "", "HOST:PORT of the KV store.");
ABSL_FLAG(std::vector<std::string>, prefill, {},
          "Comma-separated HOST:PORT of the prefill workers (router).");
ABSL_FLAG(std::vector<std::string>, decode, {},
          "Comma-separated HOST:PORT of the decode workers (router).");
ABSL_FLAG(int64_t, kv_budget_bytes, int64_t{1} << 30,
          "Decode worker: bytes of KV cache its sequences may hold together.");
ABSL_FLAG(int, max_batch, 256, "Decode worker: most sequences advanced per step.");
ABSL_FLAG(absl::Duration, request_timeout, absl::Minutes(5),
          "Deadline of outgoing calls when the client set none.");
ABSL_FLAG(absl::Duration, store_timeout, absl::Seconds(30),
          "Prefill/decode worker: deadline of each KV store call; a store that does not "
          "answer in time is reported UNAVAILABLE.");
ABSL_FLAG(absl::Duration, kv_lease_ttl, absl::Seconds(30),
          "Prefill worker: TTL of its store leases on the prefix blocks it reuses and on "
          "the handle's blocks until a decode worker fetched them (renewed while held, "
          "capped by the store's --lease_ttl; 0 = take no leases).");
ABSL_FLAG(absl::Duration, debug_fetch_delay, absl::ZeroDuration(),
          "Prefill worker fault injection for tests: sleep between the store Lookup and "
          "the fetch of the reused prefix.");
ABSL_FLAG(absl::Duration, debug_layer_delay, absl::ZeroDuration(),
          "Prefill worker fault injection for tests: sleep after each layer.");
ABSL_FLAG(absl::Duration, debug_step_delay, absl::ZeroDuration(),
          "Decode worker fault injection for tests: sleep after each batch step.");
