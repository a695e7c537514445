// Robustness of the disaggregated path with real processes (issue 6): store
// leases between a prefill worker's Lookup and its fetch of the prefix, and
// between its reply and the decode worker's fetch of the handle's blocks;
// the fallbacks when blocks are evicted anyway (recompute from the first
// missing prefix block; the router re-runs the prefill once); and a store that
// dies and comes back on the same port while the workers keep running.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/child_process.h"
#include "common/paths.h"
#include "gtest/gtest.h"
#include "services/launcher/health_check.h"
#include "tests/integration/serving_test_util.h"

namespace kvq::testing {
namespace {

v1::PrefillRequest PrefillRequestFor(const std::vector<int>& prompt,
                                     const std::string& kv, int max_tokens) {
  v1::PrefillRequest r;
  r.mutable_tokens()->Add(prompt.begin(), prompt.end());
  r.mutable_cache()->set_kv(kv);
  r.mutable_sampling()->set_max_tokens(max_tokens);
  return r;
}

// DeleteBlocks of one key; the per-key code.
int DeleteBlock(const std::string& store, const std::string& key) {
  auto stub = v1::KvStore::NewStub(
      grpc::CreateChannel(store, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::DeleteBlocksRequest req;
  req.add_keys(key);
  v1::DeleteBlocksResponse resp;
  const grpc::Status s = stub->DeleteBlocks(&ctx, req, &resp);
  if (!s.ok() || resp.codes_size() != 1) return -1;
  return resp.codes(0);
}

double Metric(ChildProcess* child, const std::string& name) {
  absl::StatusOr<double> v = ScrapeMetric(child, name);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : -1;
}

// Blocks until `pred` holds or `timeout` passes; whether it held.
template <typename Pred>
bool WaitFor(Pred pred, absl::Duration timeout = absl::Seconds(5)) {
  for (const absl::Time until = absl::Now() + timeout; absl::Now() < until;) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return pred();
}

// A prompt sharing its first three fp16 blocks with Prompt(100, 1), then
// its own 40 tokens.
std::vector<int> SharedPrefixPrompt() {
  std::vector<int> p = Prompt(100, 1);
  p.resize(96);
  const std::vector<int> tail = Prompt(41, 7);
  p.insert(p.end(), tail.begin() + 1, tail.end());
  return p;
}

// Prefills SharedPrefixPrompt() while, during the prefill's pause between
// Lookup and fetch, block 1 of the shared prefix is deleted from the store.
// Returns the Delete's code and the prefill's response.
struct DeleteDuringFetch {
  int delete_code = -1;
  grpc::Status status;
  v1::PrefillResponse response;
};
// `leased`: the prefill worker takes leases (the Lookup is seen by its
// lease; otherwise a pause of 600 ms stands for it).
DeleteDuringFetch PrefillWhileDeletingPrefixBlock(launcher::Cluster& c, bool leased) {
  const std::string prefill = c.prefill_addresses()[0];
  v1::PrefillResponse warm;
  EXPECT_TRUE(Prefill(prefill, PrefillRequestFor(Prompt(100, 1), "fp16", 1), &warm).ok());
  EXPECT_EQ(warm.handle().blocks_size(), 4);  // 3 full + 1 partial
  DeleteDuringFetch out;
  std::thread client([&] {
    out.status = Prefill(prefill, PrefillRequestFor(SharedPrefixPrompt(), "fp16", 1),
                         &out.response);
  });
  EXPECT_TRUE(WaitFor([&] { return PrefillStats(prefill).running() > 0; }));
  // Past the Lookup, inside the pause.
  if (leased) {  // the three shared blocks
    EXPECT_TRUE(
        WaitFor([&] { return StoreStats(c.store_address()).leased_blocks() == 3; }));
  } else {
    absl::SleepFor(absl::Milliseconds(600));
  }
  out.delete_code = DeleteBlock(c.store_address(), warm.handle().blocks(1).key());
  client.join();
  return out;
}

// Resident kB of a process (VmRSS in /proc/PID/status); -1 if unreadable.
long ResidentKb(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(status, line);) {
    long kb = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %ld kB", &kb) == 1) return kb;
  }
  return -1;
}

// The router only tokenizes: it must not keep the model's weights (a
// synthetic model of 178 MB here; kvq serve prefill/decode keep theirs).
TEST(ServingRobustnessTest, RouterHoldsNoModelWeights) {
#if defined(__SANITIZE_ADDRESS__)
  // ASan's shadow memory and quarantine are in the router's RSS (280 MB seen).
  GTEST_SKIP() << "RSS is not the heap's size under AddressSanitizer";
#endif
  const std::string kvq = launcher::FindKvqBinary();
  ASSERT_FALSE(kvq.empty());
  // 4 layers x 11.3M + 0.5M embedding parameters, fp32.
  const std::string model = "synthetic:dim=1024,hidden=2816,layers=4,vocab=512";
  const long weights_kb = (4L * 11272192 + 524288) * 4 / 1024;
  auto router = ChildProcess::Start(
      "router",
      {kvq, "serve", "router", "--model=" + model,
       "--tokenizer=" + DefaultModelDir() + "/tok512.bin", "--worker_port=0",
       "--prefill=127.0.0.1:1", "--decode=127.0.0.1:2"},
      {.listen_timeout = absl::Seconds(60)});
  ASSERT_TRUE(router.ok()) << router.status();
  const long rss_kb = ResidentKb((*router)->pid());
  ASSERT_GT(rss_kb, 0);
  EXPECT_LT(rss_kb, weights_kb / 3) << "router resident " << rss_kb << " kB";
}

// Every role binds with SO_REUSEPORT off (services/common/grpc_server.h): a
// second router or decode worker on a taken port fails to start instead of
// sharing the port and stealing connections; the first keeps serving.
TEST(ServingRobustnessTest, ASecondWorkerOnATakenPortFailsToStart) {
  const std::string kvq = launcher::FindKvqBinary();
  ASSERT_FALSE(kvq.empty());
  for (const std::string role : {"router", "decode"}) {
    std::vector<std::string> argv = {kvq, "serve", role, "--worker_port=0"};
    if (role == "router") argv.push_back("--decode=127.0.0.1:2");
    auto first = ChildProcess::Start(role, argv, {});
    ASSERT_TRUE(first.ok()) << first.status();
    argv[3] = absl::StrCat("--worker_port=", (*first)->port());
    auto second = ChildProcess::Start(role, argv, {});
    EXPECT_FALSE(second.ok()) << role << " started twice on port " << (*first)->port();
    EXPECT_TRUE(launcher::CheckHealth((*first)->address(), absl::Seconds(5)).ok())
        << role;
  }
}

TEST(ServingRobustnessTest, PrefixLeaseKeepsBlocksFromLookupToFetch) {
  launcher::ClusterOptions o = TestClusterOptions();
  o.prefill_flags.push_back("--debug_fetch_delay=1s");
  auto cluster = launcher::Cluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  launcher::Cluster& c = **cluster;

  DeleteDuringFetch r = PrefillWhileDeletingPrefixBlock(c, /*leased=*/true);
  // The Lookup's lease pins the prefix: the store refuses the Delete.
  EXPECT_EQ(r.delete_code, static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.response.stats().blocks_reused(), 3u);
  EXPECT_EQ(r.response.stats().prefix_blocks_lost(), 0u);
  // max_tokens = 1: no decode follows, so the handle carries no lease, and
  // the prefix lease was released at the end of the request (not by its TTL).
  EXPECT_EQ(r.response.handle().leases_size(), 0);
  // (Releases run in the background, just after the reply.)
  EXPECT_TRUE(WaitFor([&] { return StoreStats(c.store_address()).active_leases() == 0; },
                      absl::Seconds(2)));
  EXPECT_EQ(StoreStats(c.store_address()).expired_leases(), 0u);

  // A request that fails after its Lookup (its client's deadline passes
  // during the pause) releases the prefix lease too, long before its TTL.
  auto stub = v1::Prefill::NewStub(
      grpc::CreateChannel(c.prefill_addresses()[0], grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(400)));
  std::vector<int> other = Prompt(100, 1);
  other.resize(97);
  other.push_back(300);
  v1::PrefillResponse unused;
  const grpc::Status failed =
      stub->Prefill(&ctx, PrefillRequestFor(other, "fp16", 1), &unused);
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(StoreStats(c.store_address()).active_leases(), 1u);  // still in the pause
  EXPECT_TRUE(WaitFor([&] { return StoreStats(c.store_address()).active_leases() == 0; },
                      absl::Seconds(3)));
  EXPECT_EQ(StoreStats(c.store_address()).expired_leases(), 0u);
}

TEST(ServingRobustnessTest, LeasesOfAKilledPrefillWorkerExpire) {
  launcher::ClusterOptions o = TestClusterOptions();
  o.prefill_flags.push_back("--debug_fetch_delay=2500ms");
  o.prefill_flags.push_back("--kv_lease_ttl=1s");
  auto cluster = launcher::Cluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  launcher::Cluster& c = **cluster;
  const std::string prefill = c.prefill_addresses()[0];
  v1::PrefillResponse warm;
  ASSERT_TRUE(Prefill(prefill, PrefillRequestFor(Prompt(100, 1), "fp16", 1), &warm).ok());
  EXPECT_TRUE(
      WaitFor([&] { return StoreStats(c.store_address()).active_leases() == 0; }));

  std::thread client([&] {
    v1::PrefillResponse unused;
    (void)Prefill(prefill, PrefillRequestFor(Prompt(100, 1), "fp16", 1), &unused);
  });
  // The prefill worker holds (and renews) the prefix lease during its pause
  // between Lookup and fetch, and is killed there.
  EXPECT_TRUE(
      WaitFor([&] { return StoreStats(c.store_address()).leased_blocks() == 4; }));
  absl::SleepFor(absl::Milliseconds(1200));  // past one TTL: renewed
  EXPECT_EQ(StoreStats(c.store_address()).leased_blocks(), 4u);
  c.prefill(0)->Kill();
  client.join();
  // Nobody renews it any more: it expires within its TTL.
  EXPECT_TRUE(WaitFor([&] { return StoreStats(c.store_address()).active_leases() == 0; },
                      absl::Seconds(3)));
  EXPECT_EQ(StoreStats(c.store_address()).expired_leases(), 1u);
  EXPECT_EQ(StoreStats(c.store_address()).leased_blocks(), 0u);
}

TEST(ServingRobustnessTest, PrefixBlockGoneBeforeFetchIsRecomputed) {
  launcher::ClusterOptions o = TestClusterOptions();
  o.prefill_flags.push_back("--debug_fetch_delay=1500ms");
  o.prefill_flags.push_back("--kv_lease_ttl=0");  // nothing pins the prefix
  auto cluster = launcher::Cluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  launcher::Cluster& c = **cluster;

  DeleteDuringFetch r = PrefillWhileDeletingPrefixBlock(c, /*leased=*/false);
  EXPECT_EQ(r.delete_code, 0);  // OK: the block is gone
  // Not a failure: block 0 is reused, blocks 1.. are recomputed and put.
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.response.stats().blocks_reused(), 1u);
  EXPECT_EQ(r.response.stats().prefix_blocks_lost(), 2u);
  EXPECT_EQ(r.response.stats().tokens_computed(), SharedPrefixPrompt().size() - 32);
  EXPECT_EQ(Metric(c.prefill(0), "kvq_prefix_blocks_lost_total"), 2);
  // The recomputed prefix equals the stored one: a decode over the handle
  // gives the same tokens as the colocated worker computing it all.
  v1::PrefillResponse again;
  ASSERT_TRUE(Prefill(c.prefill_addresses()[0],
                      PrefillRequestFor(SharedPrefixPrompt(), "fp16", 1), &again)
                  .ok());
  EXPECT_EQ(again.stats().blocks_reused(), 4u);  // every block is back
  EXPECT_EQ(again.first_token(), r.response.first_token());
  const StreamResult colocated =
      ColocatedGenerate(c.decode_addresses()[0], SharedPrefixPrompt(), "fp16", 1);
  ASSERT_TRUE(colocated.status.ok()) << colocated.status.error_message();
  ASSERT_EQ(colocated.tokens.size(), 1u);
  EXPECT_EQ(r.response.first_token(), colocated.tokens[0]);
}

// The decode worker's KV budget holds request A (40 + 200 tokens, kivi2)
// but not B beside it, so B's handle waits at the decode worker while the
// test pushes other prompts through a small store (evicting what is not
// leased); then A is cancelled and B fetches its blocks.
struct EvictionScenario {
  StreamResult b;
  v1::StoreStatsResponse store_after;
};
EvictionScenario RunEvictionWhileDecodeWaits(launcher::Cluster& c,
                                             absl::Duration wait_before_filling) {
  EvictionScenario out;
  const std::string decode = c.decode_addresses()[0];
  OpenRouterStream a(c.router_address(), GreedyRequest(Prompt(40, 3), "kivi2", 200), 3);
  EXPECT_GE(a.tokens(), 3);

  std::thread waiter([&] {
    out.b = RouterGenerate(c.router_address(), GreedyRequest(Prompt(40, 4), "kivi2", 20));
  });
  EXPECT_TRUE(WaitFor([&] { return DecodeStats(decode).waiting() == 1; }));
  absl::SleepFor(wait_before_filling);
  // Ten prompts of 100 tokens (19840 bytes each as 2-bit with R=0) through a
  // store of 80000 bytes: everything unleased is evicted.
  for (int i = 0; i < 10; ++i) {
    v1::PrefillResponse filler;
    const grpc::Status s = Prefill(
        c.prefill_addresses()[0],
        PrefillRequestFor(Prompt(100, 50 + i), "kivi:bits=2,residual=0", 1), &filler);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(DecodeStats(decode).waiting(), 1u) << "B stopped waiting too early";
  a.Cancel();
  a.Drain();
  waiter.join();
  out.store_after = StoreStats(c.store_address());
  return out;
}

launcher::ClusterOptions SmallStoreOptions() {
  launcher::ClusterOptions o = TestClusterOptions();
  o.store_flags = {"--capacity_bytes=80000"};
  // A (200 tokens) outlasts the fillers even on a loaded machine: 8 s.
  o.decode_flags.push_back("--debug_step_delay=40ms");
  o.decode_kv_budget_bytes = 150000;
  return o;
}

TEST(ServingRobustnessTest, HandleLeaseKeepsBlocksUntilDecodeFetches) {
  launcher::ClusterOptions o = SmallStoreOptions();
  // A short lease: B waits longer than it at the decode worker, which must
  // renew it.
  o.prefill_flags.push_back("--kv_lease_ttl=1s");
  auto cluster = launcher::Cluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  launcher::Cluster& c = **cluster;

  EvictionScenario r = RunEvictionWhileDecodeWaits(c, absl::Milliseconds(1500));
  ASSERT_TRUE(r.b.status.ok()) << r.b.status.error_message();
  EXPECT_EQ(r.b.tokens.size(), 20u);
  EXPECT_GT(r.store_after.evictions(), 0u) << "no eviction pressure";
  EXPECT_EQ(r.b.last.reprefills(), 0u);
  EXPECT_EQ(Metric(c.router(), "kvq_reprefills_total"), 0);
  EXPECT_EQ(Metric(c.decode(0), "kvq_kv_handle_misses_total"), 0);
  // The decode worker released B's lease after its fetch (A's lease too,
  // before it was cancelled); nothing expired.
  EXPECT_TRUE(WaitFor([&] { return StoreStats(c.store_address()).active_leases() == 0; },
                      absl::Seconds(2)));
  EXPECT_EQ(StoreStats(c.store_address()).expired_leases(), 0u);

  // A handle nobody fetches pins its blocks only for the lease's TTL.
  v1::PrefillResponse orphan;
  ASSERT_TRUE(Prefill(c.prefill_addresses()[0],
                      PrefillRequestFor(Prompt(40, 9), "kivi2", 16), &orphan)
                  .ok());
  ASSERT_EQ(orphan.handle().leases_size(), 1);
  EXPECT_EQ(orphan.handle().leases(0).store(), c.store_address());
  EXPECT_EQ(orphan.handle().lease_ttl_ms(), 1000u);
  EXPECT_EQ(StoreStats(c.store_address()).leased_blocks(), 2u);
  EXPECT_TRUE(WaitFor([&] { return StoreStats(c.store_address()).leased_blocks() == 0; },
                      absl::Seconds(3)));
  EXPECT_EQ(StoreStats(c.store_address()).expired_leases(), 1u);
}

TEST(ServingRobustnessTest, RouterRePrefillsWhenDecodeFindsBlocksEvicted) {
  launcher::ClusterOptions o = SmallStoreOptions();
  o.prefill_flags.push_back("--kv_lease_ttl=0");  // nothing pins B's blocks
  auto cluster = launcher::Cluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  launcher::Cluster& c = **cluster;

  EvictionScenario r = RunEvictionWhileDecodeWaits(c, absl::ZeroDuration());
  ASSERT_TRUE(r.b.status.ok()) << r.b.status.error_message();
  EXPECT_EQ(r.b.last.reprefills(), 1u);
  EXPECT_EQ(Metric(c.router(), "kvq_reprefills_total"), 1);
  EXPECT_EQ(Metric(c.decode(0), "kvq_kv_handle_misses_total"), 1);
  // The same tokens as a request that never lost its blocks.
  const StreamResult clean =
      RouterGenerate(c.router_address(), GreedyRequest(Prompt(40, 4), "kivi2", 20));
  ASSERT_TRUE(clean.status.ok()) << clean.status.error_message();
  EXPECT_EQ(clean.last.reprefills(), 0u);
  EXPECT_EQ(r.b.tokens, clean.tokens);
}

TEST(ServingRobustnessTest, StoreDownIsUnavailablePromptlyAndRecoversOnRestart) {
  launcher::ClusterOptions o = TestClusterOptions();
  o.prefill_flags.push_back("--store_timeout=1s");
  auto cluster = launcher::Cluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  launcher::Cluster& c = **cluster;
  const v1::GenerateRequest request = GreedyRequest(Prompt(60, 5), "kivi2", 8);
  const StreamResult before = RouterGenerate(c.router_address(), request);
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();

  // A store that hangs (stopped, its connections open): the store call's
  // deadline bounds the request.
  kill(c.store()->pid(), SIGSTOP);
  const StreamResult hung = RouterGenerate(c.router_address(), request);
  kill(c.store()->pid(), SIGCONT);
  EXPECT_EQ(hung.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << hung.status.error_message();
  EXPECT_TRUE(absl::StrContains(hung.status.error_message(), "KV store"))
      << hung.status.error_message();
  EXPECT_GE(hung.elapsed, absl::Seconds(1));  // --store_timeout=1s
  EXPECT_LT(hung.elapsed, absl::Seconds(3));
  const StreamResult resumed = RouterGenerate(c.router_address(), request);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status.error_message();
  EXPECT_EQ(resumed.tokens, before.tokens);

  // A store that is gone, for prefill and for decode (a handle made before).
  v1::PrefillResponse made;
  ASSERT_TRUE(Prefill(c.prefill_addresses()[0],
                      PrefillRequestFor(Prompt(60, 6), "kivi2", 8), &made)
                  .ok());
  const int port = c.store()->port();
  c.store()->Kill();
  {
    auto decode = v1::Decode::NewStub(
        grpc::CreateChannel(c.decode_addresses()[0], grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::DecodeRequest req;
    *req.mutable_handle() = made.handle();
    req.set_first_token(made.first_token());
    req.mutable_sampling()->set_max_tokens(8);
    const absl::Time start = absl::Now();
    auto reader = decode->Generate(&ctx, req);
    v1::DecodeResponse msg;
    while (reader->Read(&msg)) {
    }
    const grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), "KV store")) << s.error_message();
    EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  }
  for (int i = 0; i < 3; ++i) {  // a few requests while it is down
    const StreamResult down = RouterGenerate(c.router_address(), request);
    EXPECT_EQ(down.status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << down.status.error_message();
    EXPECT_TRUE(absl::StrContains(down.status.error_message(), "KV store"))
        << down.status.error_message();
    EXPECT_LT(down.elapsed, absl::Seconds(5));
  }
  absl::SleepFor(absl::Seconds(2));  // long enough for gRPC's reconnect backoff

  // A new store process on the same port (empty: the blocks are recomputed).
  auto store = ChildProcess::Start(
      "store-again",
      {launcher::FindKvqBinary(), "serve", "store", absl::StrCat("--port=", port)}, {});
  ASSERT_TRUE(store.ok()) << store.status();
  const StreamResult after = RouterGenerate(c.router_address(), request);
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.tokens, before.tokens);
  EXPECT_EQ(after.last.prefill().blocks_reused(), 0u);
  (*store)->Stop();
}

// The router and the decode worker serve with gRPC's synchronous API (a
// thread per call): 64 concurrent Generate streams all decode together
// instead of queueing behind a thread pool.
TEST(ServingRobustnessTest, SixtyFourConcurrentStreamsDecodeTogether) {
  launcher::ClusterOptions o = TestClusterOptions();
  o.decode_flags.push_back("--debug_step_delay=50ms");  // 60 tokens: 3 s
  auto cluster = launcher::Cluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  launcher::Cluster& c = **cluster;
  constexpr int kStreams = 64;
  std::vector<StreamResult> results(kStreams);
  std::vector<std::thread> clients;
  for (int i = 0; i < kStreams; ++i) {
    clients.emplace_back([&, i] {
      v1::GenerateRequest request = GreedyRequest(Prompt(40, 100 + i), "kivi2", 60);
      request.mutable_sampling()->set_ignore_eos(true);
      results[i] = RouterGenerate(c.router_address(), request);
    });
  }
  uint32_t peak = 0;
  WaitFor(
      [&] {
        peak = std::max(peak, DecodeStats(c.decode_addresses()[0]).running());
        return peak == kStreams;
      },
      absl::Seconds(10));
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(peak, static_cast<uint32_t>(kStreams));
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_TRUE(results[i].status.ok()) << i << ": " << results[i].status.error_message();
    EXPECT_EQ(results[i].tokens.size(), 60u) << i;
  }
}

}  // namespace
}  // namespace kvq::testing
