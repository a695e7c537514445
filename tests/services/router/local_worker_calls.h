// The router's WorkerCalls over real worker cores in the test's process (no
// gRPC between them): prefill index i runs prefill[i], decode index i runs
// decode[i]. Fault injection: `down` marks prefill workers that answer
// UNAVAILABLE as a dead pod would, and `before_decode` runs before each
// decode (e.g. to evict the handle's blocks).
#ifndef KVQ_TESTS_SERVICES_ROUTER_LOCAL_WORKER_CALLS_H_
#define KVQ_TESTS_SERVICES_ROUTER_LOCAL_WORKER_CALLS_H_

#include <functional>
#include <set>
#include <vector>

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
      int index, const serving::PrefillRequest& request) override {
    prefill_calls.push_back(index);
    if (down.count(index)) {
      return absl::UnavailableError(absl::StrCat("prefill worker ", index, " is down"));
    }
    return prefill_[index]->Run(request, nullptr);
  }
  absl::Status Decode(int index, const serving::DecodeRequest& request,
                      const serving::DecodeSink& sink) override {
    if (before_decode) before_decode(request);
    return decode_[index]->Generate(request, sink, nullptr);
  }

  std::set<int> down;
  std::function<void(const serving::DecodeRequest&)> before_decode;
  std::vector<int> prefill_calls;

 private:
  std::vector<prefill::PrefillWorker*> prefill_;
  std::vector<decode::DecodeWorker*> decode_;
};

}  // namespace kvq::router::testing

#endif  // KVQ_TESTS_SERVICES_ROUTER_LOCAL_WORKER_CALLS_H_
