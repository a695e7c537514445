// The prefill worker's core (design sections 1, 3.3 and 5), with no gRPC in
// it: a domain request in (serving/worker_types.h), a handle and the first
// token out, or an absl::Status. The gRPC service (prefill_grpc_service.h)
// converts the protos once and calls Run. Run is the steps below, in order,
// each a function of its own (tests/services/prefill):
//  1. Plan: validate the request against the model, cut the prompt into
//     blocks with the residual rule applied to the whole prompt
//     (serving/kv_plan.h) and hash the block chain;
//  2. ReusePrefix: ask the store which leading blocks it holds (Lookup,
//     leasing them so they cannot be evicted before the fetch) and fetch
//     them (keeping at least the last token to compute, for the logits);
//     blocks gone anyway are recomputed from the first missing one;
//  3. ComputeAndPush: run the model over the remaining tokens, attending to
//     the fetched prefix as stored, hand each layer's part of every new
//     block to the put stream as soon as that layer is computed, and wait
//     until the store committed every block;
//  4. sample the first token (sampling step 0);
//  5. LeaseHandleBlocks: lease the handle's blocks (putting back any evicted
//     since their commit) so that they survive until a decode worker
//     fetched them, then release the prefix lease;
//  6. MakeResult: the handle, its leases and the request's figures.
//
//   PrefillWorker worker(model, transformer, store.get(), metrics, {});
//   KVQ_ASSIGN_OR_RETURN(serving::PrefillResult r, worker.Run(request, cancelled));
#ifndef KVQ_SERVICES_PREFILL_PREFILL_WORKER_H_
#define KVQ_SERVICES_PREFILL_PREFILL_WORKER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kernels/block_format.h"
#include "kvstore/block_key.h"
#include "model/block_kv_cache.h"
#include "model/kv_mode.h"
#include "model/model.h"
#include "model/transformer.h"
#include "services/serving/request.h"
#include "services/serving/serving_metrics.h"
#include "services/serving/worker_store.h"
#include "services/serving/worker_types.h"

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
  // The kv mode of a request that names none.
  std::string default_kv = serving::kDefaultKv;
};

class PrefillWorker {
 public:
  // All pointers must outlive the worker; `metrics` may be null.
  PrefillWorker(const model::Model& model, const model::Transformer& transformer,
                serving::WorkerStore* store, serving::ServingMetrics* metrics,
                const PrefillOptions& options);

  // Steps 1-6. `cancelled` is polled after each layer (CANCELLED).
  // INVALID_ARGUMENT for a bad request; the store's errors (UNAVAILABLE,
  // RESOURCE_EXHAUSTED, ...) with what was being done.
  absl::StatusOr<serving::PrefillResult> Run(const serving::PrefillRequest& request,
                                             const serving::CancelledFn& cancelled);

  // ---- the steps ----
  struct Plan {
    std::vector<int> tokens;
    model::KvMode mode;                             // resolved
    std::vector<kernels::BlockEncoding> encodings;  // per block
    std::vector<kvstore::BlockKey> keys;            // per block
    int block_tokens(int b) const;                  // B, or fewer for the last
  };
  // Step 1.
  absl::StatusOr<Plan> MakePlan(const serving::PrefillRequest& request) const;

  struct Prefix {
    std::unique_ptr<model::BlockKvCache> cache;  // the reused blocks, or empty
    int reused = 0;                              // leading blocks reused
    int lost = 0;                                // found by Lookup, gone at fetch
    uint64_t fetched_bytes = 0;
    std::unique_ptr<serving::HeldLeases> lease;  // on the found blocks
  };
  // Step 2. Store failures of the fetch are not errors (the prefix is
  // computed instead); a failed Lookup is.
  absl::StatusOr<Prefix> ReusePrefix(const Plan& plan);

  struct Computed {
    std::vector<float> logits;  // of the last prompt token
    uint64_t bytes_pushed = 0;
    int blocks_quantized = 0;
    absl::Duration compute = absl::ZeroDuration();
    // From the end of compute to the store's commit of every block.
    absl::Duration transfer_exposed = absl::ZeroDuration();
  };
  // Step 3: blocks [prefix.reused, n_blocks) computed and committed.
  absl::StatusOr<Computed> ComputeAndPush(const Plan& plan, Prefix& prefix,
                                          const serving::CancelledFn& cancelled);

  // Step 5: leases the committed blocks for the handle; blocks already
  // evicted are put again from `cache` (counted in `reput`) and leased too.
  // RESOURCE_EXHAUSTED when they are evicted again at once.
  absl::StatusOr<std::vector<store::ShardLease>> LeaseHandleBlocks(
      const Plan& plan, const model::BlockKvCache& cache, int* reput);

  // Step 6.
  serving::PrefillResult MakeResult(const Plan& plan, const Prefix& prefix,
                                    const Computed& computed, int first_token,
                                    absl::Span<const store::ShardLease> leases,
                                    int reput) const;

  struct Stats {
    uint32_t running = 0;
    uint64_t requests = 0, reused = 0, pushed_blocks = 0, pushed_bytes = 0,
             fetched_bytes = 0;
  };
  Stats stats() const;
  uint64_t model_id() const { return model_.id; }

 private:
  kvstore::BlockMeta MetaOf(kernels::BlockEncoding encoding, int token_count) const;

  const model::Model& model_;
  const model::Transformer& transformer_;
  serving::WorkerStore* const store_;
  serving::ServingMetrics* const metrics_;
  const PrefillOptions options_;
  std::atomic<uint32_t> running_{0};
  std::atomic<uint64_t> requests_{0}, reused_{0}, pushed_blocks_{0}, pushed_bytes_{0},
      fetched_bytes_{0};
};

}  // namespace kvq::prefill

#endif  // KVQ_SERVICES_PREFILL_PREFILL_WORKER_H_
