// The router's WorkerCalls over real worker cores in the test's process (no
// gRPC between them): endpoint "p<i>" runs prefill[i], "d<i>" (or "d" for
// the first) runs decode[i]; another endpoint answers UNAVAILABLE. Fault
// injection: `down` marks prefill endpoints that answer UNAVAILABLE as a
// dead pod would, and `before_decode` runs before each decode (e.g. to evict
// the handle's blocks).
#ifndef KVQ_TESTS_SERVICES_ROUTER_LOCAL_WORKER_CALLS_H_
#define KVQ_TESTS_SERVICES_ROUTER_LOCAL_WORKER_CALLS_H_

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/decode/decode_worker.h"
#include "services/prefill/prefill_worker.h"
#include "services/router/router.h"

namespace kvq::router::testing {

class LocalWorkerCalls final : public WorkerCalls {
 public:
  LocalWorkerCalls(std::vector<prefill::PrefillWorker*> prefill,
                   std::vector<decode::DecodeWorker*> decode)
      : prefill_(std::move(prefill)), decode_(std::move(decode)) {}

  absl::StatusOr<serving::PrefillResult> Prefill(
      const std::string& endpoint, const serving::PrefillRequest& request) override {
    prefill_calls.push_back(endpoint);
    const int i = Index(endpoint, "p", prefill_.size());
    if (down.count(endpoint) || i < 0) {
      return absl::UnavailableError(
          absl::StrCat("prefill worker ", endpoint, " is down"));
    }
    return prefill_[i]->Run(request, nullptr);
  }
  absl::Status Decode(const std::string& endpoint, const serving::DecodeRequest& request,
                      const serving::DecodeSink& sink) override {
    decode_calls.push_back(endpoint);
    if (before_decode) before_decode(request);
    const int i = endpoint == "d" ? 0 : Index(endpoint, "d", decode_.size());
    if (i < 0) return absl::UnavailableError("no decode worker " + endpoint);
    return decode_[i]->Generate(request, sink, nullptr);
  }

  std::set<std::string> down;
  std::function<void(const serving::DecodeRequest&)> before_decode;
  std::vector<std::string> prefill_calls, decode_calls;

 private:
  // "p3" -> 3 (with prefix "p"); -1 when not one of the n workers.
  static int Index(const std::string& endpoint, const std::string& prefix, size_t n) {
    int i = -1;
    if (endpoint.rfind(prefix, 0) != 0 ||
        !absl::SimpleAtoi(endpoint.substr(prefix.size()), &i) || i < 0 ||
        i >= static_cast<int>(n)) {
      return -1;
    }
    return i;
  }

  std::vector<prefill::PrefillWorker*> prefill_;
  std::vector<decode::DecodeWorker*> decode_;
};

}  // namespace kvq::router::testing

#endif  // KVQ_TESTS_SERVICES_ROUTER_LOCAL_WORKER_CALLS_H_
