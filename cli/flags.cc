#include "cli/flags.h"

#include <algorithm>

#include "absl/flags/flag.h"
#include "common/paths.h"

ABSL_FLAG(std::string, model, "",
          "Model: a llama2.c .bin checkpoint (tokenizer beside it), a directory "
          "holding one, or a Hugging Face directory (config.json + *.safetensors). "
          "Empty: ../shared/models/stories260K.");
ABSL_FLAG(std::string, tokenizer, "",
          "Tokenizer file; empty: the one beside the model (tok<vocab>.bin, "
          "tokenizer.bin, tokenizer.model).");
ABSL_FLAG(std::string, kv, "fp16",
          "KV cache mode: fp32, fp16, kivi2, kivi4, kivi8, or kivi:KEY=VALUE,... with "
          "keys bits, kbits, vbits, block, group, residual, outliers, koutliers, "
          "voutliers, scales (fp16|u8), sinks, edge_layers with edge_bits; e.g. "
          "kivi:bits=2,block=32,group=8,residual=32 or "
          "kivi:kbits=4,vbits=2,outliers=0.02,scales=u8,sinks=32 (model/kv_mode.h).");
ABSL_FLAG(std::string, weights, "fp32",
          "Weight matrices held as fp32 (4 bytes a weight, the reference), bf16 (2 "
          "bytes; vdpbf16ps on bf16-rounded activations where AVX-512 BF16 exists, "
          "else fp32 arithmetic; KVQ_BF16_KERNEL=avx2fma keeps fp32 activations) or int8 "
          "(1 byte + a scale per output channel; "
          "activations quantized per row, integer products: AVX-512 VNNI, AVX-VNNI or "
          "AVX2 when present). See docs/performance.md for each mode's ppl and speed.");
ABSL_FLAG(bool, json, false, "Print one JSON object instead of text.");
ABSL_FLAG(bool, verbose, false,
          "kvq demo, kvq bench serve: echo the services' output to stderr.");
ABSL_FLAG(std::string, text, "",
          "Text file: one sequence per line (empty lines are skipped). Empty: "
          "../shared/data/stories_dev.txt.");
ABSL_FLAG(bool, quick, false,
          "A smoke run. kvq bench kernels: contexts 1k and 4k, a 64 MiB working set, 2 "
          "reps (figures of cache, not memory). kvq eval pareto: fp16 and KIVI 2/4/8 "
          "bits at B=32, R 0 and 32 (and kvq's modes) instead of the full grid.");
ABSL_FLAG(std::string, threads, "",
          "kvq bench kernels: comma-separated thread counts (e.g. 1); empty: 1,2. "
          "kvq eval pareto: modes evaluated at once, one thread each; empty: 1.");
ABSL_FLAG(int, repeats, 1,
          "Whole measurements to run, alternating between what is compared, with the "
          "medians reported (these machines are noisy). kvq bench kernels: rounds of "
          "every row, the variants in turn; each figure and each ratio the median over "
          "the rounds (--json adds every round's figures). kvq bench serve: throughput "
          "runs per KV mode (the ratio is of the medians).");

ABSL_FLAG(std::string, prompt, "", "Prompt text (may be empty).");
ABSL_FLAG(int, steps, 256, "Number of new tokens to generate at most.");
ABSL_FLAG(double, temperature, 0.0, "Sampling temperature; 0 is greedy.");
ABSL_FLAG(double, top_p, 1.0,
          "Nucleus sampling: keep the most likely tokens up to "
          "this probability mass (0 or 1 = all).");
ABSL_FLAG(int, top_k, 0, "Sample among the k most likely tokens only (0 = all).");
ABSL_FLAG(uint64_t, seed, 0,
          "Random seed for sampling: the same seed gives the same tokens from "
          "`kvq generate`, `kvq client generate` and `kvq demo`.");

ABSL_FLAG(std::string, host, "127.0.0.1",
          "Address a serving role binds (0.0.0.0 for every interface).");
ABSL_FLAG(int, worker_port, 0,
          "gRPC port of a prefill/decode/router process (0: any free).");
ABSL_FLAG(int, metrics_port, -1,
          "Port of the Prometheus /metrics endpoint (-1: none, 0: any free port).");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "On SIGTERM, how long in-flight calls get to finish before cancellation.");
ABSL_FLAG(std::string, store, "", "HOST:PORT[,HOST:PORT...] of the KV store shards.");
ABSL_FLAG(std::vector<std::string>, prefill, {},
          "Comma-separated HOST:PORT of the prefill workers (router); dns:///NAME:PORT "
          "stands for every address NAME resolves to.");
ABSL_FLAG(std::vector<std::string>, decode, {},
          "Comma-separated HOST:PORT of the decode workers (router); dns:///NAME:PORT "
          "stands for every address NAME resolves to.");
ABSL_FLAG(std::string, default_kv, "kivi2",
          "Prefill/decode worker and router: KV cache mode (--kv syntax) of a request "
          "that leaves cache.kv empty. The router fills it in before picking workers, so "
          "prefill and decode agree whatever theirs say.");
ABSL_FLAG(int64_t, kv_budget_bytes, int64_t{1} << 30,
          "Decode worker: bytes of KV cache its sequences may hold together.");
ABSL_FLAG(int, max_batch, 256, "Decode worker: most sequences advanced per step.");
ABSL_FLAG(absl::Duration, request_timeout, absl::Minutes(5),
          "Deadline of outgoing calls when the client set none.");
ABSL_FLAG(absl::Duration, store_timeout, absl::Seconds(30),
          "Prefill/decode worker: deadline of each KV store call; a store that does not "
          "answer in time is reported UNAVAILABLE.");
ABSL_FLAG(absl::Duration, kv_lease_ttl, absl::Seconds(30),
          "Prefill worker: TTL of its store leases on the prefix blocks it reuses and on "
          "the handle's blocks until a decode worker fetched them (renewed while held, "
          "capped by the store's --lease_ttl; 0 = take no leases).");
ABSL_FLAG(absl::Duration, debug_fetch_delay, absl::ZeroDuration(),
          "Prefill worker fault injection for tests: sleep between the store Lookup and "
          "the fetch of the reused prefix.");
ABSL_FLAG(absl::Duration, debug_layer_delay, absl::ZeroDuration(),
          "Prefill worker fault injection for tests: sleep after each layer.");
ABSL_FLAG(absl::Duration, debug_step_delay, absl::ZeroDuration(),
          "Decode worker fault injection for tests: sleep after each batch step.");

ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of this process: a server serves TLS with it, a "
          "client presents it to servers that ask (mTLS). Needs --tls_key.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert (unencrypted).");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA certificates: a client trusts servers signed by them (and speaks "
          "TLS); a server verifies client certificates against them.");
ABSL_FLAG(bool, tls_client_auth, false,
          "Server: refuse clients without a certificate signed by --tls_ca (mTLS).");
ABSL_FLAG(std::string, tls_server_name, "",
          "Client: the name servers' certificates must hold when it is not the host "
          "dialled (e.g. kvq-store.kvq.svc).");
ABSL_FLAG(absl::Duration, tls_refresh, absl::Minutes(1),
          "How often the --tls_* files are read again, so renewed certificates are "
          "used without a restart (0: read once).");
ABSL_FLAG(std::string, store_token_file, "",
          "Prefill/decode worker: file whose first token is sent to the store as "
          "`authorization: Bearer <token>` (a token of the store's "
          "--writer_token_file).");

ABSL_FLAG(std::string, router, "127.0.0.1:50050",
          "kvq client: HOST:PORT of the router (the client-facing Generate).");
ABSL_FLAG(absl::Duration, rpc_timeout, absl::Minutes(5),
          "kvq client: deadline of each call (e.g. 30s, 5m).");

namespace kvq::cli {

std::string ModelPathFromFlags() {
  const std::string flag = absl::GetFlag(FLAGS_model);
  return flag.empty() ? DefaultModelDir() : ResolveUserPath(flag);
}

std::string TokenizerPathFromFlags() {
  return ResolveUserPath(absl::GetFlag(FLAGS_tokenizer));
}

absl::StatusOr<model::WeightsMode> WeightsModeFromFlags() {
  absl::StatusOr<model::WeightsMode> mode =
      model::ParseWeightsMode(absl::GetFlag(FLAGS_weights));
  if (!mode.ok()) {
    return absl::InvalidArgumentError("--weights: " +
                                      std::string(mode.status().message()));
  }
  return mode;
}

bool RpcTimeoutValid() {
  const absl::Duration d = absl::GetFlag(FLAGS_rpc_timeout);
  return d > absl::ZeroDuration() && d != absl::InfiniteDuration();
}

std::vector<std::string> WithTlsFlags(std::vector<std::string> flags) {
  for (const char* f : {"tls_cert", "tls_key", "tls_ca", "tls_client_auth",
                        "tls_server_name", "tls_refresh"}) {
    flags.push_back(f);
  }
  return flags;
}

services::TlsOptions TlsOptionsFromFlags() {
  services::TlsOptions tls;
  tls.cert_file = ResolveUserPath(absl::GetFlag(FLAGS_tls_cert));
  tls.key_file = ResolveUserPath(absl::GetFlag(FLAGS_tls_key));
  tls.ca_file = ResolveUserPath(absl::GetFlag(FLAGS_tls_ca));
  tls.require_client_cert = absl::GetFlag(FLAGS_tls_client_auth);
  tls.server_name = absl::GetFlag(FLAGS_tls_server_name);
  tls.refresh_interval = std::max(absl::GetFlag(FLAGS_tls_refresh), absl::ZeroDuration());
  return tls;
}

}  // namespace kvq::cli
