#include "tests/integration/serving_test_util.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/paths.h"
#include "gtest/gtest.h"
#include "tests/common/http_get.h"

namespace kvq::testing {

launcher::ClusterOptions TestClusterOptions() {
  launcher::ClusterOptions o;
  o.model = DefaultModelDir();
  o.prefill_flags = {"--metrics_port=0"};
  o.decode_flags = {"--metrics_port=0"};
  o.router_flags = {"--metrics_port=0"};
  o.start_timeout = absl::Seconds(20);
  return o;
}

namespace {

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

}  // namespace

StreamResult RouterGenerate(const std::string& address,
                            const v1::GenerateRequest& request, absl::Duration timeout) {
  auto stub = v1::Router::NewStub(Channel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  StreamResult r;
  const absl::Time start = absl::Now();
  auto reader = stub->Generate(&ctx, request);
  v1::GenerateResponse msg;
  bool first = true;
  while (reader->Read(&msg)) {
    if (first) r.first = msg;
    first = false;
    r.tokens.insert(r.tokens.end(), msg.tokens().begin(), msg.tokens().end());
    r.text += msg.text();
    if (msg.finished()) r.last = msg;
  }
  r.status = reader->Finish();
  r.elapsed = absl::Now() - start;
  return r;
}

std::vector<int> Prompt(int n, int salt) {
  std::vector<int> p = {1};
  for (int i = 1; i < n; ++i) p.push_back(259 + (i * 31 + salt) % 250);
  return p;
}

OpenRouterStream::OpenRouterStream(const std::string& address,
                                   const v1::GenerateRequest& request, int min_tokens,
                                   absl::Duration timeout)
    : stub_(v1::Router::NewStub(Channel(address))) {
  ctx_.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  reader_ = stub_->Generate(&ctx_, request);
  v1::GenerateResponse msg;
  while (tokens_ < min_tokens && reader_->Read(&msg)) tokens_ += msg.tokens_size();
}

grpc::Status OpenRouterStream::Drain() {
  v1::GenerateResponse msg;
  while (reader_->Read(&msg)) tokens_ += msg.tokens_size();
  return reader_->Finish();
}

StreamResult ColocatedGenerate(const std::string& address, const std::vector<int>& prompt,
                               const std::string& kv, int max_tokens) {
  auto stub = v1::Decode::NewStub(Channel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::DecodeRequest req;
  req.mutable_prompt()->mutable_ids()->Add(prompt.begin(), prompt.end());
  req.mutable_cache()->set_kv(kv);
  req.mutable_sampling()->set_max_tokens(max_tokens);
  StreamResult r;
  const absl::Time start = absl::Now();
  auto reader = stub->Generate(&ctx, req);
  v1::DecodeResponse msg;
  while (reader->Read(&msg)) {
    r.tokens.insert(r.tokens.end(), msg.tokens().begin(), msg.tokens().end());
    if (msg.finished()) r.decode_last = msg;
  }
  r.status = reader->Finish();
  r.elapsed = absl::Now() - start;
  return r;
}

grpc::Status Prefill(const std::string& address, const v1::PrefillRequest& request,
                     v1::PrefillResponse* response) {
  auto stub = v1::Prefill::NewStub(Channel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  return stub->Prefill(&ctx, request, response);
}

namespace {

// GetStats of a Prefill or Decode worker (both answer WorkerStats).
template <typename Service>
v1::WorkerStats WorkerStats(const std::string& address) {
  auto stub = Service::NewStub(Channel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::WorkerStats out;
  const grpc::Status s = stub->GetStats(&ctx, v1::StatsRequest(), &out);
  if (!s.ok()) ADD_FAILURE() << "GetStats of " << address << ": " << s.error_message();
  return out;
}

}  // namespace

v1::WorkerStats PrefillStats(const std::string& address) {
  return WorkerStats<v1::Prefill>(address);
}

v1::WorkerStats DecodeStats(const std::string& address) {
  return WorkerStats<v1::Decode>(address);
}

v1::StoreStatsResponse StoreStats(const std::string& address) {
  auto stub = v1::KvStore::NewStub(Channel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::StoreStatsResponse out;
  stub->Stats(&ctx, v1::StoreStatsRequest(), &out);
  return out;
}

absl::StatusOr<std::string> MetricsPage(ChildProcess* child) {
  int port = 0;
  for (absl::string_view line : absl::StrSplit(child->Output(), '\n')) {
    const size_t at = line.find(" metrics on ");
    if (at == absl::string_view::npos) continue;
    absl::string_view addr = line.substr(at + 12);
    const size_t colon = addr.rfind(':');
    if (colon != absl::string_view::npos) {
      (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(addr.substr(colon + 1)), &port);
    }
  }
  if (port <= 0) return absl::NotFoundError("no 'metrics on' line from " + child->name());
  std::string status;
  std::string page = testing::LoopbackHttpGet(port, "/metrics", &status);
  if (!absl::StrContains(status, " 200 ")) {
    return absl::UnavailableError(
        absl::StrCat("GET /metrics on port ", port, ": '", status, "'"));
  }
  return page;
}

absl::StatusOr<double> ScrapeMetric(ChildProcess* child, const std::string& name) {
  absl::StatusOr<std::string> page = MetricsPage(child);
  if (!page.ok()) return page.status();
  for (absl::string_view line : absl::StrSplit(*page, '\n')) {
    if (!absl::StartsWith(line, name)) continue;
    absl::string_view rest = line.substr(name.size());
    if (!rest.empty() && rest[0] != '{' && rest[0] != ' ') continue;
    const size_t sp = rest.rfind(' ');
    double v = 0;
    if (sp != absl::string_view::npos && absl::SimpleAtod(rest.substr(sp + 1), &v))
      return v;
  }
  return absl::NotFoundError(name + " not on the /metrics page");
}

v1::GenerateRequest GreedyRequest(const std::vector<int>& prompt, const std::string& kv,
                                  int max_tokens) {
  v1::GenerateRequest r;
  r.mutable_tokens()->mutable_ids()->Add(prompt.begin(), prompt.end());
  r.mutable_cache()->set_kv(kv);
  r.mutable_sampling()->set_max_tokens(max_tokens);
  return r;
}

}  // namespace kvq::testing
