// The flags more than one `kvq` command reads, defined once for the whole
// binary (a flag defined twice does not link). Flags are for the binary:
// only command files (cli/command.h registrars: `*_command.cc`, `serve_*.cc`)
// include this header; they turn flags into the Options structs that the
// libraries (kernels, model, kvstore, services) take. A flag only one command
// reads is defined in that command's file.
//
//   #include "cli/flags.h"
//   const std::string model_path = kvq::cli::ModelPathFromFlags();
#ifndef KVQ_CLI_FLAGS_H_
#define KVQ_CLI_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/weights_mode.h"
#include "services/common/tls_options.h"

// Model and output (generate, eval, bench, serve, demo).
ABSL_DECLARE_FLAG(std::string, model);      // directory or checkpoint file
ABSL_DECLARE_FLAG(std::string, tokenizer);  // overrides the tokenizer search
ABSL_DECLARE_FLAG(std::string, kv);         // --kv MODE (model/kv_mode.h)
ABSL_DECLARE_FLAG(std::string, weights);    // --weights MODE (model/weights_mode.h)
ABSL_DECLARE_FLAG(bool, json);              // machine-readable output
ABSL_DECLARE_FLAG(bool, verbose);           // echo child processes' output
ABSL_DECLARE_FLAG(std::string, text);       // eval ppl, eval pareto: the text file
ABSL_DECLARE_FLAG(bool, quick);             // bench kernels, eval pareto: a smoke run
ABSL_DECLARE_FLAG(std::string, threads);    // bench kernels, eval pareto
ABSL_DECLARE_FLAG(int, repeats);            // bench kernels, bench serve: rounds

// A request (kvq generate, kvq client generate, kvq demo).
ABSL_DECLARE_FLAG(std::string, prompt);
ABSL_DECLARE_FLAG(int, steps);
ABSL_DECLARE_FLAG(double, temperature);
ABSL_DECLARE_FLAG(double, top_p);
ABSL_DECLARE_FLAG(int, top_k);
ABSL_DECLARE_FLAG(uint64_t, seed);

// Serving roles (kvq serve store|prefill|decode|router).
ABSL_DECLARE_FLAG(std::string, host);
ABSL_DECLARE_FLAG(int, worker_port);
ABSL_DECLARE_FLAG(int, metrics_port);
ABSL_DECLARE_FLAG(absl::Duration, shutdown_grace);
ABSL_DECLARE_FLAG(std::string, store);
ABSL_DECLARE_FLAG(std::vector<std::string>, prefill);
ABSL_DECLARE_FLAG(std::vector<std::string>, decode);
ABSL_DECLARE_FLAG(std::string, default_kv);
ABSL_DECLARE_FLAG(int64_t, kv_budget_bytes);
ABSL_DECLARE_FLAG(int, max_batch);
ABSL_DECLARE_FLAG(absl::Duration, request_timeout);
ABSL_DECLARE_FLAG(absl::Duration, store_timeout);
ABSL_DECLARE_FLAG(absl::Duration, kv_lease_ttl);
ABSL_DECLARE_FLAG(absl::Duration, debug_fetch_delay);
ABSL_DECLARE_FLAG(absl::Duration, debug_layer_delay);
ABSL_DECLARE_FLAG(absl::Duration, debug_step_delay);

// TLS of every server and client (serve, client, demo; docs/security.md).
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(std::string, tls_ca);
ABSL_DECLARE_FLAG(bool, tls_client_auth);
ABSL_DECLARE_FLAG(std::string, tls_server_name);
ABSL_DECLARE_FLAG(absl::Duration, tls_refresh);
// The token a worker sends to the store (prefill, decode).
ABSL_DECLARE_FLAG(std::string, store_token_file);

// Operator clients (kvq client ...).
ABSL_DECLARE_FLAG(std::string, router);
ABSL_DECLARE_FLAG(absl::Duration, rpc_timeout);

namespace kvq::cli {

// --model resolved against the user's directory, or DefaultModelDir() when
// the flag is empty.
std::string ModelPathFromFlags();
// --tokenizer resolved against the user's directory ("" when empty).
std::string TokenizerPathFromFlags();
// --weights parsed; INVALID_ARGUMENT naming the accepted values.
absl::StatusOr<model::WeightsMode> WeightsModeFromFlags();
// Whether --rpc_timeout is positive and finite.
bool RpcTimeoutValid();
// --tls_* as options (paths resolved against the user's directory).
services::TlsOptions TlsOptionsFromFlags();
// `flags` and the --tls_* flags, for a command's `.flags` list.
std::vector<std::string> WithTlsFlags(std::vector<std::string> flags);

}  // namespace kvq::cli

#endif  // KVQ_CLI_FLAGS_H_
