#include "services/bench/overlap_bench.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/child_process.h"
#include "common/status_macros.h"
#include "grpcpp/create_channel.h"
#include "proto/serving.grpc.pb.h"
#include "services/bench/netns_link.h"
#include "services/launcher/health_check.h"
#include "services/launcher/launcher.h"

namespace kvq::bench {
namespace {

constexpr absl::Duration kStartTimeout = absl::Minutes(2);

absl::StatusOr<std::unique_ptr<ChildProcess>> StartService(
    const std::string& name, const std::vector<std::string>& argv, pid_t group,
    bool verbose) {
  ChildOptions opts;
  opts.listen_timeout = kStartTimeout;
  opts.process_group = group;
  opts.echo_output = verbose;
  auto child = ChildProcess::Start(name, argv, opts);
  if (!child.ok()) {
    return absl::Status(child.status().code(),
                        absl::StrCat("starting ", name, " (", absl::StrJoin(argv, " "),
                                     "): ", child.status().message()));
  }
  if (absl::Status s = launcher::WaitHealthy((*child)->address(), kStartTimeout);
      !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat(name, ": ", s.message(), "\n", (*child)->Output()));
  }
  return child;
}

// One prefill of a fresh prompt (nothing of it in the store).
absl::StatusOr<v1::PrefillStats> PrefillOnce(const std::string& address,
                                             const std::string& kv, int tokens,
                                             uint64_t stream, int vocab) {
  auto stub = v1::Prefill::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  v1::PrefillRequest req;
  const std::vector<int> ids = BenchTokens(tokens, stream, vocab, true);
  req.mutable_tokens()->Add(ids.begin(), ids.end());
  req.mutable_cache()->set_kv(kv);
  req.mutable_sampling()->set_temperature(0);
  req.mutable_sampling()->set_max_tokens(1);
  v1::PrefillResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(10)));
  if (grpc::Status s = stub->Prefill(&ctx, req, &resp); !s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        absl::StrCat("prefill at ", address, ": ", s.error_message()));
  }
  if (resp.stats().blocks_reused() != 0) {
    return absl::InternalError("a fresh overlap prompt reused blocks from the store");
  }
  return resp.stats();
}

}  // namespace

absl::StatusOr<OverlapRow> TransferOverlap(const OverlapOptions& o) {
  if (o.prompt_tokens < 2 || o.runs < 1 || o.transfer_ratio < 0.5) {
    return absl::InvalidArgumentError(
        "need prompt_tokens >= 2, runs >= 1 and transfer_ratio >= 0.5");
  }
  KVQ_ASSIGN_OR_RETURN(model::ModelConfig config, BenchModelConfigOf(o.model.model));
  if (o.prompt_tokens + 1 > config.seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt_tokens exceeds the model's seq_len ", config.seq_len));
  }
  const std::string bin = launcher::FindKvqBinary();
  if (bin.empty()) return absl::NotFoundError("kvq binary not found (set KVQ_BINARY)");
  KVQ_ASSIGN_OR_RETURN(std::unique_ptr<NetnsLink> link, NetnsLink::Create());

  // Declared after `link`: the services stop before the namespace goes.
  std::vector<std::string> store_argv = link->ExecPrefix();
  for (const std::string& a : {bin, std::string("serve"), std::string("store"),
                               absl::StrCat("--address=", link->inner_address(), ":0")}) {
    store_argv.push_back(a);
  }
  KVQ_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> store,
                       StartService("store", store_argv, 0, o.verbose));
  const pid_t group = store->process_group();
  const std::string store_flag = absl::StrCat("--store=", store->address());
  const std::string model_flag = absl::StrCat("--model=", o.model.model);
  KVQ_ASSIGN_OR_RETURN(
      std::unique_ptr<ChildProcess> streaming,
      StartService("prefill-streaming",
                   {bin, "serve", "prefill", "--worker_port=0", model_flag, store_flag},
                   group, o.verbose));
  KVQ_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> after,
                       StartService("prefill-after",
                                    {bin, "serve", "prefill", "--worker_port=0",
                                     model_flag, store_flag, "--push_after_prefill"},
                                    group, o.verbose));

  uint64_t stream = 0x0E7E;  // prompt streams, fresh for every prefill
  auto prefill = [&](ChildProcess* worker, int tokens) {
    return PrefillOnce(worker->address(), o.kv, tokens, ++stream, config.vocab_size);
  };
  // Warm-up: threads, connections and the store's first allocation.
  const int warm_tokens = std::min(o.prompt_tokens, 64);
  KVQ_RETURN_IF_ERROR(prefill(streaming.get(), warm_tokens).status());
  KVQ_RETURN_IF_ERROR(prefill(after.get(), warm_tokens).status());

  // ---- calibration, uncapped ----
  OverlapRow row;
  row.kv = o.kv;
  row.prompt_tokens = o.prompt_tokens;
  row.runs = o.runs;
  // Compute time: the median of uncapped prefills alternating between the two
  // workers (the machine's load moves it by tens of percent).
  std::vector<double> cal_compute, cal_exposed;
  for (int i = 0; i < 3; ++i) {
    KVQ_ASSIGN_OR_RETURN(
        v1::PrefillStats cal,
        prefill(i % 2 == 0 ? streaming.get() : after.get(), o.prompt_tokens));
    row.layers = static_cast<int>(cal.layers());
    row.bytes_pushed = cal.bytes_pushed();
    cal_compute.push_back(cal.compute_seconds());
    if (i % 2 == 0) cal_exposed.push_back(cal.transfer_exposed_seconds());
  }
  row.calibration_compute_s = Median(cal_compute);
  row.calibration_exposed_s = Median(cal_exposed);
  if (row.layers < 1 || row.bytes_pushed == 0 || row.calibration_compute_s <= 0) {
    return absl::InternalError(absl::StrCat(
        "the calibration prefills reported ", row.layers, " layers, ", row.bytes_pushed,
        " bytes pushed and ", row.calibration_compute_s, " s of compute"));
  }
  row.cap_bits_per_s = std::max<uint64_t>(
      8000, static_cast<uint64_t>(static_cast<double>(row.bytes_pushed) * 8 /
                                  (o.transfer_ratio * row.calibration_compute_s)));
  row.whole_transfer_s =
      static_cast<double>(row.bytes_pushed) * 8 / static_cast<double>(row.cap_bits_per_s);
  row.layer_share_s = row.whole_transfer_s / row.layers;

  // ---- capped: the two workers alternate, the first swapping every run ----
  KVQ_RETURN_IF_ERROR(link->SetRate(row.cap_bits_per_s));
  for (int r = 0; r < o.runs; ++r) {
    for (int k = 0; k < 2; ++k) {
      const bool is_streaming = (k == 0) == (r % 2 == 0);
      KVQ_ASSIGN_OR_RETURN(
          v1::PrefillStats st,
          prefill(is_streaming ? streaming.get() : after.get(), o.prompt_tokens));
      (is_streaming ? row.streaming_exposed_runs : row.after_exposed_runs)
          .push_back(st.transfer_exposed_seconds());
      (is_streaming ? row.streaming_compute_runs : row.after_compute_runs)
          .push_back(st.compute_seconds());
    }
  }
  (void)link->SetRate(0);
  row.streaming_exposed_s = Median(row.streaming_exposed_runs);
  row.after_exposed_s = Median(row.after_exposed_runs);
  row.streaming_compute_s = Median(row.streaming_compute_runs);
  row.after_compute_s = Median(row.after_compute_runs);
  row.streaming_exposed_layer_shares = row.streaming_exposed_s / row.layer_share_s;
  after->Stop();
  streaming->Stop();
  store->Stop();
  return row;
}

}  // namespace kvq::bench
