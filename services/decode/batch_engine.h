// Continuous batching for the decode worker: every live sequence advances by
// one token per step of a single loop thread (Transformer::DecodeStep over
// the whole batch); sequences join and leave between steps. A sequence owns
// its cache and its KV budget reservation, both freed the step after it
// finishes or is cancelled.
//
//   auto seq = std::make_shared<Sequence>(std::move(cache), std::move(reservation),
//                                         first_token, params);
//   engine.Add(seq);
//   while (seq->Next(&chunk, absl::Milliseconds(20)) ...) Send(chunk.tokens);
#ifndef KVQ_SERVICES_DECODE_BATCH_ENGINE_H_
#define KVQ_SERVICES_DECODE_BATCH_ENGINE_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "model/kv_cache.h"
#include "model/sampler.h"
#include "model/transformer.h"
#include "services/decode/kv_budget.h"

namespace kvq::decode {

struct SequenceParams {
  model::Sampling sampling;
  // Total new tokens, counting the first one (already sampled by prefill).
  int max_tokens = 1;
  std::vector<int> stop_ids;  // finishing tokens, not returned
};

class Sequence {
 public:
  struct Chunk {
    std::vector<int> tokens;
    bool finished = false;
    std::string finish_reason;  // "length", "stop", "cancelled"
    absl::Status error;         // set when the engine failed the sequence
  };

  // `first_token` is the last sampled token (step 0), the next input.
  Sequence(std::unique_ptr<model::KvCache> cache, KvBudget::Reservation reservation,
           int first_token, SequenceParams params);

  // Waits up to `timeout` for new tokens or the end; returns what there is
  // (possibly nothing). `chunk->finished` is set once, with the last tokens.
  void Next(Chunk* chunk, absl::Duration timeout);
  // Asks the engine to drop the sequence (and free its memory) at the next
  // step boundary.
  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  // The cache's storage report (valid until the engine drops the cache).
  model::KvCacheStats final_stats() const;

 private:
  friend class BatchEngine;
  void Emit(int token);
  void Finish(const std::string& reason, absl::Status error = absl::OkStatus());

  // Touched only by the engine thread once added.
  std::unique_ptr<model::KvCache> cache_;
  KvBudget::Reservation reservation_;
  int next_input_;
  int emitted_ = 1;  // the first token counts
  const SequenceParams params_;

  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> pending_;   // guarded by mu_
  bool finished_ = false;      // guarded by mu_
  bool reported_ = false;      // guarded by mu_
  std::string reason_;         // guarded by mu_
  absl::Status error_;         // guarded by mu_
  model::KvCacheStats stats_;  // guarded by mu_, set when finishing
};

class BatchEngine {
 public:
  struct Stats {
    uint32_t running = 0;
    uint64_t steps = 0;
    uint64_t tokens = 0;
    uint64_t cancelled = 0;
  };

  // `transformer` must outlive the engine. At most `max_batch` sequences
  // advance per step (the rest wait their turn, round robin).
  // `step_delay` (fault injection for tests) sleeps after every step.
  BatchEngine(const model::Transformer& transformer, int max_batch,
              absl::Duration step_delay = absl::ZeroDuration());
  ~BatchEngine();  // stops the loop; live sequences finish as "cancelled"

  void Add(std::shared_ptr<Sequence> sequence);
  Stats stats() const;

 private:
  void Loop();

  const model::Transformer& transformer_;
  const int max_batch_;
  const absl::Duration step_delay_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<Sequence>> incoming_;  // guarded by mu_
  bool stop_ = false;                                // guarded by mu_
  Stats stats_;                                      // guarded by mu_
  std::thread loop_;
};

}  // namespace kvq::decode

#endif  // KVQ_SERVICES_DECODE_BATCH_ENGINE_H_
