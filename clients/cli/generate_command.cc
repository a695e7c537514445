// `kvq client generate`: streams a generation from a running router
// (Router.Generate, proto/serving.proto) and prints it like `kvq generate`:
// the prompt, then the continuation as it arrives; then, on stderr, the time
// to first token, the workers that served it, the KV bytes moved and the
// compression. --json prints one JSON object instead.
//
//   kvq client generate --router 127.0.0.1:50050 --prompt "Once upon a time"
//       --steps 64 --kv kivi2
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/internal/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "proto/serving.grpc.pb.h"
#include "services/common/grpc_status.h"
#include "services/common/tls.h"

// `kvq generate`'s flags (model/generate_command.cc).

ABSL_FLAG(std::string, tokens, "",
          "kvq client generate: the prompt as comma-separated token ids (instead of "
          "--prompt).");

namespace kvq::clients {
namespace {

int Usage(const std::string& what) {
  std::fprintf(stderr, "kvq client generate: %s\n", what.c_str());
  return 2;
}

// Builds the request from the flags; a message for the user when they are bad.
bool BuildRequest(v1::GenerateRequest* request, std::string* error) {
  const std::string tokens = absl::GetFlag(FLAGS_tokens);
  if (!tokens.empty()) {
    if (!absl::GetFlag(FLAGS_prompt).empty()) {
      *error = "give --prompt or --tokens, not both";
      return false;
    }
    for (absl::string_view t : absl::StrSplit(tokens, ',', absl::SkipWhitespace())) {
      int id = 0;
      if (!absl::SimpleAtoi(t, &id) || id < 0) {
        *error = "--tokens: " + std::string(t) + " is not a token id";
        return false;
      }
      request->mutable_tokens()->add_ids(id);
    }
    if (request->tokens().ids_size() == 0) {
      *error = "--tokens has no token ids";
      return false;
    }
  } else {
    request->set_text(absl::GetFlag(FLAGS_prompt));
  }
  const int steps = absl::GetFlag(FLAGS_steps);
  const double temperature = absl::GetFlag(FLAGS_temperature);
  const double top_p = absl::GetFlag(FLAGS_top_p);
  if (steps < 1) {
    *error = "--steps must be >= 1";
    return false;
  }
  if (!(temperature >= 0) || !(top_p >= 0 && top_p <= 1)) {
    *error = "need --temperature >= 0 and 0 <= --top_p <= 1";
    return false;
  }
  if (!cli::RpcTimeoutValid()) {
    *error = "--rpc_timeout must be positive and finite";
    return false;
  }
  // --kv is shared with `kvq generate`, whose default (fp16) is a local
  // choice; a client that does not name a mode gets the workers' default.
  // (Abseil of this age has no public "was it given" query.)
  if (absl::flags_internal::WasPresentOnCommandLine("kv")) {
    request->mutable_cache()->set_kv(absl::GetFlag(FLAGS_kv));
  }
  v1::SamplingParams* s = request->mutable_sampling();
  s->set_max_tokens(steps);
  s->set_temperature(static_cast<float>(temperature));
  s->set_top_p(static_cast<float>(top_p));
  s->set_seed(absl::GetFlag(FLAGS_seed));
  request->set_return_text(true);
  return true;
}

int RunClientGenerate(const std::vector<std::string>& args) {
  if (!args.empty()) return Usage("unexpected argument " + args[0]);
  v1::GenerateRequest request;
  std::string error;
  if (!BuildRequest(&request, &error)) return Usage(error);
  const bool json = absl::GetFlag(FLAGS_json);
  const std::string router = absl::GetFlag(FLAGS_router);

  absl::StatusOr<services::ChannelSecurity> security =
      services::ChannelSecurity::Create(cli::TlsOptionsFromFlags());
  if (!security.ok()) return Usage(std::string(security.status().message()));
  auto stub = v1::Router::NewStub(security->CreateChannel(router));
  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_rpc_timeout)));
  const absl::Time sent = absl::Now();
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      stub->Generate(&context, request);

  if (!json && request.has_text()) {
    std::fwrite(request.text().data(), 1, request.text().size(), stdout);
    std::fflush(stdout);
  }
  v1::GenerateResponse msg, first, last;
  std::vector<int> tokens;
  std::string text;
  double ttft = -1;
  bool have_first = false;
  while (reader->Read(&msg)) {
    if (!have_first) {
      first = msg;
      have_first = true;
    }
    if (msg.tokens_size() > 0 && ttft < 0)
      ttft = absl::ToDoubleSeconds(absl::Now() - sent);
    tokens.insert(tokens.end(), msg.tokens().begin(), msg.tokens().end());
    text += msg.text();
    if (!json) {
      std::fwrite(msg.text().data(), 1, msg.text().size(), stdout);
      std::fflush(stdout);
    }
    if (msg.finished()) last = msg;
  }
  if (!json && request.has_text()) std::fputs("\n", stdout);
  // The router's last message is `finished`. Without it, either the call
  // failed, and its status is here at once, or a message did not parse, and
  // then Finish would wait for the deadline: give it a moment, then cancel.
  grpc::Status status;
  bool cancelled_by_us = false;
  if (last.finished()) {
    status = reader->Finish();
  } else {
    absl::Notification done;
    std::thread finisher([&] {
      status = reader->Finish();
      done.Notify();
    });
    if (!done.WaitForNotificationWithTimeout(absl::Seconds(2))) {
      cancelled_by_us = true;
      context.TryCancel();
    }
    finisher.join();
  }
  if (cancelled_by_us) {
    std::fprintf(stderr,
                 "kvq client generate: %s: the stream broke before its last message "
                 "(a response that does not parse?)\n",
                 router.c_str());
    return 1;
  }
  if (!status.ok()) {
    std::fprintf(stderr, "kvq client generate: %s: %s\n", router.c_str(),
                 services::FromGrpcStatus(status).ToString().c_str());
    return 1;
  }
  if (!last.finished()) {
    std::fprintf(stderr, "kvq client generate: the stream from %s ended unfinished\n",
                 router.c_str());
    return 1;
  }
  const v1::PrefillStats& p = last.prefill();
  const double ratio =
      last.stored_bytes() > 0
          ? static_cast<double>(last.fp16_equivalent_bytes()) / last.stored_bytes()
          : 0.0;
  if (json) {
    nlohmann::json j = {{"text", text},
                        {"tokens", tokens},
                        {"prompt_tokens", std::vector<int>(first.prompt_tokens().begin(),
                                                           first.prompt_tokens().end())},
                        {"finish_reason", last.finish_reason()},
                        {"kv", request.cache().kv()},
                        {"time_to_first_token_seconds", ttft},
                        {"prefill_worker", first.prefill_worker()},
                        {"decode_worker", first.decode_worker()},
                        {"prefill_attempts", first.prefill_attempts()},
                        {"blocks_total", p.blocks_total()},
                        {"blocks_reused", p.blocks_reused()},
                        {"bytes_pushed", p.bytes_pushed()},
                        {"bytes_fetched", p.bytes_fetched()},
                        {"decode_bytes_fetched", last.decode_bytes_fetched()},
                        {"fp16_equivalent_bytes", last.fp16_equivalent_bytes()},
                        {"stored_bytes", last.stored_bytes()},
                        {"compression_ratio", ratio}};
    // Byte-fallback pieces can split a UTF-8 character: replace, never throw.
    std::printf("%s\n",
                j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  if (!request.has_text()) std::fputs("\n", stdout);
  std::fprintf(stderr, "tokens generated:    %zu (%s)\n", tokens.size(),
               last.finish_reason().c_str());
  std::fprintf(stderr, "time to first token: %.2f ms\n", ttft * 1e3);
  std::fprintf(stderr, "workers:             prefill %s (%u attempt(s)), decode %s\n",
               first.prefill_worker().c_str(), first.prefill_attempts(),
               first.decode_worker().empty() ? "-" : first.decode_worker().c_str());
  std::fprintf(stderr,
               "KV bytes moved:      prefill -> store %llu, store -> decode %llu "
               "(%u/%u prompt blocks reused)\n",
               static_cast<unsigned long long>(p.bytes_pushed()),
               static_cast<unsigned long long>(last.decode_bytes_fetched()),
               p.blocks_reused(), p.blocks_total());
  if (ratio > 0) {
    std::fprintf(stderr, "compression vs fp16: %.2fx (%llu -> %llu bytes)\n", ratio,
                 static_cast<unsigned long long>(last.fp16_equivalent_bytes()),
                 static_cast<unsigned long long>(last.stored_bytes()));
  }
  return 0;
}

const cli::CommandRegistrar kClientGenerate({
    .path = "client generate",
    .summary = "Stream a generation from a running kvq router.",
    .description =
        "Sends --prompt (or --tokens) to the router at --router and prints the\n"
        "continuation as it streams, then time to first token, the workers, KV bytes\n"
        "moved and compression on stderr (--json: one JSON object on stdout). Without\n"
        "--kv the workers' default mode (kivi2) is used. Exit status 1 when the call\n"
        "fails (the gRPC code and message are printed), 2 for bad flags.\n"
        "Example: kvq client generate --router 127.0.0.1:50050 --prompt \"Once upon a "
        "time\" --steps 64 --kv kivi2",
    .flags = cli::WithTlsFlags({"router", "prompt", "tokens", "steps", "kv",
                                "temperature", "top_p", "seed", "rpc_timeout", "json"}),
    .run = RunClientGenerate,
});

}  // namespace
}  // namespace kvq::clients
