// `kvq demo`: the whole disaggregated path on loopback. Starts the KV store,
// a prefill worker, a decode worker and the router as separate processes
// (Cluster), sends one prompt through the router, and prints the prompt and
// its continuation as it streams, then the time to first token, the
// inter-token latency, the KV bytes moved and the compression ratio.
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "cli/kernel_variant.h"
#include "grpcpp/create_channel.h"
#include "proto/serving.grpc.pb.h"
#include "services/common/tls.h"
#include "services/launcher/launcher.h"
#include "services/launcher/synthetic_model_files.h"

// Shared with `kvq generate` (model/generate_command.cc).

ABSL_FLAG(bool, colocated, false,
          "kvq demo: the baseline instead: prefill and decode in one decode worker, no "
          "store (the router still fronts it).");

ABSL_FLAG(bool, tls, false,
          "kvq demo: run the cluster locked down: mTLS between every process with "
          "certificates of a temporary CA made with `openssl`, and the store's worker "
          "and operator tokens (docs/security.md).");
ABSL_FLAG(int, store_shards, 1,
          "kvq demo: KV store shards to start (the workers spread blocks over all).");
ABSL_FLAG(int, prefill_workers, 1,
          "kvq demo: prefill workers to start (the router balances over all).");
ABSL_FLAG(int, decode_workers, 1, "kvq demo: decode workers to start.");

namespace kvq::launcher {
namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "kvq demo: %s\n", what.c_str());
  return 1;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

int RunDemo(const std::vector<std::string>& args) {
  if (!args.empty()) return Fail("unexpected argument " + args[0]);
  const int steps = absl::GetFlag(FLAGS_steps);
  if (steps < 1) return Fail("--steps must be >= 1");
  ClusterOptions options;
  options.model = cli::ModelPathFromFlags();
  std::string synthetic_dir;
  std::error_code ec;
  if (options.model.empty() || !std::filesystem::exists(options.model, ec)) {
    char tmpl[] = "/tmp/kvq-demo-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return Fail("cannot create a temporary directory");
    synthetic_dir = tmpl;
    absl::StatusOr<std::string> checkpoint = WriteSyntheticModelFiles(synthetic_dir);
    if (!checkpoint.ok()) return Fail(checkpoint.status().ToString());
    std::fprintf(stderr,
                 "kvq demo: WARNING: no model at '%s' (pass --model PATH); using a "
                 "SYNTHETIC model with random weights instead: the text below is "
                 "gibberish, the timings and KV sizes are real.\n",
                 options.model.c_str());
    options.model = *checkpoint;
  }
  struct RemoveDir {
    std::string dir;
    ~RemoveDir() {
      std::error_code ec;
      if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    }
  } remove_synthetic{synthetic_dir};
  if (!absl::GetFlag(FLAGS_tokenizer).empty()) {
    options.router_flags.push_back("--tokenizer=" + cli::TokenizerPathFromFlags());
  }
  // Prefill and decode must hold the weights alike (the mode is part of the
  // model id that block keys and handles carry).
  if (absl::Status w = cli::WeightsModeFromFlags().status(); !w.ok()) {
    return Fail(w.ToString());
  }
  options.prefill_flags.push_back("--weights=" + absl::GetFlag(FLAGS_weights));
  options.decode_flags.push_back("--weights=" + absl::GetFlag(FLAGS_weights));
  if (const std::string v = absl::GetFlag(FLAGS_kernel_variant); !v.empty()) {
    options.prefill_flags.push_back("--kernel_variant=" + v);
    options.decode_flags.push_back("--kernel_variant=" + v);
  }
  options.echo_output = absl::GetFlag(FLAGS_verbose);
  options.tls = absl::GetFlag(FLAGS_tls);
  options.store_shards = absl::GetFlag(FLAGS_store_shards);
  options.prefill_workers = absl::GetFlag(FLAGS_prefill_workers);
  options.decode_workers = absl::GetFlag(FLAGS_decode_workers);
  if (options.store_shards < 1 || options.prefill_workers < 1 ||
      options.decode_workers < 1) {
    return Fail("--store_shards, --prefill_workers and --decode_workers must be >= 1");
  }
  const bool colocated = absl::GetFlag(FLAGS_colocated);
  if (colocated) {
    options.with_store = false;
    options.prefill_workers = 0;
  }
  std::fprintf(stderr, "kvq demo: starting %s (model %s)%s\n",
               colocated ? absl::StrFormat("%d colocated decode worker(s) and the router",
                                           options.decode_workers)
                               .c_str()
                         : absl::StrFormat("%d store shard(s), %d prefill and %d decode "
                                           "worker(s) and the router",
                                           options.store_shards, options.prefill_workers,
                                           options.decode_workers)
                               .c_str(),
               options.model.c_str(),
               options.tls ? " over mTLS, store locked down by tokens" : "");
  absl::StatusOr<std::unique_ptr<Cluster>> cluster = Cluster::Start(options);
  if (!cluster.ok()) return Fail(cluster.status().ToString());

  absl::StatusOr<services::ChannelSecurity> security =
      services::ChannelSecurity::Create((*cluster)->client_tls());
  if (!security.ok()) return Fail(security.status().ToString());
  auto stub = v1::Router::NewStub(security->CreateChannel((*cluster)->router_address()));
  {
    // Warm-up: connects every hop (router, workers, store) and starts the
    // workers' threads, so the request below is timed on a warm cluster. Its
    // one-token prompt shares no block with the measured one.
    v1::GenerateRequest warm;
    warm.mutable_tokens()->add_ids(1);
    warm.mutable_cache()->set_kv(absl::GetFlag(FLAGS_kv));
    warm.mutable_sampling()->set_max_tokens(2);
    warm.mutable_sampling()->set_ignore_eos(true);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(1)));
    auto r = stub->Generate(&ctx, warm);
    v1::GenerateResponse ignored;
    while (r->Read(&ignored)) {
    }
    if (grpc::Status s = r->Finish(); !s.ok()) {
      return Fail("warm-up request failed: " + s.error_message());
    }
  }
  v1::GenerateRequest request;
  request.set_text(absl::GetFlag(FLAGS_prompt));
  request.mutable_cache()->set_kv(absl::GetFlag(FLAGS_kv));
  request.mutable_sampling()->set_max_tokens(steps);
  request.set_return_text(true);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(10)));

  std::printf("%s", absl::GetFlag(FLAGS_prompt).c_str());
  std::fflush(stdout);
  const absl::Time sent = absl::Now();
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse msg, last;
  double ttft = -1;
  absl::Time prev = sent;
  std::vector<double> gaps;
  int tokens = 0;
  while (reader->Read(&msg)) {
    const absl::Time now = absl::Now();
    if (msg.tokens_size() > 0) {
      if (ttft < 0) {
        ttft = absl::ToDoubleSeconds(now - sent);
      } else {
        const double gap = absl::ToDoubleSeconds(now - prev) / msg.tokens_size();
        for (int i = 0; i < msg.tokens_size(); ++i) gaps.push_back(gap);
      }
      prev = now;
      tokens += msg.tokens_size();
    }
    std::fwrite(msg.text().data(), 1, msg.text().size(), stdout);
    std::fflush(stdout);
    if (msg.finished()) last = msg;
  }
  std::printf("\n");
  const grpc::Status status = reader->Finish();
  reader.reset();
  (*cluster)->Stop();
  if (!status.ok()) return Fail("generate failed: " + status.error_message());

  const v1::PrefillStats& p = last.prefill();
  const uint64_t moved =
      p.bytes_pushed() + p.bytes_fetched() + last.decode_bytes_fetched();
  std::fprintf(stderr, "---\n");
  std::fprintf(stderr, "mode:                   %s, kv %s%s\n",
               colocated ? "colocated" : "disaggregated", absl::GetFlag(FLAGS_kv).c_str(),
               options.tls ? ", mTLS" : "");
  std::fprintf(stderr, "tokens generated:       %d (%s)\n", tokens,
               last.finish_reason().c_str());
  std::fprintf(stderr, "time to first token:    %.2f ms\n", ttft * 1e3);
  if (!colocated) {
    std::fprintf(
        stderr,
        "  prefill worker:       %.2f ms (model %.2f ms, %u of %u blocks reused)\n",
        p.seconds() * 1e3, p.compute_seconds() * 1e3, p.blocks_reused(),
        p.blocks_total());
  }
  std::fprintf(stderr, "inter-token latency:    %.3f ms (median of %zu)\n",
               Median(gaps) * 1e3, gaps.size());
  std::fprintf(
      stderr,
      "KV bytes moved:         %llu (prefill -> store %llu, store -> decode %llu)\n",
      static_cast<unsigned long long>(moved),
      static_cast<unsigned long long>(p.bytes_pushed()),
      static_cast<unsigned long long>(last.decode_bytes_fetched()));
  if (p.stored_bytes() > 0) {
    std::fprintf(
        stderr, "compression vs fp16:    %.2fx (prompt cache: %llu fp16 bytes -> %llu)\n",
        static_cast<double>(p.fp16_equivalent_bytes()) / p.stored_bytes(),
        static_cast<unsigned long long>(p.fp16_equivalent_bytes()),
        static_cast<unsigned long long>(p.stored_bytes()));
  }
  if (last.stored_bytes() > 0) {
    std::fprintf(stderr, "  final cache:          %.2fx (%llu fp16 bytes -> %llu)\n",
                 static_cast<double>(last.fp16_equivalent_bytes()) / last.stored_bytes(),
                 static_cast<unsigned long long>(last.fp16_equivalent_bytes()),
                 static_cast<unsigned long long>(last.stored_bytes()));
  }
  return 0;
}

const cli::CommandRegistrar kDemo({
    .path = "demo",
    .summary = "Run a prompt through store, prefill, decode and router on loopback.",
    .description =
        "Starts each service as its own process on a free loopback port, generates\n"
        "from --prompt through the router, prints the text, then time to first token,\n"
        "inter-token latency, KV bytes moved and the compression ratio (on stderr).\n"
        "--colocated runs the same request without a store (the baseline); --tls runs\n"
        "the cluster over mTLS with token-locked store writes. --store_shards,\n"
        "--prefill_workers and --decode_workers size the cluster.\n"
        "Example: kvq demo --prompt \"Once upon a time\" --steps 64 --kv kivi2",
    .flags = {"model", "tokenizer", "weights", "prompt", "steps", "kv", "verbose",
              "colocated", "tls", "store_shards", "prefill_workers", "decode_workers"},
    .run = RunDemo,
});

}  // namespace
}  // namespace kvq::launcher
