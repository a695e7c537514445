#include "services/bench/serve_bench.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "grpcpp/create_channel.h"
#include "model/kv_cache.h"
#include "model/kv_mode.h"
#include "model/model_loader.h"
#include "model/synthetic_model.h"
#include "proto/serving.grpc.pb.h"
#include "services/launcher/launcher.h"
#include "services/launcher/synthetic_model_files.h"
#include "services/serving/kv_plan.h"

namespace kvq::bench {
namespace {

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

v1::SamplingParams Greedy(int max_tokens) {
  v1::SamplingParams p;
  p.set_temperature(0);
  p.set_max_tokens(max_tokens);
  p.set_ignore_eos(true);
  return p;
}

// One request's stream as the client saw it.
struct Trace {
  grpc::Status status;
  int tokens = 0;
  double ttft_s = -1;
  std::vector<double> itl_s;  // one entry per token after the first message's
  absl::Time finished;
  v1::PrefillStats prefill;
};

Trace RouterStream(v1::Router::Stub* stub, const v1::GenerateRequest& request,
                   absl::Time deadline) {
  Trace t;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  const absl::Time sent = absl::Now();
  absl::Time prev = sent;
  auto reader = stub->Generate(&ctx, request);
  v1::GenerateResponse msg;
  while (reader->Read(&msg)) {
    const absl::Time now = absl::Now();
    if (msg.tokens_size() > 0) {
      if (t.ttft_s < 0) {
        t.ttft_s = absl::ToDoubleSeconds(now - sent);
      } else {
        const double gap = absl::ToDoubleSeconds(now - prev) / msg.tokens_size();
        for (int i = 0; i < msg.tokens_size(); ++i) t.itl_s.push_back(gap);
      }
      prev = now;
      t.tokens += msg.tokens_size();
    }
    if (msg.finished()) t.prefill = msg.prefill();
  }
  t.status = reader->Finish();
  t.finished = absl::Now();
  return t;
}

}  // namespace

absl::StatusOr<model::ModelConfig> BenchModelConfigOf(const std::string& model) {
  if (model::IsSyntheticSpec(model)) {
    KVQ_ASSIGN_OR_RETURN(model::SyntheticSpec spec, model::ParseSyntheticSpec(model));
    return spec.config;
  }
  KVQ_ASSIGN_OR_RETURN(model::LoadedModel loaded, model::LoadModel(model));
  return loaded.model->config;
}

absl::Status WriteBenchTokenizer(const std::string& dir, BenchModel* m) {
  if (!model::IsSyntheticSpec(m->model) || !m->tokenizer.empty()) {
    return absl::OkStatus();
  }
  KVQ_ASSIGN_OR_RETURN(model::SyntheticSpec spec, model::ParseSyntheticSpec(m->model));
  // The launcher's byte-level llama2.c tokenizer, at the model's vocabulary.
  KVQ_ASSIGN_OR_RETURN(m->tokenizer,
                       launcher::WriteByteTokenizer(dir, spec.config.vocab_size));
  return absl::OkStatus();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(v.size()));
  const size_t i = static_cast<size_t>(std::max(1.0, rank)) - 1;
  return v[std::min(i, v.size() - 1)];
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::vector<int> BenchTokens(int n, uint64_t stream, int vocab, bool with_bos) {
  const int hi = std::min(vocab, 512);
  std::vector<int> out;
  out.reserve(n);
  uint64_t x = 0x9E3779B97F4A7C15ull * (stream + 1);
  for (int i = 0; i < n; ++i) {
    if (i == 0 && with_bos) {
      out.push_back(1);
      continue;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out.push_back(3 + static_cast<int>(x % static_cast<uint64_t>(hi - 3)));
  }
  return out;
}

absl::StatusOr<ThroughputRow> DecodeThroughput(const ThroughputOptions& o,
                                               const std::string& kv) {
  if (o.prompts < 1 || o.prompt_tokens < 2 || o.suffix_tokens < 1 || o.requests < 1 ||
      o.gen_tokens < 1 || o.budget_sequences < 1) {
    return absl::InvalidArgumentError(
        "need prompts >= 1, prompt_tokens >= 2, suffix_tokens, requests, gen_tokens "
        "and budget_sequences >= 1");
  }
  KVQ_ASSIGN_OR_RETURN(model::ModelConfig config, BenchModelConfigOf(o.model.model));
  const model::KvCacheShape shape = model::KvCacheShape::Of(config);
  const int total = o.prompt_tokens + o.suffix_tokens + o.gen_tokens;
  if (total > config.seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt + suffix + generated = ", total,
                     " tokens exceed the model's seq_len ", config.seq_len));
  }
  KVQ_ASSIGN_OR_RETURN(model::KvMode fp16, model::ParseKvMode("fp16"));
  KVQ_ASSIGN_OR_RETURN(fp16, fp16.Resolve(shape.head_dim));
  KVQ_ASSIGN_OR_RETURN(model::KvMode mode, model::ParseKvMode(kv));
  KVQ_ASSIGN_OR_RETURN(mode, mode.Resolve(shape.head_dim));

  ThroughputRow row;
  row.kv = kv;
  row.requests = o.requests;
  row.prompt_tokens = o.prompt_tokens;
  row.suffix_tokens = o.suffix_tokens;
  row.gen_tokens = o.gen_tokens;
  row.kv_budget_bytes = o.budget_sequences * serving::CacheBytes(fp16, shape, total);
  row.sequence_bytes = serving::CacheBytes(mode, shape, total);
  row.sequences_fit = static_cast<int>(row.kv_budget_bytes / row.sequence_bytes);

  launcher::ClusterOptions co;
  co.model = o.model.model;
  if (!o.model.tokenizer.empty()) {
    co.router_flags.push_back("--tokenizer=" + o.model.tokenizer);
  }
  co.prefill_flags.push_back("--weights=" + o.model.weights);
  co.decode_flags.push_back("--weights=" + o.model.weights);
  if (!o.model.kernel_variant.empty()) {
    co.prefill_flags.push_back("--kernel_variant=" + o.model.kernel_variant);
    co.decode_flags.push_back("--kernel_variant=" + o.model.kernel_variant);
  }
  co.decode_kv_budget_bytes = static_cast<long long>(row.kv_budget_bytes);
  // Room for every warmed prompt and every request's whole cache, in fp16
  // (far more than needed: the requests share the warmed blocks), so that
  // nothing of the workload is evicted. A limit, not an allocation.
  const uint64_t store_bytes =
      static_cast<uint64_t>(o.prompts + o.requests) *
      serving::CacheBytes(fp16, shape, o.prompt_tokens + o.suffix_tokens);
  co.store_flags.push_back(absl::StrCat(
      "--capacity_bytes=", std::max<uint64_t>(store_bytes, uint64_t{1} << 30)));
  co.echo_output = o.verbose;
  co.start_timeout = absl::Minutes(2);  // a synthetic model's weights take a while
  KVQ_ASSIGN_OR_RETURN(std::unique_ptr<launcher::Cluster> cluster,
                       launcher::Cluster::Start(co));

  // ---- warm the store: each prompt's cache as its requests will plan it ----
  // Warmed with a filler suffix of the requests' length, so that under the
  // residual rule the prompt's blocks get the encodings the requests give
  // them (a bare prompt would leave its last R tokens fp16, and a kivi
  // request would recompute them).
  const absl::Time warm_start = absl::Now();
  std::vector<std::vector<int>> prompts;
  {
    auto prefill = v1::Prefill::NewStub(Channel(cluster->prefill_addresses()[0]));
    for (int p = 0; p < o.prompts; ++p) {
      prompts.push_back(BenchTokens(o.prompt_tokens, p, config.vocab_size, true));
      std::vector<int> tokens = prompts.back();
      const std::vector<int> filler =
          BenchTokens(o.suffix_tokens, 1000 + p, config.vocab_size, false);
      tokens.insert(tokens.end(), filler.begin(), filler.end());
      v1::PrefillRequest req;
      req.mutable_tokens()->Add(tokens.begin(), tokens.end());
      req.mutable_cache()->set_kv(kv);
      *req.mutable_sampling() = Greedy(1);
      v1::PrefillResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(10)));
      if (grpc::Status s = prefill->Prefill(&ctx, req, &resp); !s.ok()) {
        return FromGrpc(s, absl::StrCat("warming prompt ", p));
      }
    }
  }
  auto router = v1::Router::NewStub(Channel(cluster->router_address()));
  {
    // Connects every hop before the measured phase; shares no block with it.
    v1::GenerateRequest warm;
    warm.mutable_tokens()->add_ids(1);
    warm.mutable_cache()->set_kv(kv);
    *warm.mutable_sampling() = Greedy(2);
    Trace t = RouterStream(router.get(), warm, absl::Now() + absl::Minutes(5));
    if (!t.status.ok()) return FromGrpc(t.status, "warm-up request");
  }
  row.warm_seconds = absl::ToDoubleSeconds(absl::Now() - warm_start);

  // ---- the measured phase: every request at once ----
  auto decode = v1::Decode::NewStub(Channel(cluster->decode_addresses()[0]));
  uint64_t waited_before = 0, steps_before = 0, tokens_before = 0;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    v1::WorkerStats stats;
    if (grpc::Status s = decode->GetStats(&ctx, v1::StatsRequest(), &stats); !s.ok()) {
      return FromGrpc(s, "decode GetStats");
    }
    waited_before = stats.requests_waited_total();
    steps_before = stats.decode_steps_total();
    tokens_before = stats.decode_tokens_total();
  }
  std::vector<v1::GenerateRequest> requests(o.requests);
  for (int i = 0; i < o.requests; ++i) {
    std::vector<int> tokens = prompts[i % o.prompts];
    const std::vector<int> suffix =
        BenchTokens(o.suffix_tokens, 10000 + i, config.vocab_size, false);
    tokens.insert(tokens.end(), suffix.begin(), suffix.end());
    requests[i].mutable_tokens()->mutable_ids()->Add(tokens.begin(), tokens.end());
    requests[i].mutable_cache()->set_kv(kv);
    *requests[i].mutable_sampling() = Greedy(o.gen_tokens);
  }
  std::vector<Trace> traces(o.requests);
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + o.timeout;
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < o.requests; ++i) {
      threads.emplace_back(
          [&, i] { traces[i] = RouterStream(router.get(), requests[i], deadline); });
    }
    for (std::thread& t : threads) t.join();
  }
  absl::Time end = start;
  std::vector<double> ttft, itl;
  double computed = 0;
  for (int i = 0; i < o.requests; ++i) {
    const Trace& t = traces[i];
    if (!t.status.ok()) return FromGrpc(t.status, absl::StrCat("request ", i));
    if (t.tokens != o.gen_tokens) {
      return absl::InternalError(absl::StrCat("request ", i, " generated ", t.tokens,
                                              " tokens, not ", o.gen_tokens));
    }
    end = std::max(end, t.finished);
    ttft.push_back(t.ttft_s);
    itl.insert(itl.end(), t.itl_s.begin(), t.itl_s.end());
    computed += static_cast<double>(t.prefill.tokens_computed());
    row.tokens += t.tokens;
  }
  row.seconds = absl::ToDoubleSeconds(end - start);
  row.tokens_per_s = row.seconds > 0 ? row.tokens / row.seconds : 0;
  row.ttft_p50_ms = Percentile(ttft, 50) * 1e3;
  row.ttft_p99_ms = Percentile(ttft, 99) * 1e3;
  row.itl_p50_ms = Percentile(itl, 50) * 1e3;
  row.itl_p99_ms = Percentile(itl, 99) * 1e3;
  row.mean_tokens_computed = computed / o.requests;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    v1::WorkerStats stats;
    if (grpc::Status s = decode->GetStats(&ctx, v1::StatsRequest(), &stats); !s.ok()) {
      return FromGrpc(s, "decode GetStats");
    }
    row.requests_waited = stats.requests_waited_total() - waited_before;
    const uint64_t steps = stats.decode_steps_total() - steps_before;
    if (steps > 0) {
      row.mean_batch =
          static_cast<double>(stats.decode_tokens_total() - tokens_before) / steps;
      row.mean_step_ms = row.seconds * 1e3 / static_cast<double>(steps);
    }
  }
  cluster->Stop();
  return row;
}

}  // namespace kvq::bench
