// The decode worker's core (design sections 1 and 5), with no gRPC in it: a
// domain request in (serving/worker_types.h), tokens out through a sink, an
// absl::Status at the end. With a KvHandle it fetches the handle's blocks
// from the KV store, checks each against the handle (encoding, tokens, model,
// shape), rebuilds the cache (2-bit blocks + fp16 blocks + the partial fp16
// block) and continues from the prefill worker's first token; with a plain
// prompt (colocated mode) it runs the prompt itself, without a store.
// Sequences decode together in one BatchEngine within a KV budget in bytes:
// a request reserves its cache's bytes at its final length before fetching,
// waits (counted) when they do not fit, and frees them the step after it
// finishes or its client cancels. The handle's store leases (taken by the
// prefill worker) are renewed while the request waits for budget and
// released right after the fetch; blocks gone anyway are NOT_FOUND (counted
// in kvq_kv_handle_misses_total; the router then re-runs the prefill).
//
// Generate is these steps, each a function of its own (tests/services/decode):
//  1. Check: the request against the model; for a handle, that it names
//     exactly the blocks of its prompt's chain;
//  2. Reserve: the cache's bytes at its final length, waiting for budget;
//  3. FetchCache (handle) or ComputeCache (colocated);
//  4. Decode: the batch engine's steps, streamed to the sink.
//
//   DecodeWorker worker(model, transformer, store.get(), metrics, {});
//   KVQ_RETURN_IF_ERROR(worker.Generate(request, sink, cancelled));
#ifndef KVQ_SERVICES_DECODE_DECODE_WORKER_H_
#define KVQ_SERVICES_DECODE_DECODE_WORKER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kernels/block_format.h"
#include "kvstore/block_key.h"
#include "model/kv_cache.h"
#include "model/kv_mode.h"
#include "model/model.h"
#include "model/transformer.h"
#include "services/decode/batch_engine.h"
#include "services/decode/kv_budget.h"
#include "services/serving/request.h"
#include "services/serving/serving_metrics.h"
#include "services/serving/worker_store.h"
#include "services/serving/worker_types.h"

namespace kvq::decode {

struct DecodeOptions {
  uint64_t kv_budget_bytes = uint64_t{1} << 30;
  int max_batch = 256;
  int bos_id = 1;
  int eos_id = 2;
  // Fault injection for tests: sleep after every batch step.
  absl::Duration debug_step_delay = absl::ZeroDuration();
  // The kv mode of a colocated request that names none (a handle carries
  // the prefill worker's).
  std::string default_kv = serving::kDefaultKv;
};

class DecodeWorker {
 public:
  // `store` may be null (colocated only: handles are then UNAVAILABLE), and
  // `metrics` too. Everything must outlive the worker.
  DecodeWorker(const model::Model& model, const model::Transformer& transformer,
               serving::WorkerStore* store, serving::ServingMetrics* metrics,
               const DecodeOptions& options);
  ~DecodeWorker();

  // Steps 1-4. The sink gets the tokens as they come and, last, a chunk with
  // `finished` set. CANCELLED when `cancelled` turns true or the sink
  // returns false; INVALID_ARGUMENT for a bad request; NOT_FOUND when the
  // handle's blocks are gone; DATA_LOSS when a fetched block does not match
  // its handle.
  absl::Status Generate(const serving::DecodeRequest& request,
                        const serving::DecodeSink& sink,
                        const serving::CancelledFn& cancelled);

  // Wakes requests waiting for budget (they fail CANCELLED); for shutdown.
  void Shutdown() { budget_.Shutdown(); }

  // ---- the steps ----
  struct Checked {
    std::vector<int> prompt;
    model::KvMode mode;  // resolved
    // With a handle: the blocks it must name, recomputed from its prompt.
    std::vector<kernels::BlockEncoding> encodings;
    std::vector<kvstore::BlockKey> keys;
  };
  // Step 1.
  absl::StatusOr<Checked> Check(const serving::DecodeRequest& request) const;
  // Step 2: blocks until the bytes fit (counted as waiting) or `cancelled`.
  absl::StatusOr<KvBudget::Reservation> Reserve(const Checked& checked, int max_tokens,
                                                const serving::CancelledFn& cancelled);
  // Step 3, handle: the blocks fetched, each checked against the handle, and
  // imported. `fetched` gets the bytes read.
  absl::StatusOr<std::unique_ptr<model::KvCache>> FetchCache(const Checked& checked,
                                                             uint64_t* fetched);
  // Step 3, colocated: the prompt run here; `first` gets the first token.
  absl::StatusOr<std::unique_ptr<model::KvCache>> ComputeCache(
      const Checked& checked, const model::Sampling& sampling, int* first);

  struct Stats {
    KvBudget::Stats budget;
    BatchEngine::Stats engine;
    uint64_t requests = 0, cancelled = 0, bytes_fetched = 0;
  };
  Stats stats() const;
  uint64_t model_id() const { return model_.id; }

 private:
  absl::Status Run(const serving::DecodeRequest& request, const serving::DecodeSink& sink,
                   const serving::CancelledFn& cancelled);
  // Step 4.
  absl::Status Decode(std::unique_ptr<model::KvCache> cache,
                      KvBudget::Reservation reservation, int first,
                      const serving::DecodeRequest& request, bool colocated,
                      uint64_t fetched, const serving::DecodeSink& sink,
                      const serving::CancelledFn& cancelled);
  void UpdateGauges();

  const model::Model& model_;
  const model::Transformer& transformer_;
  serving::WorkerStore* const store_;
  serving::ServingMetrics* const metrics_;
  const DecodeOptions options_;
  KvBudget budget_;
  BatchEngine engine_;
  std::atomic<uint64_t> requests_{0}, cancelled_{0}, bytes_fetched_{0};
};

}  // namespace kvq::decode

#endif  // KVQ_SERVICES_DECODE_DECODE_WORKER_H_
