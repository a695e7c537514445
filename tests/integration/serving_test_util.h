// Helpers for the serving integration tests: a real cluster of `kvq serve`
// processes on loopback (services/launcher), and blocking clients of the
// Router, Decode and Prefill services, the store's Stats and a worker's
// /metrics page. Every cluster is stopped by its destructor, also when a
// test fails.
#ifndef KVQ_TESTS_INTEGRATION_SERVING_TEST_UTIL_H_
#define KVQ_TESTS_INTEGRATION_SERVING_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/kvstore.grpc.pb.h"
#include "proto/serving.grpc.pb.h"
#include "services/launcher/launcher.h"

namespace kvq::testing {

// ClusterOptions for the stories260K test model; --metrics_port=0 on the
// workers so their /metrics pages can be read.
launcher::ClusterOptions TestClusterOptions();

struct StreamResult {
  grpc::Status status;
  std::vector<int> tokens;
  std::string text;
  v1::GenerateResponse first, last;  // router streams
  v1::DecodeResponse decode_last;    // decode streams
  absl::Duration elapsed;
};

// Router.Generate to the end of the stream.
StreamResult RouterGenerate(const std::string& address,
                            const v1::GenerateRequest& request,
                            absl::Duration timeout = absl::Seconds(30));

// A prompt of `n` stories260K tokens: BOS, then tokens that vary with `salt`
// (different salts share no prefix block).
std::vector<int> Prompt(int n, int salt);

// A Router.Generate stream held open after its first tokens (a request in
// flight, for tests that kill, cancel or crowd it):
//   OpenRouterStream a(c.router_address(), request, /*min_tokens=*/3);
//   ASSERT_GE(a.tokens(), 3);
//   a.Cancel();
//   EXPECT_EQ(a.Drain().error_code(), grpc::StatusCode::CANCELLED);
class OpenRouterStream {
 public:
  // Starts the stream and reads until `min_tokens` tokens (or its end).
  OpenRouterStream(const std::string& address, const v1::GenerateRequest& request,
                   int min_tokens, absl::Duration timeout = absl::Seconds(30));
  int tokens() const { return tokens_; }
  void Cancel() { ctx_.TryCancel(); }
  // Reads to the end of the stream; its final status.
  grpc::Status Drain();

 private:
  std::unique_ptr<v1::Router::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader_;
  int tokens_ = 0;
};

// Decode.Generate with a plain prompt: the colocated mode, no store.
StreamResult ColocatedGenerate(const std::string& address, const std::vector<int>& prompt,
                               const std::string& kv, int max_tokens);

grpc::Status Prefill(const std::string& address, const v1::PrefillRequest& request,
                     v1::PrefillResponse* response);
v1::WorkerStats PrefillStats(const std::string& address);
v1::WorkerStats DecodeStats(const std::string& address);
v1::StoreStatsResponse StoreStats(const std::string& address);

// The child's /metrics page (from its "metrics on HOST:PORT" line).
absl::StatusOr<std::string> MetricsPage(ChildProcess* child);

// The value of the sample `name{...}` (first match, any labels) on the
// child's /metrics page (from its "metrics on HOST:PORT" line); NOT_FOUND
// when absent.
absl::StatusOr<double> ScrapeMetric(ChildProcess* child, const std::string& name);

// A greedy GenerateRequest for token ids.
v1::GenerateRequest GreedyRequest(const std::vector<int>& prompt, const std::string& kv,
                                  int max_tokens);

}  // namespace kvq::testing

#endif  // KVQ_TESTS_INTEGRATION_SERVING_TEST_UTIL_H_
