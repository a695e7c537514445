// The client-facing Router service (design sections 1 and 5): encodes a text
// prompt (or takes token ids), picks the least-loaded prefill worker, retries
// a failed prefill once on another one, then streams the decode worker's
// tokens back. When the decode worker finds the handle's blocks evicted
// (NOT_FOUND before any token), the prefill is run once more and the decode
// retried (kvq_reprefills_total). It never talks to the KV store. The
// client's deadline and cancellation pass through to both workers (gRPC call
// propagation); calls without a client deadline get `default_timeout`.
//
//   RouterService router({.prefill = {"127.0.0.1:5001"}, .decode = {...},
//                         .tokenizer = tok.get()});
//   RunGrpcServer({.role = "router"}, {&router});
#ifndef KVQ_SERVICES_ROUTER_ROUTER_SERVICE_H_
#define KVQ_SERVICES_ROUTER_ROUTER_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/tokenizer.h"
#include "proto/serving.grpc.pb.h"
#include "services/router/utf8_stream.h"
#include "services/serving/serving_metrics.h"

namespace kvq::router {

struct RouterOptions {
  std::vector<std::string> prefill;  // worker addresses, host:port
  std::vector<std::string> decode;
  const model::Tokenizer* tokenizer = nullptr;  // not owned; required
  absl::Duration default_timeout = absl::Minutes(5);
  serving::ServingMetrics* metrics = nullptr;  // not owned; optional
};

// With no prefill workers the router runs colocated: each request goes to a
// decode worker with its prompt (Decode's colocated mode, no store).
//
// Picks the index with the fewest in-flight requests among `load`, skipping
// `exclude` (-1: none); ties go to the lowest index after `start` (round
// robin). -1 when nothing is eligible.
int PickLeastLoaded(const std::vector<int>& load, int exclude, int start);

// Whether a failed prefill is worth another worker: the worker (not the
// request) failed — UNAVAILABLE, UNKNOWN, INTERNAL, ABORTED, or CANCELLED
// while the client is still there.
bool IsRetryablePrefillError(grpc::StatusCode code);

class RouterService final : public v1::Router::Service {
 public:
  // INVALID_ARGUMENT without a tokenizer or without workers.
  static absl::StatusOr<std::unique_ptr<RouterService>> Create(RouterOptions options);

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;

 private:
  struct Worker {
    std::string address;
    std::unique_ptr<v1::Prefill::Stub> prefill;
    std::unique_ptr<v1::Decode::Stub> decode;
    std::atomic<int> in_flight{0};
  };
  explicit RouterService(RouterOptions options);
  grpc::Status GenerateImpl(grpc::ServerContext* context,
                            const v1::GenerateRequest* request,
                            grpc::ServerWriter<v1::GenerateResponse>* writer);
  int Pick(std::vector<std::unique_ptr<Worker>>& workers, int exclude);
  // Prefill on the least-loaded worker, retried once on another one when the
  // worker failed. `worker` is the index that answered last.
  grpc::Status RunPrefill(grpc::ServerContext* context, const v1::PrefillRequest& request,
                          v1::PrefillResponse* response, int* attempts, int* worker);
  std::unique_ptr<grpc::ClientContext> Downstream(grpc::ServerContext* context) const;
  // Streams a decode worker's tokens to the client, `head` (the first token,
  // where it is, and the prompt) first; `prev` is the token before them.
  // When the decode worker answers NOT_FOUND before any token (the handle's
  // blocks were evicted) and `prefill_request` is given, the prefill is run
  // again once (its blocks go back to the store; the first token already
  // sent stays) and the decode retried with the new handle.
  grpc::Status RelayDecode(grpc::ServerContext* context,
                           const v1::GenerateRequest& request,
                           const v1::PrefillRequest* prefill_request,
                           v1::DecodeRequest decode_request, v1::GenerateResponse head,
                           int prev, const v1::PrefillStats& prefill, absl::Time arrival,
                           Utf8Stream* utf8,
                           grpc::ServerWriter<v1::GenerateResponse>* writer);
  // One Decode.Generate relayed to the client; `streamed` is set once the
  // decode worker sent anything. Returns the decode worker's status.
  grpc::Status StreamDecode(grpc::ServerContext* context,
                            const v1::GenerateRequest& request,
                            const v1::DecodeRequest& decode_request, Worker& dw,
                            v1::GenerateResponse* head, bool* first_pending, int* prev,
                            const v1::PrefillStats& prefill, absl::Time arrival,
                            Utf8Stream* utf8,
                            grpc::ServerWriter<v1::GenerateResponse>* writer,
                            int reprefills, bool* streamed);

  const RouterOptions options_;
  std::vector<std::unique_ptr<Worker>> prefill_, decode_;
  std::atomic<unsigned> next_{0};
};

}  // namespace kvq::router

#endif  // KVQ_SERVICES_ROUTER_ROUTER_SERVICE_H_
