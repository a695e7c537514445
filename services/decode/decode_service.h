// The Decode service (design sections 1 and 5): Generate streams the tokens
// of one sequence. With a KvHandle it fetches the handle's blocks from the
// KV store, rebuilds the cache (2-bit blocks + fp16 blocks + the partial
// fp16 block) and continues from the prefill worker's first token; with a
// plain prompt (colocated mode) it runs the prompt itself, without a store.
// Sequences decode together in one BatchEngine within a KV budget in bytes:
// a request reserves its cache's bytes at its final length before fetching,
// waits (counted) when they do not fit, and frees them the step after it
// finishes or its client cancels. The handle's store leases (taken by the
// prefill worker) are renewed while the request waits for budget and
// released right after the fetch; blocks gone anyway are NOT_FOUND (counted
// in kvq_kv_handle_misses_total; the router then re-runs the prefill).
//
//   DecodeService decode(model, transformer, store.get(), {.kv_budget_bytes = 1 << 30});
//   RunGrpcServer({.role = "decode"}, {&decode});
#ifndef KVQ_SERVICES_DECODE_DECODE_SERVICE_H_
#define KVQ_SERVICES_DECODE_DECODE_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/time/time.h"
#include "model/model.h"
#include "model/transformer.h"
#include "proto/serving.grpc.pb.h"
#include "services/decode/batch_engine.h"
#include "services/decode/kv_budget.h"
#include "services/serving/serving_metrics.h"
#include "services/serving/store_client.h"

namespace kvq::decode {

struct DecodeOptions {
  uint64_t kv_budget_bytes = uint64_t{1} << 30;
  int max_batch = 256;
  int bos_id = 1;
  int eos_id = 2;
  // Fault injection for tests: sleep after every batch step.
  absl::Duration debug_step_delay = absl::ZeroDuration();
};

class DecodeService final : public v1::Decode::Service {
 public:
  // `store` may be null (colocated only: handles are then UNAVAILABLE), and
  // `metrics` too. Everything must outlive the service.
  DecodeService(const model::Model& model, const model::Transformer& transformer,
                serving::StoreClient* store, serving::ServingMetrics* metrics,
                const DecodeOptions& options);
  ~DecodeService() override;

  grpc::Status Generate(grpc::ServerContext* context, const v1::DecodeRequest* request,
                        grpc::ServerWriter<v1::DecodeResponse>* writer) override;
  grpc::Status GetStats(grpc::ServerContext* context, const v1::StatsRequest* request,
                        v1::WorkerStats* response) override;

  // Wakes requests waiting for budget (they fail CANCELLED); for shutdown.
  void Shutdown() { budget_.Shutdown(); }

 private:
  grpc::Status Run(grpc::ServerContext* context, const v1::DecodeRequest& request,
                   grpc::ServerWriter<v1::DecodeResponse>* writer);
  void UpdateGauges();

  const model::Model& model_;
  const model::Transformer& transformer_;
  serving::StoreClient* const store_;
  serving::ServingMetrics* const metrics_;
  const DecodeOptions options_;
  KvBudget budget_;
  BatchEngine engine_;
  std::atomic<uint64_t> requests_{0}, cancelled_{0}, bytes_fetched_{0};
};

}  // namespace kvq::decode

#endif  // KVQ_SERVICES_DECODE_DECODE_SERVICE_H_
