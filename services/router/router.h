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
// Workers are named by targets: "HOST:PORT" is one worker; "dns:///NAME:PORT"
// is every address NAME resolves to (resolver.h; on Kubernetes, every pod
// of a headless Service). The router balances over those endpoints, and
// re-resolves the dns targets every `resolve_interval` and soon after a
// worker answers UNAVAILABLE: new pods join with no load, gone ones leave
// (calls in flight to them finish), survivors keep their in-flight counts.
// An endpoint that answered UNAVAILABLE is avoided for a second (a dead
// worker fails fast, so by load alone it would look idle and draw every
// request), and a decode that failed UNAVAILABLE before its first token is
// tried once on another decode worker.
//
//   Router router({.prefill = {"dns:///kvq-prefill:50052"}, .decode = {...},
//                  .tokenizer = &tok});
//   GrpcWorkerCalls calls(stubs, server_context, timeout);
//   KVQ_RETURN_IF_ERROR(router.Generate(request, calls, sink, cancelled));
#ifndef KVQ_SERVICES_ROUTER_ROUTER_H_
#define KVQ_SERVICES_ROUTER_ROUTER_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/tokenizer.h"
#include "services/router/resolver.h"
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

// How the router reaches the worker at an endpoint (one address a target
// resolved to, e.g. "10.0.0.7:50052").
class WorkerCalls {
 public:
  virtual ~WorkerCalls() = default;
  virtual absl::StatusOr<serving::PrefillResult> Prefill(
      const std::string& endpoint, const serving::PrefillRequest& request) = 0;
  // Streams the decode worker's chunks to `sink` and returns its status.
  virtual absl::Status Decode(const std::string& endpoint,
                              const serving::DecodeRequest& request,
                              const serving::DecodeSink& sink) = 0;
};

struct RouterOptions {
  // Worker targets: HOST:PORT, or dns:///NAME:PORT for every address of NAME.
  std::vector<std::string> prefill;
  std::vector<std::string> decode;
  const model::Tokenizer* tokenizer = nullptr;  // not owned; required
  absl::Duration default_timeout = absl::Minutes(5);
  serving::ServingMetrics* metrics = nullptr;  // not owned; optional
  // The model's context (seq_len): prompts that cannot fit it, with their
  // max_tokens, are refused here instead of being forwarded. 0: unchecked.
  int max_context_tokens = 0;
  // Expands dns targets; not owned; null = Resolver::System() (getaddrinfo).
  Resolver* resolver = nullptr;
  // How often dns targets are resolved again (0: only at Create and on
  // Refresh()). No thread runs without a dns target.
  absl::Duration resolve_interval = absl::Seconds(5);
  // Called (from the resolving thread) after the endpoints changed, with
  // every endpoint of both pools: e.g. to drop the channels of gone ones.
  std::function<void(const std::vector<std::string>& endpoints)> on_endpoints_changed;
  // The kv mode of a request that names none, filled in before the prefill
  // ("" = leave it empty: each worker's own default applies).
  std::string default_kv;
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
  // INVALID_ARGUMENT without a tokenizer, without decode targets or for a
  // malformed dns target. A dns target that does not resolve yet is not an
  // error: it stands for no worker until it does.
  static absl::StatusOr<std::unique_ptr<Router>> Create(RouterOptions options);
  ~Router();  // stops the resolving thread

  // Routes one request. INVALID_ARGUMENT for a bad request; the workers'
  // errors with which worker and which step; CANCELLED when `cancelled`
  // turns true or the sink returns false.
  absl::Status Generate(const RouteRequest& request, WorkerCalls& calls,
                        const RouteSink& sink, const serving::CancelledFn& cancelled);

  const RouterOptions& options() const { return options_; }

  // Resolves every dns target now and updates the pools. A target that
  // fails to resolve keeps the endpoints it had (a DNS hiccup does not empty
  // a pool). Whether any endpoint changed.
  bool Refresh();
  // The endpoints the router balances over now, sorted.
  std::vector<std::string> prefill_endpoints() const;
  std::vector<std::string> decode_endpoints() const;

 private:
  struct Endpoint {
    explicit Endpoint(std::string a) : address(std::move(a)) {}
    const std::string address;
    std::atomic<int> in_flight{0};
    // Until when (Unix ns) it counts as down: it answered UNAVAILABLE.
    std::atomic<int64_t> down_until{0};
  };
  // How long an endpoint that answered UNAVAILABLE is avoided.
  static constexpr absl::Duration kDownFor = absl::Seconds(1);
  static void MarkDown(Endpoint& e);
  struct Pool {
    std::vector<std::string> targets;                          // constant
    std::map<std::string, std::vector<std::string>> resolved;  // per target
    std::vector<std::shared_ptr<Endpoint>> endpoints;          // sorted, unique
    unsigned next = 0;  // where ties start (round robin, per pool)
  };
  explicit Router(RouterOptions options);
  // The least-loaded endpoint of `pool` other than `exclude`; null if none.
  std::shared_ptr<Endpoint> Pick(Pool& pool, const Endpoint* exclude);
  // Resolves the dns targets and rebuilds both pools; the targets that did
  // not resolve in `errors`. Whether any endpoint changed.
  bool Resolve(std::vector<absl::Status>* errors);
  // Endpoints from `pool.resolved` (under mu_); whether they changed.
  bool RebuildPool(Pool& pool);
  std::vector<std::string> Endpoints(const Pool& pool) const;
  // Asks the resolving thread for an early Refresh (a worker was UNAVAILABLE).
  void RequestRefresh();
  void ResolveLoop();
  absl::StatusOr<std::vector<int>> Prompt(const RouteRequest& request) const;
  // Prefill on the least-loaded worker, retried once on another one when the
  // worker failed. `worker` is the index that answered last.
  absl::StatusOr<serving::PrefillResult> RunPrefill(
      const serving::PrefillRequest& request, WorkerCalls& calls,
      const serving::CancelledFn& cancelled, int* attempts, std::string* worker);
  // Per request: the state of the relay to the client.
  struct Relay;
  // Streams a decode worker's output to the client; when it answers
  // NOT_FOUND before any token and `prefill` is given, runs the prefill once
  // more and retries with the new handle.
  absl::Status RelayDecode(Relay& relay, serving::DecodeRequest decode,
                           const serving::PrefillRequest* prefill, WorkerCalls& calls,
                           const serving::CancelledFn& cancelled);
  absl::Status StreamDecode(Relay& relay, const serving::DecodeRequest& decode,
                            const std::string& worker, WorkerCalls& calls,
                            bool* streamed);

  // Constant after construction.
  const RouterOptions options_;
  std::unique_ptr<Resolver> own_resolver_;
  Resolver* resolver_ = nullptr;
  bool colocated_ = false;  // no prefill targets

  mutable std::mutex mu_;
  Pool prefill_, decode_;           // guarded by mu_
  bool stop_ = false;               // guarded by mu_
  bool refresh_requested_ = false;  // guarded by mu_
  absl::Time last_refresh_;         // guarded by mu_
  std::condition_variable cv_;
  std::mutex refresh_mu_;  // one Refresh at a time (resolving is slow; not under mu_)
  std::thread resolve_thread_;
};

}  // namespace kvq::router

#endif  // KVQ_SERVICES_ROUTER_ROUTER_H_
