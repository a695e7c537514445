// A Resolver for tests (services/router/resolver.h): dns targets resolve to
// what Set last gave them (UNAVAILABLE when never set, or the error set);
// other targets to themselves. Lets a test put several workers, each on its
// own loopback port, behind one dns target. Thread-safe.
//
//   StaticResolver dns;
//   dns.Set("dns:///prefill:1", {{"127.0.0.1:4001", "127.0.0.1:4002"}});
#ifndef KVQ_TESTS_SERVICES_ROUTER_STATIC_RESOLVER_H_
#define KVQ_TESTS_SERVICES_ROUTER_STATIC_RESOLVER_H_

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/router/resolver.h"

namespace kvq::router::testing {

class StaticResolver final : public Resolver {
 public:
  void Set(const std::string& target,
           absl::StatusOr<std::vector<std::string>> endpoints) {
    if (endpoints.ok()) std::sort(endpoints->begin(), endpoints->end());
    std::lock_guard<std::mutex> lock(mu_);
    names_.insert_or_assign(target, std::move(endpoints));
  }

  absl::StatusOr<std::vector<std::string>> Resolve(const std::string& target) override {
    if (!IsDnsTarget(target)) return std::vector<std::string>{target};
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    auto it = names_.find(target);
    if (it == names_.end()) {
      return absl::UnavailableError(absl::StrCat("resolving ", target, ": unknown name"));
    }
    return it->second;
  }

  // Resolve calls of dns targets so far.
  int calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, absl::StatusOr<std::vector<std::string>>>
      names_;      // guarded by mu_
  int calls_ = 0;  // guarded by mu_
};

}  // namespace kvq::router::testing

#endif  // KVQ_TESTS_SERVICES_ROUTER_STATIC_RESOLVER_H_
