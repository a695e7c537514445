#include "services/router/router.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
  std::unique_ptr<Router> router(new Router(std::move(options)));
  std::vector<absl::Status> errors;
  router->Resolve(&errors);
  for (const absl::Status& e : errors) {
    // A malformed target never resolves: refuse it now. A name without
    // addresses yet (no pod ready) is tried again.
    if (e.code() == absl::StatusCode::kInvalidArgument) return e;
    std::fprintf(stderr, "kvq router: %s (no worker there until it resolves)\n",
                 std::string(e.message()).c_str());
  }
  bool any_dns = false;
  for (const auto* list : {&router->options_.prefill, &router->options_.decode}) {
    for (const std::string& t : *list) any_dns = any_dns || IsDnsTarget(t);
  }
  if (any_dns && router->options_.resolve_interval > absl::ZeroDuration()) {
    Router* r = router.get();
    router->resolve_thread_ = std::thread([r] { r->ResolveLoop(); });
  }
  return router;
}

Router::Router(RouterOptions options) : options_(std::move(options)) {
  if (options_.resolver == nullptr) own_resolver_ = Resolver::System();
  resolver_ = options_.resolver ? options_.resolver : own_resolver_.get();
  colocated_ = options_.prefill.empty();
  prefill_.targets = options_.prefill;
  decode_.targets = options_.decode;
  for (Pool* pool : {&prefill_, &decode_}) {
    for (const std::string& t : pool->targets) {
      if (!IsDnsTarget(t)) pool->resolved[t] = {t};
    }
    RebuildPool(*pool);
  }
}

Router::~Router() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (resolve_thread_.joinable()) resolve_thread_.join();
}

bool Router::RebuildPool(Pool& pool) {
  std::set<std::string> wanted;
  for (const std::string& target : pool.targets) {
    for (const std::string& e : pool.resolved[target]) wanted.insert(e);
  }
  std::vector<std::shared_ptr<Endpoint>> next;
  bool changed = wanted.size() != pool.endpoints.size();
  for (const std::string& address : wanted) {
    auto it = std::find_if(
        pool.endpoints.begin(), pool.endpoints.end(),
        [&](const std::shared_ptr<Endpoint>& e) { return e->address == address; });
    if (it != pool.endpoints.end()) {
      next.push_back(*it);  // keeps its in-flight count
    } else {
      next.push_back(std::make_shared<Endpoint>(address));
      changed = true;
    }
  }
  pool.endpoints = std::move(next);
  return changed;
}

bool Router::Refresh() {
  std::vector<absl::Status> errors;
  const bool changed = Resolve(&errors);
  for (const absl::Status& e : errors) {
    std::fprintf(stderr, "kvq router: %s (keeping the endpoints it had)\n",
                 std::string(e.message()).c_str());
  }
  return changed;
}

bool Router::Resolve(std::vector<absl::Status>* errors) {
  std::lock_guard<std::mutex> refresh(refresh_mu_);
  // Resolve outside mu_ (getaddrinfo may take seconds).
  std::map<std::string, absl::StatusOr<std::vector<std::string>>> results;
  for (const auto* list : {&options_.prefill, &options_.decode}) {
    for (const std::string& t : *list) {
      if (IsDnsTarget(t) && !results.count(t)) results.emplace(t, resolver_->Resolve(t));
    }
  }
  for (const auto& [target, r] : results) {
    if (!r.ok()) errors->push_back(r.status());
  }
  bool changed = false;
  std::vector<std::string> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Pool* pool : {&prefill_, &decode_}) {
      for (const std::string& t : pool->targets) {
        auto it = results.find(t);
        if (it != results.end() && it->second.ok()) pool->resolved[t] = *it->second;
      }
      changed = RebuildPool(*pool) || changed;
    }
    last_refresh_ = absl::Now();
    refresh_requested_ = false;
    for (const Pool* pool : {&prefill_, &decode_}) {
      for (const auto& e : pool->endpoints) all.push_back(e->address);
    }
  }
  if (changed && options_.on_endpoints_changed) options_.on_endpoints_changed(all);
  return changed;
}

void Router::RequestRefresh() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    refresh_requested_ = true;
  }
  cv_.notify_all();
}

void Router::ResolveLoop() {
  // A requested refresh waits until a second after the last one, so a burst
  // of failures costs one resolution.
  constexpr absl::Duration kMinGap = absl::Seconds(1);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const absl::Time periodic = last_refresh_ + options_.resolve_interval;
    const absl::Time early = last_refresh_ + kMinGap;
    const absl::Time due = refresh_requested_ ? std::min(periodic, early) : periodic;
    if (absl::Now() < due) {
      cv_.wait_for(lock, absl::ToChronoNanoseconds(std::min(due - absl::Now(), kMinGap)));
      continue;
    }
    lock.unlock();
    Refresh();
    lock.lock();
  }
}

std::vector<std::string> Router::Endpoints(const Pool& pool) const {
  std::vector<std::string> out;
  for (const auto& e : pool.endpoints) out.push_back(e->address);
  return out;
}

std::vector<std::string> Router::prefill_endpoints() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Endpoints(prefill_);
}

std::vector<std::string> Router::decode_endpoints() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Endpoints(decode_);
}

void Router::MarkDown(Endpoint& e) {
  e.down_until = absl::ToUnixNanos(absl::Now() + kDownFor);
}

std::shared_ptr<Router::Endpoint> Router::Pick(Pool& pool, const Endpoint* exclude) {
  // An endpoint that just answered UNAVAILABLE fails fast, so it would look
  // idle and attract every request: it is picked only when all others are
  // down too (a penalty far above any real load).
  constexpr int kDownPenalty = 1 << 20;
  const int64_t now = absl::ToUnixNanos(absl::Now());
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int> load;
  int excluded = -1;
  for (size_t i = 0; i < pool.endpoints.size(); ++i) {
    const Endpoint& e = *pool.endpoints[i];
    load.push_back(e.in_flight + (now < e.down_until ? kDownPenalty : 0));
    if (pool.endpoints[i].get() == exclude) excluded = static_cast<int>(i);
  }
  if (load.empty()) return nullptr;
  const int i =
      PickLeastLoaded(load, excluded, static_cast<int>(pool.next++ % load.size()));
  return i < 0 ? nullptr : pool.endpoints[i];
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
  const std::string& kv = request.kv.empty() ? options_.default_kv : request.kv;

  // ---- colocated: the decode worker runs the prompt itself ----
  if (colocated_) {
    if (m) m->prompt_tokens->Increment(prompt.size());
    serving::DecodeRequest decode;
    decode.prompt = prompt;
    decode.kv = kv;
    decode.generation = generation;
    return RelayDecode(relay, std::move(decode), nullptr, calls, cancelled);
  }

  // ---- prefill, retried once on another worker ----
  serving::PrefillRequest prefill_request{prompt, std::nullopt, kv, generation};
  int attempts = 0;
  std::string worker;
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
  head.prefill_worker = worker;
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
    const serving::CancelledFn& cancelled, int* attempts, std::string* worker) {
  absl::StatusOr<serving::PrefillResult> result = absl::UnavailableError(absl::StrCat(
      "no prefill worker (", absl::StrJoin(options_.prefill, ","), " named none)"));
  *attempts = 0;
  std::shared_ptr<Endpoint> failed;
  while (*attempts < 2) {
    std::shared_ptr<Endpoint> w = Pick(prefill_, failed.get());
    if (w == nullptr) break;
    *worker = w->address;
    ++*attempts;
    {
      LoadGuard load(&w->in_flight);
      result = calls.Prefill(w->address, request);
    }
    if (result.ok() || (cancelled && cancelled()) ||
        !IsRetryablePrefillError(result.status().code())) {
      break;
    }
    if (result.status().code() == absl::StatusCode::kUnavailable) {
      MarkDown(*w);
      RequestRefresh();
    }
    failed = std::move(w);
  }
  if (result.ok() || *attempts == 0) return result;
  return absl::Status(
      result.status().code(),
      absl::StrCat("prefill worker ", *worker, ": ", result.status().message()));
}

absl::Status Router::RelayDecode(Relay& relay, serving::DecodeRequest decode,
                                 const serving::PrefillRequest* prefill,
                                 WorkerCalls& calls,
                                 const serving::CancelledFn& cancelled) {
  serving::ServingMetrics* m = options_.metrics;
  std::shared_ptr<Endpoint> d = Pick(decode_, nullptr);
  if (d == nullptr) {
    RequestRefresh();
    return absl::UnavailableError(absl::StrCat(
        "no decode worker (", absl::StrJoin(options_.decode, ","), " named none)"));
  }
  relay.head.decode_worker = d->address;
  // Disaggregated, the head (with the first token) goes out now; colocated,
  // it rides on the decode worker's first chunk.
  relay.first_pending = !decode.handle.has_value();
  if (!relay.first_pending) {
    if (!relay.sink(relay.head)) return absl::CancelledError("the client went away");
  }
  bool streamed = false;  // the decode worker sent something
  relay.head.reprefills = 0;
  absl::Status decoded;
  {
    LoadGuard load(&d->in_flight);
    decoded = StreamDecode(relay, decode, d->address, calls, &streamed);
  }
  if (decoded.code() == absl::StatusCode::kUnavailable && !streamed &&
      !(cancelled && cancelled())) {
    // Unreachable (a dead or restarting pod) before it sent anything: the
    // request goes to another decode worker, once. (Disaggregated, the head
    // already named the first one.)
    MarkDown(*d);
    RequestRefresh();
    if (std::shared_ptr<Endpoint> other = Pick(decode_, d.get()); other != nullptr) {
      d = std::move(other);
      relay.head.decode_worker = d->address;
      LoadGuard load(&d->in_flight);
      decoded = StreamDecode(relay, decode, d->address, calls, &streamed);
    }
  }
  LoadGuard load(&d->in_flight);
  if (decoded.code() == absl::StatusCode::kNotFound && !streamed && prefill != nullptr &&
      !(cancelled && cancelled())) {
    // The handle's blocks were evicted before the decode worker fetched them:
    // put them back with a fresh prefill, once.
    if (m) m->reprefills->Increment();
    int attempts = 0;
    std::string worker;
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
    decoded = StreamDecode(relay, decode, d->address, calls, &streamed);
  }
  if (cancelled && cancelled()) return absl::CancelledError("the client cancelled");
  if (!decoded.ok()) {
    if (decoded.code() == absl::StatusCode::kUnavailable) {
      MarkDown(*d);
      RequestRefresh();
    }
    return absl::Status(decoded.code(), absl::StrCat("decode worker ", d->address, ": ",
                                                     decoded.message()));
  }
  return absl::OkStatus();
}

absl::Status Router::StreamDecode(Relay& relay, const serving::DecodeRequest& decode,
                                  const std::string& worker, WorkerCalls& calls,
                                  bool* streamed) {
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
