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

// Decode.Generate with a plain prompt: the colocated mode, no store.
StreamResult ColocatedGenerate(const std::string& address, const std::vector<int>& prompt,
                               const std::string& kv, int max_tokens);

grpc::Status Prefill(const std::string& address, const v1::PrefillRequest& request,
                     v1::PrefillResponse* response);
v1::WorkerStats PrefillStats(const std::string& address);
v1::WorkerStats DecodeStats(const std::string& address);
v1::StoreStatsResponse StoreStats(const std::string& address);

// The value of the sample `name{...}` (first match, any labels) on the
// child's /metrics page (from its "metrics on HOST:PORT" line); NOT_FOUND
// when absent.
absl::StatusOr<double> ScrapeMetric(launcher::ChildProcess* child,
                                    const std::string& name);

// A greedy GenerateRequest for token ids.
v1::GenerateRequest GreedyRequest(const std::vector<int>& prompt, const std::string& kv,
                                  int max_tokens);

}  // namespace kvq::testing

#endif  // KVQ_TESTS_INTEGRATION_SERVING_TEST_UTIL_H_
