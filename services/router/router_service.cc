#include "services/router/router_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "services/common/grpc_server.h"
#include "services/router/utf8_stream.h"

namespace kvq::router {
namespace {

// In-flight accounting for one worker for the lifetime of a call.
class LoadGuard {
 public:
  explicit LoadGuard(std::atomic<int>* counter) : counter_(counter) { ++*counter_; }
  ~LoadGuard() { --*counter_; }

 private:
  std::atomic<int>* counter_;
};

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

}  // namespace

int PickLeastLoaded(const std::vector<int>& load, int exclude, int start) {
  const int n = static_cast<int>(load.size());
  int best = -1;
  for (int k = 0; k < n; ++k) {
    const int i = (start + k) % n;
    if (i == exclude) continue;
    if (best < 0 || load[i] < load[best]) best = i;
  }
  return best;
}

bool IsRetryablePrefillError(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::CANCELLED:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<std::unique_ptr<RouterService>> RouterService::Create(
    RouterOptions options) {
  if (options.tokenizer == nullptr) {
    return absl::InvalidArgumentError("the router needs a tokenizer");
  }
  if (options.decode.empty()) {
    return absl::InvalidArgumentError(
        "the router needs at least one decode worker address");
  }
  return std::unique_ptr<RouterService>(new RouterService(std::move(options)));
}

RouterService::RouterService(RouterOptions options) : options_(std::move(options)) {
  for (const std::string& a : options_.prefill) {
    auto w = std::make_unique<Worker>();
    w->address = a;
    w->prefill =
        v1::Prefill::NewStub(grpc::CreateChannel(a, grpc::InsecureChannelCredentials()));
    prefill_.push_back(std::move(w));
  }
  for (const std::string& a : options_.decode) {
    auto w = std::make_unique<Worker>();
    w->address = a;
    w->decode =
        v1::Decode::NewStub(grpc::CreateChannel(a, grpc::InsecureChannelCredentials()));
    decode_.push_back(std::move(w));
  }
}

int RouterService::Pick(std::vector<std::unique_ptr<Worker>>& workers, int exclude) {
  std::vector<int> load;
  for (const auto& w : workers) load.push_back(w->in_flight.load());
  return PickLeastLoaded(load, exclude, static_cast<int>(next_++ % workers.size()));
}

std::unique_ptr<grpc::ClientContext> RouterService::Downstream(
    grpc::ServerContext* context) const {
  // Propagates the client's deadline and cancellation; the earlier of the
  // client's deadline and ours applies.
  std::unique_ptr<grpc::ClientContext> c =
      grpc::ClientContext::FromServerContext(*context);
  c->set_deadline(absl::ToChronoTime(absl::Now() + options_.default_timeout));
  return c;
}

grpc::Status RouterService::Generate(grpc::ServerContext* context,
                                     const v1::GenerateRequest* request,
                                     grpc::ServerWriter<v1::GenerateResponse>* writer) {
  const absl::Time start = absl::Now();
  grpc::Status s = GenerateImpl(context, request, writer);
  if (options_.metrics)
    options_.metrics->RecordRpc("Generate", s.error_code(), absl::Now() - start);
  return s;
}

grpc::Status RouterService::GenerateImpl(
    grpc::ServerContext* context, const v1::GenerateRequest* request,
    grpc::ServerWriter<v1::GenerateResponse>* writer) {
  if (services::Draining()) return services::DrainingStatus("router");
  services::InFlight in_flight;
  const absl::Time arrival = absl::Now();
  serving::ServingMetrics* m = options_.metrics;
  const model::Tokenizer& tok = *options_.tokenizer;
  Utf8Stream utf8;
  // ---- the prompt ----
  std::vector<int> prompt;
  switch (request->prompt_case()) {
    case v1::GenerateRequest::kText:
      prompt = tok.Encode(request->text());
      break;
    case v1::GenerateRequest::kTokens:
      prompt.assign(request->tokens().ids().begin(), request->tokens().ids().end());
      if (prompt.empty())
        return Invalid("prompt token ids are empty (send at least BOS)");
      if (absl::Status s = model::CheckTokenIds(prompt, tok.vocab_size()); !s.ok()) {
        return Invalid(absl::StrCat("prompt: ", s.message()));
      }
      break;
    default:
      return Invalid("the request has neither text nor token ids");
  }
  if (request->sampling().max_tokens() < 1) {
    return Invalid(absl::StrCat("sampling.max_tokens must be >= 1, got ",
                                request->sampling().max_tokens()));
  }
  v1::SamplingParams sampling = request->sampling();
  if (!sampling.ignore_eos()) {
    sampling.add_stop_token_ids(tok.bos_id());
    sampling.add_stop_token_ids(tok.eos_id());
  }

  // ---- colocated: the decode worker runs the prompt itself ----
  if (prefill_.empty()) {
    v1::DecodeRequest decode_request;
    decode_request.mutable_prompt()->mutable_ids()->Add(prompt.begin(), prompt.end());
    *decode_request.mutable_cache() = request->cache();
    *decode_request.mutable_sampling() = sampling;
    v1::GenerateResponse head;
    head.mutable_prompt_tokens()->Add(prompt.begin(), prompt.end());
    if (m) m->prompt_tokens->Increment(prompt.size());
    return RelayDecode(context, *request, nullptr, std::move(decode_request),
                       std::move(head), prompt.back(), v1::PrefillStats(), arrival, &utf8,
                       writer);
  }

  // ---- prefill, retried once on another worker ----
  v1::PrefillRequest prefill_request;
  prefill_request.mutable_tokens()->Add(prompt.begin(), prompt.end());
  *prefill_request.mutable_cache() = request->cache();
  *prefill_request.mutable_sampling() = sampling;
  v1::PrefillResponse prefilled;
  int attempts = 0;
  int worker = -1;
  const grpc::Status status =
      RunPrefill(context, prefill_request, &prefilled, &attempts, &worker);
  if (context->IsCancelled()) return grpc::Status::CANCELLED;
  if (!status.ok()) {
    return grpc::Status(status.error_code(),
                        absl::StrCat("prefill failed (", attempts,
                                     attempts == 1 ? " attempt" : " attempts",
                                     "): ", status.error_message()));
  }

  // ---- the first token ----
  const int first = prefilled.first_token();
  const auto& stops = sampling.stop_token_ids();
  const bool first_stops = std::find(stops.begin(), stops.end(), first) != stops.end();
  v1::GenerateResponse head;
  head.set_prefill_worker(prefill_[worker]->address);
  head.set_prefill_attempts(attempts);
  head.mutable_prompt_tokens()->Add(prompt.begin(), prompt.end());
  int prev = prompt.back();
  if (!first_stops) {
    head.add_tokens(first);
    if (request->return_text()) head.set_text(utf8.Push(tok.DecodePiece(prev, first)));
    prev = first;
  }
  *head.mutable_prefill() = prefilled.stats();
  head.set_fp16_equivalent_bytes(prefilled.stats().fp16_equivalent_bytes());
  head.set_stored_bytes(prefilled.stats().stored_bytes());
  if (m) {
    m->time_to_first_token->Observe(absl::ToDoubleSeconds(absl::Now() - arrival));
    m->prompt_tokens->Increment(prompt.size());
    if (!first_stops) m->generation_tokens->Increment();
  }
  if (first_stops || sampling.max_tokens() == 1) {
    head.set_finished(true);
    head.set_finish_reason(first_stops ? "stop" : "length");
    if (request->return_text()) head.mutable_text()->append(utf8.Flush());
    writer->Write(head);
    if (m) m->e2e_request_latency->Observe(absl::ToDoubleSeconds(absl::Now() - arrival));
    return grpc::Status::OK;
  }

  // ---- decode ----
  v1::DecodeRequest decode_request;
  *decode_request.mutable_handle() = prefilled.handle();
  decode_request.set_first_token(first);
  *decode_request.mutable_sampling() = sampling;
  return RelayDecode(context, *request, &prefill_request, std::move(decode_request),
                     std::move(head), prev, prefilled.stats(), arrival, &utf8, writer);
}

grpc::Status RouterService::RunPrefill(grpc::ServerContext* context,
                                       const v1::PrefillRequest& request,
                                       v1::PrefillResponse* response, int* attempts,
                                       int* worker) {
  grpc::Status status(grpc::StatusCode::UNAVAILABLE, "no prefill worker");
  *attempts = 0;
  for (int exclude = -1; *attempts < 2;) {
    *worker = Pick(prefill_, exclude);
    if (*worker < 0) break;
    ++*attempts;
    Worker& w = *prefill_[*worker];
    LoadGuard load(&w.in_flight);
    auto ctx = Downstream(context);
    response->Clear();
    status = w.prefill->Prefill(ctx.get(), request, response);
    if (status.ok() || context->IsCancelled() ||
        !IsRetryablePrefillError(status.error_code())) {
      break;
    }
    exclude = *worker;
  }
  return status;
}

grpc::Status RouterService::RelayDecode(
    grpc::ServerContext* context, const v1::GenerateRequest& request,
    const v1::PrefillRequest* prefill_request, v1::DecodeRequest decode_request,
    v1::GenerateResponse head, int prev, const v1::PrefillStats& prefill,
    absl::Time arrival, Utf8Stream* utf8,
    grpc::ServerWriter<v1::GenerateResponse>* writer) {
  serving::ServingMetrics* m = options_.metrics;
  const int d = Pick(decode_, -1);
  Worker& dw = *decode_[d];
  head.set_decode_worker(dw.address);
  // Colocated, the first token comes from the decode worker's stream.
  bool first_pending = head.tokens_size() == 0;
  if (!first_pending && !writer->Write(head)) return grpc::Status::CANCELLED;
  LoadGuard load(&dw.in_flight);
  bool streamed = false;  // the decode worker sent something
  grpc::Status decoded =
      StreamDecode(context, request, decode_request, dw, &head, &first_pending, &prev,
                   prefill, arrival, utf8, writer, /*reprefills=*/0, &streamed);
  if (!decoded.ok() && decoded.error_code() == grpc::StatusCode::NOT_FOUND && !streamed &&
      prefill_request != nullptr && !context->IsCancelled()) {
    // The handle's blocks were evicted before the decode worker fetched them:
    // put them back with a fresh prefill, once.
    if (m) m->reprefills->Increment();
    v1::PrefillResponse again;
    int attempts = 0, worker = -1;
    const grpc::Status re =
        RunPrefill(context, *prefill_request, &again, &attempts, &worker);
    if (!re.ok()) {
      return grpc::Status(
          re.error_code(),
          absl::StrCat("the decode worker lost the prompt's KV blocks (",
                       decoded.error_message(),
                       ") and the prefill run again failed: ", re.error_message()));
    }
    // The first token the client already has stays the one decode continues.
    *decode_request.mutable_handle() = again.handle();
    decoded =
        StreamDecode(context, request, decode_request, dw, &head, &first_pending, &prev,
                     prefill, arrival, utf8, writer, /*reprefills=*/1, &streamed);
  }
  if (context->IsCancelled()) return grpc::Status::CANCELLED;
  if (!decoded.ok()) {
    return grpc::Status(
        decoded.error_code(),
        absl::StrCat("decode worker ", dw.address, ": ", decoded.error_message()));
  }
  return grpc::Status::OK;
}

grpc::Status RouterService::StreamDecode(
    grpc::ServerContext* context, const v1::GenerateRequest& request,
    const v1::DecodeRequest& decode_request, Worker& dw, v1::GenerateResponse* head,
    bool* first_pending, int* prev_token, const v1::PrefillStats& prefill,
    absl::Time arrival, Utf8Stream* utf8,
    grpc::ServerWriter<v1::GenerateResponse>* writer, int reprefills, bool* streamed) {
  serving::ServingMetrics* m = options_.metrics;
  const model::Tokenizer& tok = *options_.tokenizer;
  int& prev = *prev_token;
  auto ctx = Downstream(context);
  std::unique_ptr<grpc::ClientReader<v1::DecodeResponse>> reader =
      dw.decode->Generate(ctx.get(), decode_request);
  v1::DecodeResponse chunk;
  absl::Time last_token = absl::Now();
  double gap_sum = 0;
  int gaps = 0;
  while (reader->Read(&chunk)) {
    *streamed = true;
    if (*first_pending && chunk.tokens_size() > 0 && m) {
      m->time_to_first_token->Observe(absl::ToDoubleSeconds(absl::Now() - arrival));
      m->generation_tokens->Increment(chunk.tokens_size());
      last_token = absl::Now();
    } else if (m && chunk.tokens_size() > 0) {
      // One gap per token of the chunk (tokens of a chunk arrived together).
      const double gap =
          absl::ToDoubleSeconds(absl::Now() - last_token) / chunk.tokens_size();
      for (int i = 0; i < chunk.tokens_size(); ++i) m->inter_token_latency->Observe(gap);
      if (gaps >= 4 && gap > 10 * gap_sum / gaps) m->inter_token_stalls->Increment();
      gap_sum += gap * chunk.tokens_size();
      gaps += chunk.tokens_size();
      m->generation_tokens->Increment(chunk.tokens_size());
      last_token = absl::Now();
    }
    v1::GenerateResponse out;
    if (*first_pending) out = *head;  // colocated: the head rides on the first chunk
    *first_pending = false;
    for (int t : chunk.tokens()) {
      out.add_tokens(t);
      if (request.return_text())
        out.mutable_text()->append(utf8->Push(tok.DecodePiece(prev, t)));
      prev = t;
    }
    if (chunk.finished()) {
      out.set_finished(true);
      if (request.return_text()) out.mutable_text()->append(utf8->Flush());
      out.set_finish_reason(chunk.finish_reason());
      *out.mutable_prefill() = prefill;
      out.set_decode_bytes_fetched(chunk.bytes_fetched());
      out.set_fp16_equivalent_bytes(chunk.fp16_equivalent_bytes());
      out.set_stored_bytes(chunk.stored_bytes());
      out.set_reprefills(reprefills);
    }
    if (!writer->Write(out)) {
      ctx->TryCancel();
      break;
    }
  }
  const grpc::Status decoded = reader->Finish();
  if (m && decoded.ok()) {
    m->e2e_request_latency->Observe(absl::ToDoubleSeconds(absl::Now() - arrival));
  }
  return decoded;
}

}  // namespace kvq::router
