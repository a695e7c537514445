// The router's dns targets with real worker processes: one target standing
// for several prefill workers and one for several decode workers (each on
// its own loopback port, so a test resolver maps the name to them;
// services/router/resolver.h). The router (in this process, over gRPC)
// spreads requests over every endpoint, retries a prefill on another one
// when a worker is killed, drops an endpoint the name no longer lists and
// takes back a restarted one at the next resolution.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/paths.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "model/model_loader.h"
#include "services/router/router_service.h"
#include "tests/integration/serving_test_util.h"
#include "tests/services/router/static_resolver.h"

namespace kvq::testing {
namespace {

constexpr char kPrefill[] = "dns:///kvq-prefill:50052";
constexpr char kDecode[] = "dns:///kvq-decode:50053";

class RouterDnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    launcher::ClusterOptions o = TestClusterOptions();
    o.with_router = false;
    o.store_shards = 2;
    o.prefill_workers = 2;
    o.decode_workers = 2;
    auto cluster = launcher::Cluster::Start(o);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    dns_.Set(kPrefill, cluster_->prefill_addresses());
    dns_.Set(kDecode, cluster_->decode_addresses());

    auto loaded = model::LoadModel(DefaultModelDir());
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    tokenizer_ = std::move(loaded->tokenizer);
    auto service = router::RouterService::Create(
        {.prefill = {kPrefill},
         .decode = {kDecode},
         .tokenizer = tokenizer_.get(),
         .default_timeout = absl::Seconds(30),
         .resolver = &dns_,
         .resolve_interval = absl::Milliseconds(200),
         .on_endpoints_changed = [this](const std::vector<std::string>& all) {
           std::lock_guard<std::mutex> lock(mu_);
           endpoints_ = all;
           ++changes_;
         }});
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = "127.0.0.1:" + std::to_string(port);
    std::lock_guard<std::mutex> lock(mu_);
    base_ = changes_;  // the first resolution, at Create
  }

  void TearDown() override {
    if (server_) server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  }

  StreamResult Generate(int salt) {
    return RouterGenerate(address_, GreedyRequest(Prompt(40, salt), "kivi2", 4));
  }

  // Waits until the router's endpoints changed `n` times since the start.
  bool WaitForChanges(int n) {
    for (absl::Time until = absl::Now() + absl::Seconds(10); absl::Now() < until;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (changes_ - base_ >= n) return true;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  router::testing::StaticResolver dns_;
  std::unique_ptr<launcher::Cluster> cluster_;
  std::unique_ptr<model::Tokenizer> tokenizer_;
  std::unique_ptr<router::RouterService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::mutex mu_;
  std::vector<std::string> endpoints_;  // guarded by mu_
  int changes_ = 0;                     // guarded by mu_
  int base_ = 0;                        // guarded by mu_
};

TEST_F(RouterDnsTest, EveryEndpointOfANameServesAndDeadOnesAreRoutedAround) {
  const std::vector<std::string> prefill = cluster_->prefill_addresses();
  const std::vector<std::string> decode = cluster_->decode_addresses();
  // One at a time, every worker idle: the picks alternate over both
  // endpoints of each name.
  for (int i = 0; i < 4; ++i) {
    const StreamResult r = Generate(i);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.tokens.size(), 4u);
  }
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(PrefillStats(prefill[i]).requests_total(), 2u) << prefill[i];
    EXPECT_EQ(DecodeStats(decode[i]).requests_total(), 2u) << decode[i];
  }

  // A pod dies; the name still lists it: its prefills go to the other one.
  cluster_->prefill(0)->Kill();
  for (int i = 0; i < 4; ++i) {
    const StreamResult r = Generate(10 + i);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.first.prefill_worker(), prefill[1]);
  }

  // The name drops it (its pod is gone): the router follows within an
  // interval, and only the survivor is tried.
  dns_.Set(kPrefill, {{prefill[1]}});
  ASSERT_TRUE(WaitForChanges(1));
  {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_EQ(endpoints_.size(), 3u);
  }
  const StreamResult one = Generate(20);
  ASSERT_TRUE(one.status.ok()) << one.status.error_message();
  EXPECT_EQ(one.first.prefill_attempts(), 1u);

  // It comes back (same address) and is listed again: it gets work again.
  ASSERT_TRUE(cluster_->Restart(launcher::Role::kPrefill, 0).ok());
  dns_.Set(kPrefill, prefill);
  ASSERT_TRUE(WaitForChanges(2));
  for (int i = 0; i < 4; ++i) {
    const StreamResult r = Generate(30 + i);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  }
  EXPECT_EQ(PrefillStats(prefill[0]).requests_total(), 2u);
}

}  // namespace
}  // namespace kvq::testing
