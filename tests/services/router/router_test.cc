// The router's core: worker picking and retry rules, and whole requests
// routed over the real worker cores in process (tests/services/router/
// local_worker_calls.h) with the real model and the real store: the same
// tokens as `kvq generate`, a dead prefill worker retried on another, an
// evicted handle re-prefilled once, colocated mode, text out.
#include "services/router/router.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "model/generate.h"
#include "services/router/router_service.h"
#include "tests/services/router/local_worker_calls.h"
#include "tests/services/router/static_resolver.h"
#include "tests/services/serving/worker_test_env.h"

namespace kvq::router {
namespace {

TEST(PickLeastLoadedTest, FewestInFlightWins) {
  EXPECT_EQ(PickLeastLoaded({3, 1, 2}, -1, 0), 1);
  EXPECT_EQ(PickLeastLoaded({0, 0, 5}, -1, 0), 0);
}

TEST(PickLeastLoadedTest, TiesRotateFromStart) {
  EXPECT_EQ(PickLeastLoaded({1, 1, 1}, -1, 0), 0);
  EXPECT_EQ(PickLeastLoaded({1, 1, 1}, -1, 1), 1);
  EXPECT_EQ(PickLeastLoaded({1, 1, 1}, -1, 2), 2);
  EXPECT_EQ(PickLeastLoaded({1, 0, 0}, -1, 2), 2);
}

TEST(PickLeastLoadedTest, ExcludesTheFailedWorker) {
  EXPECT_EQ(PickLeastLoaded({0, 5}, 0, 0), 1);
  EXPECT_EQ(PickLeastLoaded({0}, 0, 0), -1);
  EXPECT_EQ(PickLeastLoaded({}, -1, 0), -1);
}

TEST(RetryTest, OnlyWorkerFailuresAreRetried) {
  EXPECT_TRUE(IsRetryablePrefillError(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(IsRetryablePrefillError(absl::StatusCode::kInternal));
  EXPECT_FALSE(IsRetryablePrefillError(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(IsRetryablePrefillError(absl::StatusCode::kNotFound));
  EXPECT_FALSE(IsRetryablePrefillError(absl::StatusCode::kResourceExhausted));
  EXPECT_FALSE(IsRetryablePrefillError(absl::StatusCode::kDeadlineExceeded));
}

TEST(RouterServiceTest, CreateNeedsTokenizerAndWorkers) {
  EXPECT_EQ(
      RouterService::Create({.prefill = {"a:1"}, .decode = {"b:2"}}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.ok());
    for (int i = 0; i < 2; ++i) {
      prefill_.push_back(std::make_unique<prefill::PrefillWorker>(
          env_.model(), env_.transformer(), env_.store(), nullptr,
          prefill::PrefillOptions{}));
    }
    decode::DecodeOptions options;
    options.bos_id = env_.tokenizer().bos_id();
    options.eos_id = env_.tokenizer().eos_id();
    decode_ = std::make_unique<decode::DecodeWorker>(env_.model(), env_.transformer(),
                                                     env_.store(), nullptr, options);
    calls_ = std::make_unique<testing::LocalWorkerCalls>(
        std::vector<prefill::PrefillWorker*>{prefill_[0].get(), prefill_[1].get()},
        std::vector<decode::DecodeWorker*>{decode_.get()});
  }

  std::unique_ptr<Router> MakeRouter(std::vector<std::string> prefill) {
    auto router = Router::Create(
        {.prefill = std::move(prefill), .decode = {"d"}, .tokenizer = &env_.tokenizer()});
    EXPECT_TRUE(router.ok()) << router.status();
    return std::move(*router);
  }

  RouteRequest Request(int max_tokens) {
    RouteRequest r;
    r.text = "Once upon a time";
    r.kv = "kivi:bits=2,block=4,residual=0";
    r.generation.max_tokens = max_tokens;
    r.return_text = true;
    return r;
  }

  // Routes `request`; every chunk in order.
  absl::Status Route(Router& router, const RouteRequest& request,
                     std::vector<RouteChunk>* chunks) {
    return router.Generate(
        request, *calls_,
        [chunks](const RouteChunk& c) {
          chunks->push_back(c);
          return true;
        },
        nullptr);
  }

  static std::vector<int> Tokens(const std::vector<RouteChunk>& chunks) {
    std::vector<int> out;
    for (const RouteChunk& c : chunks)
      out.insert(out.end(), c.tokens.begin(), c.tokens.end());
    return out;
  }

  std::vector<int> Generated(int steps) {
    auto mode = model::ParseKvMode("kivi:bits=2,block=4,residual=0");
    auto out = model::Generate(env_.transformer(), env_.Encode("Once upon a time"),
                               {.steps = steps,
                                .kv = *mode,
                                .bos_id = env_.tokenizer().bos_id(),
                                .eos_id = env_.tokenizer().eos_id()});
    EXPECT_TRUE(out.ok());
    return *out;
  }

  serving::testing::WorkerTestEnv env_;
  std::vector<std::unique_ptr<prefill::PrefillWorker>> prefill_;
  std::unique_ptr<decode::DecodeWorker> decode_;
  std::unique_ptr<testing::LocalWorkerCalls> calls_;
};

TEST_F(RouterTest, DisaggregatedGivesTheTokensOfGenerate) {
  auto router = MakeRouter({"p0", "p1"});
  std::vector<RouteChunk> chunks;
  ASSERT_TRUE(Route(*router, Request(20), &chunks).ok());
  ASSERT_GE(chunks.size(), 2u);
  EXPECT_EQ(chunks.front().prompt_tokens, env_.Encode("Once upon a time"));
  EXPECT_FALSE(chunks.front().prefill_worker.empty());
  EXPECT_EQ(chunks.front().decode_worker, "d");
  EXPECT_TRUE(chunks.back().finished);
  ASSERT_TRUE(chunks.back().prefill.has_value());
  EXPECT_GT(chunks.back().prefill->bytes_pushed, 0u);
  EXPECT_EQ(Tokens(chunks), Generated(20));
  std::string text;
  for (const RouteChunk& c : chunks) text += c.text;
  EXPECT_FALSE(text.empty());
}

TEST_F(RouterTest, ADeadPrefillWorkerIsRetriedOnAnother) {
  auto router = MakeRouter({"p0", "p1"});
  calls_->down = {"p0", "p1"};
  std::vector<RouteChunk> chunks;
  const absl::Status both_down = Route(*router, Request(4), &chunks);
  EXPECT_EQ(both_down.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(calls_->prefill_calls.size(), 2u);  // tried each once

  calls_->down = {"p0"};
  calls_->prefill_calls.clear();
  chunks.clear();
  for (int i = 0; i < 2; ++i) {  // whichever the round robin picks first
    ASSERT_TRUE(Route(*router, Request(4), &chunks).ok());
    EXPECT_EQ(chunks.front().prefill_worker, "p1");
    chunks.clear();
  }
}

TEST_F(RouterTest, EvictedHandleBlocksArePrefilledAgainOnce) {
  auto router = MakeRouter({"p0"});
  int evictions = 0;
  calls_->before_decode = [&](const serving::DecodeRequest& d) {
    if (!d.handle || evictions++ > 0) return;
    // What eviction under pressure does: the blocks go, leases or not.
    for (const serving::HandleLease& l : d.handle->leases) {
      ASSERT_TRUE(env_.engine().ReleaseLease(l.lease_id, kvstore::kAnyPrincipal).ok());
    }
    for (const serving::HandleBlock& b : d.handle->blocks) {
      ASSERT_TRUE(env_.engine().Delete({b.key})[0].ok());
    }
  };
  std::vector<RouteChunk> chunks;
  ASSERT_TRUE(Route(*router, Request(8), &chunks).ok());
  EXPECT_EQ(evictions, 2);
  EXPECT_EQ(chunks.back().reprefills, 1);
  EXPECT_EQ(calls_->prefill_calls.size(), 2u);
  EXPECT_EQ(Tokens(chunks), Generated(8));
}

TEST_F(RouterTest, ColocatedWithoutPrefillWorkers) {
  auto router = MakeRouter({});
  std::vector<RouteChunk> chunks;
  ASSERT_TRUE(Route(*router, Request(12), &chunks).ok());
  EXPECT_EQ(chunks.front().prompt_tokens, env_.Encode("Once upon a time"));
  EXPECT_TRUE(chunks.front().prefill_worker.empty());
  EXPECT_EQ(Tokens(chunks), Generated(12));
}

TEST_F(RouterTest, PromptsBeyondTheContextAreRefusedBeforeAnyWorker) {
  auto router = Router::Create({.prefill = {"p0"},
                                .decode = {"d"},
                                .tokenizer = &env_.tokenizer(),
                                .max_context_tokens = 512});
  ASSERT_TRUE(router.ok());
  std::vector<RouteChunk> chunks;
  RouteRequest huge = Request(4);
  huge.text = std::string(4 << 20, 'a');  // 4 MiB: refused before encoding
  absl::Status s = Route(**router, huge, &chunks);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "cannot fit the model's context")) << s;
  RouteRequest long_ids = Request(20);
  long_ids.text.reset();
  long_ids.tokens.assign(500, 300);
  s = Route(**router, long_ids, &chunks);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "seq_len of 512")) << s;
  EXPECT_TRUE(calls_->prefill_calls.empty());
  EXPECT_TRUE(chunks.empty());
}

TEST_F(RouterTest, BadRequestsAreInvalidArgument) {
  auto router = MakeRouter({"p0"});
  std::vector<RouteChunk> chunks;
  RouteRequest no_tokens = Request(4);
  no_tokens.text.reset();
  EXPECT_EQ(Route(*router, no_tokens, &chunks).code(),
            absl::StatusCode::kInvalidArgument);
  RouteRequest zero = Request(0);
  EXPECT_EQ(Route(*router, zero, &chunks).code(), absl::StatusCode::kInvalidArgument);
  RouteRequest bad_kv = Request(4);
  bad_kv.kv = "kivi3";
  EXPECT_EQ(Route(*router, bad_kv, &chunks).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(chunks.empty());
}

TEST_F(RouterTest, AnUnreachableDecodeWorkerIsRetriedOnAnotherAndAvoided) {
  // "d9" has no worker behind it: it answers UNAVAILABLE at once, as a dead
  // pod does (and so looks idle by its load).
  auto router = Router::Create(
      {.prefill = {"p0"}, .decode = {"d9", "d0"}, .tokenizer = &env_.tokenizer()});
  ASSERT_TRUE(router.ok()) << router.status();
  const std::vector<int> expected = Generated(3);
  for (int i = 0; i < 4; ++i) {  // well within the second d9 counts as down
    std::vector<RouteChunk> chunks;
    const absl::Status s = Route(**router, Request(3), &chunks);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(Tokens(chunks), expected);
  }
  // Tried once, then avoided while it counts as down.
  EXPECT_EQ(std::count(calls_->decode_calls.begin(), calls_->decode_calls.end(), "d9"),
            1);
  EXPECT_EQ(std::count(calls_->decode_calls.begin(), calls_->decode_calls.end(), "d0"),
            4);
}

// ---- dns targets: every endpoint a name resolves to is a worker ----

TEST_F(RouterTest, ADnsTargetIsEveryEndpointItResolvesTo) {
  testing::StaticResolver dns;
  dns.Set("dns:///prefill:1", {{"p0", "p1"}});
  dns.Set("dns:///decode:2", {{"d0"}});
  auto router = Router::Create({.prefill = {"dns:///prefill:1"},
                                .decode = {"dns:///decode:2"},
                                .tokenizer = &env_.tokenizer(),
                                .resolver = &dns,
                                .resolve_interval = absl::ZeroDuration()});
  ASSERT_TRUE(router.ok()) << router.status();
  EXPECT_EQ((*router)->prefill_endpoints(), (std::vector<std::string>{"p0", "p1"}));
  std::vector<RouteChunk> chunks;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(Route(**router, Request(2), &chunks).ok());
  }
  // Idle workers tie: the picks rotate over both endpoints.
  EXPECT_EQ(std::count(calls_->prefill_calls.begin(), calls_->prefill_calls.end(), "p0"),
            2);
  EXPECT_EQ(calls_->decode_calls, std::vector<std::string>(4, "d0"));

  // A dead pod behind the name: the prefill is retried on the other one.
  calls_->down = {"p1"};
  for (int i = 0; i < 2; ++i) {
    chunks.clear();
    ASSERT_TRUE(Route(**router, Request(2), &chunks).ok());
    EXPECT_EQ(chunks.front().prefill_worker, "p0");
  }
}

TEST_F(RouterTest, RefreshFollowsTheNameAndKeepsEndpointsOnErrors) {
  testing::StaticResolver dns;
  // Not resolvable at start (no pod ready yet): not an error, no worker.
  std::vector<std::vector<std::string>> changes;
  auto router =
      Router::Create({.prefill = {"dns:///prefill:1", "p1"},
                      .decode = {"dns:///decode:2"},
                      .tokenizer = &env_.tokenizer(),
                      .resolver = &dns,
                      .resolve_interval = absl::ZeroDuration(),
                      .on_endpoints_changed = [&](const std::vector<std::string>& all) {
                        changes.push_back(all);
                      }});
  ASSERT_TRUE(router.ok()) << router.status();
  EXPECT_EQ((*router)->prefill_endpoints(), std::vector<std::string>{"p1"});
  EXPECT_TRUE((*router)->decode_endpoints().empty());
  std::vector<RouteChunk> chunks;
  const absl::Status none = Route(**router, Request(2), &chunks);
  EXPECT_EQ(none.code(), absl::StatusCode::kUnavailable) << none;

  dns.Set("dns:///prefill:1", {{"p0", "p1"}});  // p1 also named directly: once
  dns.Set("dns:///decode:2", {{"d0"}});
  EXPECT_TRUE((*router)->Refresh());
  EXPECT_EQ((*router)->prefill_endpoints(), (std::vector<std::string>{"p0", "p1"}));
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes.back(), (std::vector<std::string>{"p0", "p1", "d0"}));
  chunks.clear();
  ASSERT_TRUE(Route(**router, Request(2), &chunks).ok());

  // A failed resolution keeps what the name had; nothing changes.
  dns.Set("dns:///prefill:1", absl::UnavailableError("SERVFAIL"));
  EXPECT_FALSE((*router)->Refresh());
  EXPECT_EQ((*router)->prefill_endpoints(), (std::vector<std::string>{"p0", "p1"}));
  // A pod gone from the name leaves the pool.
  dns.Set("dns:///prefill:1", {std::vector<std::string>{}});
  EXPECT_TRUE((*router)->Refresh());
  EXPECT_EQ((*router)->prefill_endpoints(), std::vector<std::string>{"p1"});
}

TEST_F(RouterTest, DnsTargetsAreResolvedAgainPeriodically) {
  testing::StaticResolver dns;
  dns.Set("dns:///prefill:1", {{"p0"}});
  auto router = Router::Create({.prefill = {"dns:///prefill:1"},
                                .decode = {"d"},
                                .tokenizer = &env_.tokenizer(),
                                .resolver = &dns,
                                .resolve_interval = absl::Milliseconds(20)});
  ASSERT_TRUE(router.ok()) << router.status();
  dns.Set("dns:///prefill:1", {{"p0", "p1"}});
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while ((*router)->prefill_endpoints().size() < 2 && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ((*router)->prefill_endpoints(), (std::vector<std::string>{"p0", "p1"}));
  EXPECT_GE(dns.calls(), 2);
}

TEST_F(RouterTest, AMalformedDnsTargetIsInvalidArgument) {
  auto router = Router::Create(
      {.prefill = {"dns:///no-port"}, .decode = {"d"}, .tokenizer = &env_.tokenizer()});
  EXPECT_EQ(router.status().code(), absl::StatusCode::kInvalidArgument)
      << router.status();
}

}  // namespace
}  // namespace kvq::router
