#include "services/router/router.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

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

bool IsRetryablePrefillError(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<std::unique_ptr<Router>> Router::Create(RouterOptions options) {
  if (options.tokenizer == nullptr) {
    return absl::InvalidArgumentError("the router needs a tokenizer");
  }
  if (options.decode.empty()) {
    return absl::InvalidArgumentError(
        "the router needs at least one decode worker address");
  }
  return std::unique_ptr<Router>(new Router(std::move(options)));
}

Router::Router(RouterOptions options) : options_(std::move(options)) {
  prefill_.addresses = options_.prefill;
  prefill_.in_flight = std::make_unique<std::atomic<int>[]>(prefill_.addresses.size());
  decode_.addresses = options_.decode;
  decode_.in_flight = std::make_unique<std::atomic<int>[]>(decode_.addresses.size());
}

int Router::Pick(Pool& pool, int exclude) {
  std::vector<int> load;
  for (size_t i = 0; i < pool.addresses.size(); ++i) load.push_back(pool.in_flight[i]);
  if (load.empty()) return -1;
  return PickLeastLoaded(load, exclude, static_cast<int>(next_++ % load.size()));
}

// What one request's relay to the client keeps between chunks.
struct Router::Relay {
  const RouteRequest& request;
  const RouteSink& sink;
  absl::Time arrival;
  RouteChunk head;     // sent before, or with, the first decoded chunk
  bool first_pending;  // the head has not been sent yet (colocated)
  int prev;            // the token before the next one (for text pieces)
  std::optional<serving::PrefillStats> prefill;
  Utf8Stream utf8;
};

absl::StatusOr<std::vector<int>> Router::Prompt(const RouteRequest& request) const {
  const model::Tokenizer& tok = *options_.tokenizer;
  const int context = options_.max_context_tokens;
  if (request.text) {
    if (context > 0 &&
        request.text->size() > static_cast<size_t>(context) * kMaxPromptBytesPerToken) {
      return absl::InvalidArgumentError(
          absl::StrCat("the prompt's ", request.text->size(),
                       " bytes cannot fit the model's context of ", context, " tokens"));
    }
    std::vector<int> tokens = tok.Encode(*request.text);
    if (context > 0 &&
        static_cast<int64_t>(tokens.size()) + request.generation.max_tokens - 1 >
            context) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt (", tokens.size(), " tokens) plus max_tokens (",
          request.generation.max_tokens, ") exceeds the model's seq_len of ", context));
    }
    return tokens;
  }
  if (context > 0 &&
      static_cast<int64_t>(request.tokens.size()) + request.generation.max_tokens - 1 >
          context) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt (", request.tokens.size(), " tokens) plus max_tokens (",
        request.generation.max_tokens, ") exceeds the model's seq_len of ", context));
  }
  if (request.tokens.empty()) {
    return absl::InvalidArgumentError("prompt token ids are empty (send at least BOS)");
  }
  if (absl::Status s = model::CheckTokenIds(request.tokens, tok.vocab_size()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("prompt: ", s.message()));
  }
  return request.tokens;
}

absl::Status Router::Generate(const RouteRequest& request, WorkerCalls& calls,
                              const RouteSink& sink,
                              const serving::CancelledFn& cancelled) {
  const absl::Time arrival = absl::Now();
  serving::ServingMetrics* m = options_.metrics;
  const model::Tokenizer& tok = *options_.tokenizer;
  KVQ_ASSIGN_OR_RETURN(std::vector<int> prompt, Prompt(request));
  if (request.generation.max_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampling.max_tokens must be >= 1, got ", request.generation.max_tokens));
  }
  serving::GenerationParams generation = request.generation;
  if (!generation.ignore_eos) {
    generation.stop_ids.push_back(tok.bos_id());
    generation.stop_ids.push_back(tok.eos_id());
  }
  Relay relay{request, sink, arrival, {}, true, prompt.back(), std::nullopt, {}};
  relay.head.prompt_tokens = prompt;

  // ---- colocated: the decode worker runs the prompt itself ----
  if (prefill_.addresses.empty()) {
    if (m) m->prompt_tokens->Increment(prompt.size());
    serving::DecodeRequest decode;
    decode.prompt = prompt;
    decode.kv = request.kv;
    decode.generation = generation;
    return RelayDecode(relay, std::move(decode), nullptr, calls, cancelled);
  }

  // ---- prefill, retried once on another worker ----
  serving::PrefillRequest prefill_request{prompt, std::nullopt, request.kv, generation};
  int attempts = 0;
  int worker = -1;
  absl::StatusOr<serving::PrefillResult> prefilled =
      RunPrefill(prefill_request, calls, cancelled, &attempts, &worker);
  if (cancelled && cancelled()) return absl::CancelledError("the client cancelled");
  if (!prefilled.ok()) {
    return absl::Status(prefilled.status().code(),
                        absl::StrCat("prefill failed (", attempts,
                                     attempts == 1 ? " attempt" : " attempts",
                                     "): ", prefilled.status().message()));
  }

  // ---- the first token ----
  const int first = prefilled->first_token;
  const std::vector<int>& stops = generation.stop_ids;
  const bool first_stops = std::find(stops.begin(), stops.end(), first) != stops.end();
  RouteChunk& head = relay.head;
  head.prefill_worker = prefill_.addresses[worker];
  head.prefill_attempts = attempts;
  if (!first_stops) {
    head.tokens.push_back(first);
    if (request.return_text)
      head.text = relay.utf8.Push(tok.DecodePiece(relay.prev, first));
    relay.prev = first;
  }
  relay.prefill = prefilled->stats;
  head.prefill = prefilled->stats;
  head.fp16_equivalent_bytes = prefilled->stats.fp16_equivalent_bytes;
  head.stored_bytes = prefilled->stats.stored_bytes;
  if (m) {
    m->time_to_first_token->Observe(absl::ToDoubleSeconds(absl::Now() - arrival));
    m->prompt_tokens->Increment(prompt.size());
    if (!first_stops) m->generation_tokens->Increment();
  }
  relay.first_pending = false;
  if (first_stops || generation.max_tokens == 1) {
    head.finished = true;
    head.finish_reason = first_stops ? "stop" : "length";
    if (request.return_text) head.text.append(relay.utf8.Flush());
    sink(head);
    if (m) m->e2e_request_latency->Observe(absl::ToDoubleSeconds(absl::Now() - arrival));
    return absl::OkStatus();
  }

  // ---- decode ----
  serving::DecodeRequest decode;
  decode.handle = std::move(prefilled->handle);
  decode.first_token = first;
  decode.generation = generation;
  return RelayDecode(relay, std::move(decode), &prefill_request, calls, cancelled);
}

absl::StatusOr<serving::PrefillResult> Router::RunPrefill(
    const serving::PrefillRequest& request, WorkerCalls& calls,
    const serving::CancelledFn& cancelled, int* attempts, int* worker) {
  absl::StatusOr<serving::PrefillResult> result =
      absl::UnavailableError("no prefill worker");
  *attempts = 0;
  for (int exclude = -1; *attempts < 2;) {
    const int w = Pick(prefill_, exclude);
    if (w < 0) break;
    *worker = w;
    ++*attempts;
    LoadGuard load(&prefill_.in_flight[w]);
    result = calls.Prefill(w, request);
    if (result.ok() || (cancelled && cancelled()) ||
        !IsRetryablePrefillError(result.status().code())) {
      break;
    }
    exclude = w;
  }
  return result;
}

absl::Status Router::RelayDecode(Relay& relay, serving::DecodeRequest decode,
                                 const serving::PrefillRequest* prefill,
                                 WorkerCalls& calls,
                                 const serving::CancelledFn& cancelled) {
  serving::ServingMetrics* m = options_.metrics;
  const int d = Pick(decode_, -1);
  relay.head.decode_worker = decode_.addresses[d];
  // Disaggregated, the head (with the first token) goes out now; colocated,
  // it rides on the decode worker's first chunk.
  relay.first_pending = !decode.handle.has_value();
  if (!relay.first_pending) {
    if (!relay.sink(relay.head)) return absl::CancelledError("the client went away");
  }
  LoadGuard load(&decode_.in_flight[d]);
  bool streamed = false;  // the decode worker sent something
  relay.head.reprefills = 0;
  absl::Status decoded = StreamDecode(relay, decode, d, calls, &streamed);
  if (decoded.code() == absl::StatusCode::kNotFound && !streamed && prefill != nullptr &&
      !(cancelled && cancelled())) {
    // The handle's blocks were evicted before the decode worker fetched them:
    // put them back with a fresh prefill, once.
    if (m) m->reprefills->Increment();
    int attempts = 0, worker = -1;
    absl::StatusOr<serving::PrefillResult> again =
        RunPrefill(*prefill, calls, cancelled, &attempts, &worker);
    if (!again.ok()) {
      return absl::Status(
          again.status().code(),
          absl::StrCat("the decode worker lost the prompt's KV blocks (",
                       decoded.message(),
                       ") and the prefill run again failed: ", again.status().message()));
    }
    // The first token the client already has stays the one decode continues.
    decode.handle = std::move(again->handle);
    relay.head.reprefills = 1;
    decoded = StreamDecode(relay, decode, d, calls, &streamed);
  }
  if (cancelled && cancelled()) return absl::CancelledError("the client cancelled");
  if (!decoded.ok()) {
    return absl::Status(
        decoded.code(),
        absl::StrCat("decode worker ", decode_.addresses[d], ": ", decoded.message()));
  }
  return absl::OkStatus();
}

absl::Status Router::StreamDecode(Relay& relay, const serving::DecodeRequest& decode,
                                  int worker, WorkerCalls& calls, bool* streamed) {
  serving::ServingMetrics* m = options_.metrics;
  const model::Tokenizer& tok = *options_.tokenizer;
  absl::Time last_token = absl::Now();
  double gap_sum = 0;
  int gaps = 0;
  bool client_gone = false;
  absl::Status decoded =
      calls.Decode(worker, decode, [&](const serving::DecodeChunk& chunk) {
        *streamed = true;
        const int n = static_cast<int>(chunk.tokens.size());
        if (relay.first_pending && n > 0 && m) {
          m->time_to_first_token->Observe(
              absl::ToDoubleSeconds(absl::Now() - relay.arrival));
          m->generation_tokens->Increment(n);
          last_token = absl::Now();
        } else if (m && n > 0) {
          // One gap per token of the chunk (tokens of a chunk arrived together).
          const double gap = absl::ToDoubleSeconds(absl::Now() - last_token) / n;
          for (int i = 0; i < n; ++i) m->inter_token_latency->Observe(gap);
          if (gaps >= 4 && gap > 10 * gap_sum / gaps) m->inter_token_stalls->Increment();
          gap_sum += gap * n;
          gaps += n;
          m->generation_tokens->Increment(n);
          last_token = absl::Now();
        }
        RouteChunk out;
        if (relay.first_pending) out = relay.head;  // colocated: on the first chunk
        relay.first_pending = false;
        for (int t : chunk.tokens) {
          out.tokens.push_back(t);
          if (relay.request.return_text)
            out.text.append(relay.utf8.Push(tok.DecodePiece(relay.prev, t)));
          relay.prev = t;
        }
        if (chunk.finished) {
          out.finished = true;
          if (relay.request.return_text) out.text.append(relay.utf8.Flush());
          out.finish_reason = chunk.finish_reason;
          out.prefill = relay.prefill ? relay.prefill : serving::PrefillStats{};
          out.decode_bytes_fetched = chunk.bytes_fetched;
          out.fp16_equivalent_bytes = chunk.fp16_equivalent_bytes;
          out.stored_bytes = chunk.stored_bytes;
          out.reprefills = relay.head.reprefills;
        }
        if (!relay.sink(out)) {
          client_gone = true;
          return false;
        }
        return true;
      });
  if (client_gone) return absl::CancelledError("the client went away");
  if (m && decoded.ok()) {
    m->e2e_request_latency->Observe(absl::ToDoubleSeconds(absl::Now() - relay.arrival));
  }
  return decoded;
}

}  // namespace kvq::router
