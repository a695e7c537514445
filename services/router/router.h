// The router's core (design sections 1 and 5), with no gRPC in it: encodes a
// text prompt (or takes token ids), picks the least-loaded prefill worker,
// retries a failed prefill once on another one, then streams the decode
// worker's tokens back (as ids and, on request, as UTF-8 text). When the
// decode worker finds the handle's blocks evicted (NOT_FOUND before any
// token), the prefill is run once more and the decode retried
// (kvq_reprefills_total). With no prefill workers it runs colocated: each
// request goes to a decode worker with its prompt. It never talks to the KV
// store. The calls to the workers go through WorkerCalls: over gRPC
// (grpc_worker_calls.h, with the client's deadline and cancellation
// propagated) or in process (tests).
//
//   Router router({.prefill = {"10.0.0.1:5001"}, .decode = {...}, .tokenizer = &tok});
//   GrpcWorkerCalls calls(stubs, server_context, timeout);
//   KVQ_RETURN_IF_ERROR(router.Generate(request, calls, sink, cancelled));
#ifndef KVQ_SERVICES_ROUTER_ROUTER_H_
#define KVQ_SERVICES_ROUTER_ROUTER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/tokenizer.h"
#include "services/router/utf8_stream.h"
#include "services/serving/serving_metrics.h"
#include "services/serving/worker_types.h"

namespace kvq::router {

// A client's request: text (encoded here) or token ids.
struct RouteRequest {
  std::optional<std::string> text;
  std::vector<int> tokens;  // when no text
  std::string kv;           // "" = the workers' default
  serving::GenerationParams generation;
  bool return_text = false;
};

// A piece of the answer: the first carries where the request ran and the
// prompt's tokens, the last `finished` and the request's KV figures.
struct RouteChunk {
  std::vector<int> tokens;
  std::string text;  // valid UTF-8 (return_text)
  bool finished = false;
  std::string finish_reason;
  std::string prefill_worker, decode_worker;
  int prefill_attempts = 0;
  std::optional<serving::PrefillStats> prefill;  // on the last chunk, disaggregated
  uint64_t decode_bytes_fetched = 0;
  uint64_t fp16_equivalent_bytes = 0;
  uint64_t stored_bytes = 0;
  std::vector<int> prompt_tokens;  // on the first chunk
  int reprefills = 0;
};
using RouteSink = std::function<bool(const RouteChunk&)>;

// How the router reaches worker `index` of its prefill or decode list.
class WorkerCalls {
 public:
  virtual ~WorkerCalls() = default;
  virtual absl::StatusOr<serving::PrefillResult> Prefill(
      int index, const serving::PrefillRequest& request) = 0;
  // Streams the decode worker's chunks to `sink` and returns its status.
  virtual absl::Status Decode(int index, const serving::DecodeRequest& request,
                              const serving::DecodeSink& sink) = 0;
};

struct RouterOptions {
  std::vector<std::string> prefill;  // worker addresses, host:port
  std::vector<std::string> decode;
  const model::Tokenizer* tokenizer = nullptr;  // not owned; required
  absl::Duration default_timeout = absl::Minutes(5);
  serving::ServingMetrics* metrics = nullptr;  // not owned; optional
  // The model's context (seq_len): prompts that cannot fit it, with their
  // max_tokens, are refused here instead of being forwarded. 0: unchecked.
  int max_context_tokens = 0;
};

// A text prompt longer than this many bytes per context token is refused
// before it is encoded (no tokenizer piece is that long; encoding a
// multi-megabyte text would cost the router seconds).
inline constexpr int kMaxPromptBytesPerToken = 64;

// Picks the index with the fewest in-flight requests among `load`, skipping
// `exclude` (-1: none); ties go to the lowest index after `start` (round
// robin). -1 when nothing is eligible.
int PickLeastLoaded(const std::vector<int>& load, int exclude, int start);

// Whether a failed prefill is worth another worker: the worker (not the
// request) failed — UNAVAILABLE, UNKNOWN, INTERNAL, ABORTED, or CANCELLED
// while the client is still there.
bool IsRetryablePrefillError(absl::StatusCode code);

class Router {
 public:
  // INVALID_ARGUMENT without a tokenizer or without decode workers.
  static absl::StatusOr<std::unique_ptr<Router>> Create(RouterOptions options);

  // Routes one request. INVALID_ARGUMENT for a bad request; the workers'
  // errors with which worker and which step; CANCELLED when `cancelled`
  // turns true or the sink returns false.
  absl::Status Generate(const RouteRequest& request, WorkerCalls& calls,
                        const RouteSink& sink, const serving::CancelledFn& cancelled);

  const RouterOptions& options() const { return options_; }

 private:
  struct Pool {
    std::vector<std::string> addresses;
    std::unique_ptr<std::atomic<int>[]> in_flight;
  };
  explicit Router(RouterOptions options);
  int Pick(Pool& pool, int exclude);
  absl::StatusOr<std::vector<int>> Prompt(const RouteRequest& request) const;
  // Prefill on the least-loaded worker, retried once on another one when the
  // worker failed. `worker` is the index that answered last.
  absl::StatusOr<serving::PrefillResult> RunPrefill(
      const serving::PrefillRequest& request, WorkerCalls& calls,
      const serving::CancelledFn& cancelled, int* attempts, int* worker);
  // Per request: the state of the relay to the client.
  struct Relay;
  // Streams a decode worker's output to the client; when it answers
  // NOT_FOUND before any token and `prefill` is given, runs the prefill once
  // more and retries with the new handle.
  absl::Status RelayDecode(Relay& relay, serving::DecodeRequest decode,
                           const serving::PrefillRequest* prefill, WorkerCalls& calls,
                           const serving::CancelledFn& cancelled);
  absl::Status StreamDecode(Relay& relay, const serving::DecodeRequest& decode,
                            int worker, WorkerCalls& calls, bool* streamed);

  const RouterOptions options_;
  Pool prefill_, decode_;
  std::atomic<unsigned> next_{0};
};

}  // namespace kvq::router

#endif  // KVQ_SERVICES_ROUTER_ROUTER_H_
