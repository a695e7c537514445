// The Prefill service (design sections 1, 3.3 and 5). For a prompt it:
//  1. cuts the prompt into blocks, gives each its encoding under the
//     residual rule applied to the whole prompt (serving/kv_plan.h) and
//     hashes the block chain;
//  2. asks the store which leading blocks it holds (Lookup, leasing them so
//     they cannot be evicted before the fetch) and fetches them (keeping at
//     least the last token to compute, for the logits); blocks gone anyway
//     are recomputed from the first missing one;
//  3. runs the model over the remaining tokens, attending to the fetched
//     prefix as stored, and hands each layer's part of every new block to
//     the put stream as soon as that layer is computed;
//  4. samples the first token (sampling step 0) once the store committed
//     every block;
//  5. leases the handle's blocks (putting back any evicted since their
//     commit) so that they survive until a decode worker fetched them,
//     releases the prefix lease, and answers with the handle and its leases.
//
//   PrefillService prefill(model, transformer, store.get(), {});
//   RunGrpcServer({.role = "prefill"}, {&prefill});
#ifndef KVQ_SERVICES_PREFILL_PREFILL_SERVICE_H_
#define KVQ_SERVICES_PREFILL_PREFILL_SERVICE_H_

#include <atomic>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kernels/block_format.h"
#include "kvstore/block_key.h"
#include "model/block_kv_cache.h"
#include "model/model.h"
#include "model/transformer.h"
#include "proto/serving.grpc.pb.h"
#include "services/serving/serving_metrics.h"
#include "services/serving/store_client.h"

namespace kvq::prefill {

struct PrefillOptions {
  // Fault injection for tests: sleep this long after each layer.
  absl::Duration debug_layer_delay = absl::ZeroDuration();
  // Hand every layer part to the put stream only after the whole prefill
  // instead of layer by layer as computed (the baseline `kvq bench serve`
  // measures streaming against).
  bool push_after_prefill = false;
  // TTL of the store leases on the reused prefix (from Lookup until the
  // handle's lease is taken) and on the handle's blocks (until a decode
  // worker fetched them; it renews them while it waits). 0: no leases.
  absl::Duration lease_ttl = absl::Seconds(30);
  // Fault injection for tests: sleep between the Lookup and the fetch.
  absl::Duration debug_fetch_delay = absl::ZeroDuration();
};

class PrefillService final : public v1::Prefill::Service {
 public:
  // All pointers must outlive the service; `metrics` may be null.
  PrefillService(const model::Model& model, const model::Transformer& transformer,
                 serving::StoreClient* store, serving::ServingMetrics* metrics,
                 const PrefillOptions& options);

  grpc::Status Prefill(grpc::ServerContext* context, const v1::PrefillRequest* request,
                       v1::PrefillResponse* response) override;
  grpc::Status GetStats(grpc::ServerContext* context, const v1::StatsRequest* request,
                        v1::WorkerStats* response) override;

 private:
  absl::Status Run(grpc::ServerContext* context, const v1::PrefillRequest& request,
                   v1::PrefillResponse* response);
  // Leases the committed blocks `keys` for the handle; blocks already evicted
  // are put again from `cache` (counted in `reput`) and leased too.
  // RESOURCE_EXHAUSTED when they are evicted again at once.
  absl::StatusOr<std::vector<store::ShardLease>> LeaseHandleBlocks(
      absl::Span<const kvstore::BlockKey> keys,
      absl::Span<const kernels::BlockEncoding> plan, const model::BlockKvCache& cache,
      int* reput);

  const model::Model& model_;
  const model::Transformer& transformer_;
  serving::StoreClient* const store_;
  serving::ServingMetrics* const metrics_;
  const PrefillOptions options_;
  std::atomic<uint32_t> running_{0};
  std::atomic<uint64_t> requests_{0}, reused_{0}, pushed_blocks_{0}, pushed_bytes_{0},
      fetched_bytes_{0};
};

}  // namespace kvq::prefill

#endif  // KVQ_SERVICES_PREFILL_PREFILL_SERVICE_H_
