// Chaos (issue 14): a whole cluster of real processes — 2 store shards, 2
// prefill and 2 decode workers and the router — under steady load from
// concurrent clients, while a seeded schedule SIGKILLs any one of them and
// starts it again on its port. Invariants:
//  - every request ends with all its tokens or a clean status (UNAVAILABLE,
//    DEADLINE_EXCEEDED, ABORTED, CANCELLED, NOT_FOUND, RESOURCE_EXHAUSTED),
//    never UNKNOWN, INTERNAL, DATA_LOSS (a block read back with a wrong
//    checksum) or anything else, and never later than its deadline;
//  - once the load stops, no lease is held on any store (after the lease
//    TTL, short here) and no decode worker holds KV memory;
//  - resident memory of the processes that lived through the chaos stays
//    bounded, and no process grows under steady load after it.
// It prints the counts (requests, kills, outcomes by code); docs/chaos.md
// records a run.
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/common/metrics.h"
#include "tests/integration/serving_test_util.h"

namespace kvq::testing {
namespace {

using launcher::Role;

constexpr uint32_t kSeed = 14;
constexpr int kClients = 4;
constexpr absl::Duration kDeadline = absl::Seconds(5);
// A request may end this much after its deadline (the client's own
// scheduling on a loaded machine) before it counts as a hang.
constexpr absl::Duration kHangSlack = absl::Seconds(3);
constexpr absl::Duration kWarmup = absl::Seconds(10);
constexpr absl::Duration kChaos = absl::Seconds(60);
constexpr absl::Duration kSteady = absl::Seconds(10);

struct Target {
  Role role;
  int index;
  const char* name;
};
const Target kTargets[] = {
    {Role::kStore, 0, "store-0"},     {Role::kStore, 1, "store-1"},
    {Role::kPrefill, 0, "prefill-0"}, {Role::kPrefill, 1, "prefill-1"},
    {Role::kDecode, 0, "decode-0"},   {Role::kDecode, 1, "decode-1"},
    {Role::kRouter, 0, "router"}};

ChildProcess* Child(launcher::Cluster& c, const Target& t) {
  switch (t.role) {
    case Role::kStore:
      return c.store(t.index);
    case Role::kPrefill:
      return c.prefill(t.index);
    case Role::kDecode:
      return c.decode(t.index);
    case Role::kRouter:
      return c.router();
  }
  return nullptr;
}

// What the clients saw.
struct Outcomes {
  std::mutex mu;
  std::map<std::string, int> by_code;  // guarded by mu
  // Failures by the shape of their message (digits as #, cut short), to
  // see where they came from.
  std::map<std::string, int> kinds;  // guarded by mu
  std::vector<std::string> bad;      // guarded by mu: invariant violations
  int requests = 0;                  // guarded by mu
  int hangs = 0;                     // guarded by mu
};

bool CleanFailure(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return true;
    default:
      return false;
  }
}

std::string CodeName(grpc::StatusCode code) {
  return services::StatusCodeName(static_cast<absl::StatusCode>(code));
}

// One client: requests back to back until `stop`, prompts drawn from a
// small seeded set (so prefixes are reused, and lost, across kills).
void Client(int id, const std::string& router, const std::atomic<bool>& stop,
            Outcomes& out) {
  std::mt19937 rng(kSeed * 100 + id);
  while (!stop) {
    const int salt = static_cast<int>(rng() % 6);
    const int length = 20 + static_cast<int>(rng() % 90);
    const int max_tokens = 4 + static_cast<int>(rng() % 28);
    v1::GenerateRequest request = GreedyRequest(Prompt(length, salt), "", max_tokens);
    request.mutable_sampling()->set_ignore_eos(true);
    const StreamResult r = RouterGenerate(router, request, kDeadline);
    const grpc::StatusCode code = r.status.error_code();
    std::string bad;
    if (code == grpc::StatusCode::OK) {
      if (static_cast<int>(r.tokens.size()) != max_tokens) {
        bad = absl::StrCat("OK with ", r.tokens.size(), " of ", max_tokens, " tokens");
      }
      for (int t : r.tokens) {
        if (t < 0 || t >= 512) bad = absl::StrCat("token ", t, " outside the vocabulary");
      }
    } else if (!CleanFailure(code)) {
      bad = absl::StrCat(CodeName(code), ": ", r.status.error_message());
    }
    const bool hang = r.elapsed > kDeadline + kHangSlack;
    std::lock_guard<std::mutex> lock(out.mu);
    ++out.requests;
    ++out.by_code[CodeName(code)];
    if (code != grpc::StatusCode::OK) {
      std::string kind = absl::StrCat(CodeName(code), ": ", r.status.error_message());
      for (char& ch : kind) {
        if (ch >= '0' && ch <= '9') ch = '#';
      }
      if (kind.size() > 110) kind.resize(110);
      ++out.kinds[kind];
    }
    if (hang) {
      ++out.hangs;
      out.bad.push_back(absl::StrCat("a request took ", absl::FormatDuration(r.elapsed),
                                     " (deadline ", absl::FormatDuration(kDeadline),
                                     "): ", CodeName(code)));
    }
    if (!bad.empty()) out.bad.push_back(bad);
  }
}

// Runs kClients clients for `d`; what they saw.
void Load(const std::string& router, absl::Duration d, Outcomes& out,
          const std::function<void()>& meanwhile = nullptr) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] { Client(i, router, stop, out); });
  }
  if (meanwhile) meanwhile();
  absl::SleepFor(d);
  stop = true;
  for (std::thread& t : clients) t.join();
}

double Rss(ChildProcess* child) {
  absl::StatusOr<double> v = ScrapeMetric(child, "process_resident_memory_bytes");
  EXPECT_TRUE(v.ok()) << child->name() << ": " << v.status();
  return v.ok() ? *v : 0;
}

void Print(const char* phase, const Outcomes& o, int kills,
           const std::map<std::string, int>& kills_by) {
  std::printf("chaos: %s: %d requests", phase, o.requests);
  for (const auto& [code, n] : o.by_code) std::printf(", %s %d", code.c_str(), n);
  std::printf("; %d hangs, %zu invariant violations", o.hangs, o.bad.size());
  if (kills > 0) {
    std::printf("; %d kills (", kills);
    bool first = true;
    for (const auto& [name, n] : kills_by) {
      std::printf("%s%s %d", first ? "" : ", ", name.c_str(), n);
      first = false;
    }
    std::printf(")");
  }
  std::printf("\n");
  for (const auto& [kind, n] : o.kinds)
    std::printf("chaos:   %5d x %s\n", n, kind.c_str());
  std::fflush(stdout);
}

TEST(ChaosTest, RandomKillsUnderLoad) {
  const absl::Time test_start = absl::Now();
  launcher::ClusterOptions o = TestClusterOptions();
  o.store_shards = 2;
  o.prefill_workers = 2;
  o.decode_workers = 2;
  // Short leases, so the settled cluster can be checked for leaks soon; a
  // dead store is noticed within the request's deadline anyway.
  o.store_flags = {"--metrics_port=0", "--lease_ttl=3s"};
  for (auto* flags : {&o.prefill_flags, &o.decode_flags}) {
    flags->push_back("--store_timeout=3s");
    flags->push_back("--shutdown_grace=1s");
  }
  o.prefill_flags.push_back("--kv_lease_ttl=2s");
  // Slower steps, so that kills land in the middle of requests (prefill
  // 5 layers x 4 ms, decode 3 ms per batch step: a request takes 30-130 ms).
  o.prefill_flags.push_back("--debug_layer_delay=4ms");
  o.decode_flags.push_back("--debug_step_delay=3ms");
  o.router_flags.push_back("--request_timeout=10s");
  auto cluster = launcher::Cluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  launcher::Cluster& c = **cluster;
  const std::string router = c.router_address();

  // ---- warm-up: every hop connected, caches and pools at their size ----
  Outcomes warm;
  Load(router, kWarmup, warm);
  Print("warm-up", warm, 0, {});
  EXPECT_TRUE(warm.bad.empty()) << warm.bad.front();
  EXPECT_GT(warm.requests, 0);
  EXPECT_EQ(warm.by_code["OK"], warm.requests);              // no faults yet
  std::map<std::string, std::pair<pid_t, double>> baseline;  // name -> pid, RSS
  for (const Target& t : kTargets) {
    ChildProcess* p = Child(c, t);
    baseline[t.name] = {p->pid(), Rss(p)};
  }

  // ---- chaos: a seeded schedule of SIGKILL + restart on the same port ----
  std::mt19937 rng(kSeed);
  Outcomes chaos;
  int kills = 0;
  std::map<std::string, int> kills_by;
  std::vector<std::string> restart_errors;
  Load(router, absl::ZeroDuration(), chaos, [&] {
    const absl::Time end = absl::Now() + kChaos;
    while (absl::Now() < end) {
      absl::SleepFor(absl::Milliseconds(1500 + rng() % 2500));
      const Target& t = kTargets[rng() % (sizeof(kTargets) / sizeof(kTargets[0]))];
      Child(c, t)->Kill();
      ++kills;
      ++kills_by[t.name];
      absl::SleepFor(absl::Milliseconds(200 + rng() % 1000));  // down for a while
      if (absl::Status s = c.Restart(t.role, t.index); !s.ok()) {
        restart_errors.push_back(std::string(s.message()));
      }
    }
  });
  Print("chaos", chaos, kills, kills_by);
  EXPECT_TRUE(restart_errors.empty()) << restart_errors.front();
  for (const std::string& b : chaos.bad) ADD_FAILURE() << b;
  EXPECT_GT(chaos.by_code["OK"], 0);
  EXPECT_EQ(chaos.by_code["DATA_LOSS"], 0);

  // ---- settled: nothing held once the leases' TTL has passed ----
  auto settled = [&] {
    for (const std::string& s : c.store_addresses()) {
      if (StoreStats(s).active_leases() != 0) return false;
    }
    for (const std::string& d : c.decode_addresses()) {
      const v1::WorkerStats w = DecodeStats(d);
      if (w.kv_bytes_used() != 0 || w.running() != 0 || w.waiting() != 0) return false;
    }
    return true;
  };
  const absl::Time settle_start = absl::Now();
  while (!settled() && absl::Now() - settle_start < absl::Seconds(20)) {
    absl::SleepFor(absl::Milliseconds(250));
  }
  for (const std::string& s : c.store_addresses()) {
    const v1::StoreStatsResponse st = StoreStats(s);
    EXPECT_EQ(st.active_leases(), 0u) << s;
    EXPECT_EQ(st.leased_blocks(), 0u) << s;
  }
  for (const std::string& d : c.decode_addresses()) {
    const v1::WorkerStats w = DecodeStats(d);
    EXPECT_EQ(w.kv_bytes_used(), 0u) << d;
    EXPECT_EQ(w.running(), 0u) << d;
  }
  std::printf("chaos: settled in %s: no leases on the stores, no decode KV memory held\n",
              absl::FormatDuration(
                  absl::Trunc(absl::Now() - settle_start, absl::Milliseconds(100)))
                  .c_str());

  // ---- memory: survivors bounded; everyone flat under steady load ----
  std::map<std::string, double> before_steady;
  for (const Target& t : kTargets) {
    ChildProcess* p = Child(c, t);
    const double rss = Rss(p);
    before_steady[t.name] = rss;
    const auto& [pid, base] = baseline[t.name];
    if (p->pid() == pid) {  // lived through the whole chaos
      EXPECT_LT(rss, base + 64e6) << t.name << " grew from " << base << " to " << rss;
      std::printf("chaos: %s lived through the chaos: RSS %.1f MB -> %.1f MB\n", t.name,
                  base / 1e6, rss / 1e6);
    }
  }
  Outcomes steady;
  Load(router, kSteady, steady);
  Print("steady after", steady, 0, {});
  for (const std::string& b : steady.bad) ADD_FAILURE() << b;
  // Every process is up again: the load goes through.
  EXPECT_EQ(steady.by_code["OK"], steady.requests);
  for (const Target& t : kTargets) {
    const double rss = Rss(Child(c, t));
    EXPECT_LT(rss, before_steady[t.name] + 32e6)
        << t.name << " grew from " << before_steady[t.name] << " to " << rss;
    std::printf("chaos: %s RSS under steady load: %.1f MB -> %.1f MB\n", t.name,
                before_steady[t.name] / 1e6, rss / 1e6);
  }
  std::printf(
      "chaos: seed %u, %d clients, deadline %s, wall %s\n", kSeed, kClients,
      absl::FormatDuration(kDeadline).c_str(),
      absl::FormatDuration(absl::Trunc(absl::Now() - test_start, absl::Seconds(1)))
          .c_str());
}

}  // namespace
}  // namespace kvq::testing
