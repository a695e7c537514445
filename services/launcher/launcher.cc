#include "services/launcher/launcher.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "services/launcher/health_check.h"

namespace kvq::launcher {

std::string FindKvqBinary() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (const char* env = std::getenv("KVQ_BINARY"); env && *env) return env;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && self.filename() == "kvq") return self.string();
  for (const char* var : {"TEST_SRCDIR", "RUNFILES_DIR"}) {
    if (const char* dir = std::getenv(var); dir && *dir) {
      const fs::path p = fs::path(dir) / "kvq" / "kvq";
      if (fs::exists(p, ec)) return p.string();
    }
  }
  return "";
}

absl::StatusOr<std::unique_ptr<ChildProcess>> Cluster::StartOne(
    const std::string& name, std::vector<std::string> argv) {
  ChildOptions opts;
  opts.listen_timeout = options_.start_timeout;
  opts.process_group = group_;
  opts.echo_output = options_.echo_output;
  // The services' OpenMP threads spin briefly, then sleep, at the end of a
  // parallel region (libgomp's default spins ~300000 times): the services
  // share the machine's cores, and a thread spinning while its partner is
  // preempted only holds the partner back (docs/performance.md, "OpenMP
  // waits"). Unless the user's environment sets a policy of its own.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    opts.env_defaults.push_back(std::string("GOMP_SPINCOUNT=") + kServiceSpinCount);
  }
  auto child = ChildProcess::Start(name, argv, opts);
  if (!child.ok()) {
    return absl::Status(child.status().code(),
                        absl::StrCat("starting ", name, " (", absl::StrJoin(argv, " "),
                                     "): ", child.status().message()));
  }
  if (group_ == 0) group_ = (*child)->process_group();
  // The command line that brings it back on the same port (Restart).
  const std::string port = std::to_string((*child)->port());
  for (std::string& a : argv) {
    if (a == "--port=0") a = "--port=" + port;
    if (a == "--worker_port=0") a = "--worker_port=" + port;
  }
  argv_[name] = argv;
  absl::StatusOr<services::ChannelSecurity> security =
      services::ChannelSecurity::Create(client_tls_);
  if (!security.ok()) return security.status();
  if (absl::Status s =
          WaitHealthy((*child)->address(), options_.start_timeout, *security);
      !s.ok()) {
    std::string out = (*child)->Output();
    (*child)->Stop(absl::Seconds(1));
    return absl::Status(s.code(), absl::StrCat(name, ": ", s.message(), "\n", out));
  }
  return child;
}

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::Start(const ClusterOptions& options) {
  if (options.prefill_workers < 0 || options.decode_workers < 1) {
    return absl::InvalidArgumentError("need >= 0 prefill workers and >= 1 decode worker");
  }
  if (options.with_store && options.prefill_workers < 1) {
    return absl::InvalidArgumentError("a disaggregated cluster needs a prefill worker");
  }
  std::unique_ptr<Cluster> c(new Cluster());
  c->options_ = options;
  std::string& bin = c->options_.kvq_binary;
  if (bin.empty()) bin = FindKvqBinary();
  if (bin.empty()) {
    return absl::NotFoundError("kvq binary not found (set KVQ_BINARY)");
  }
  const std::string model_flag = absl::StrCat("--model=", options.model);
  auto with = [](std::vector<std::string> argv, const std::vector<std::string>& extra) {
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  };
  // Locked down: certificates and tokens first; each role's flags.
  std::vector<std::string> store_tls, prefill_tls, decode_tls, router_tls;
  if (options.tls) {
    char tmpl[] = "/tmp/kvq-tls-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      return absl::InternalError("cannot create a directory for certificates");
    }
    c->credentials_dir_ = tmpl;
    absl::StatusOr<ClusterCredentials> creds = MakeClusterCredentials(tmpl);
    if (!creds.ok()) return creds.status();
    c->credentials_ = std::move(*creds);
    const ClusterCredentials& cc = c->credentials_;
    c->client_tls_ = cc.client;
    store_tls = with(ClusterCredentials::Flags(cc.store),
                     {"--writer_identities=" + cc.worker_identity,
                      "--writer_token_file=" + cc.writer_token_file,
                      "--admin_token_file=" + cc.admin_token_file});
    prefill_tls = with(ClusterCredentials::Flags(cc.worker),
                       {"--store_token_file=" + cc.writer_token_file});
    decode_tls = prefill_tls;
    router_tls = ClusterCredentials::Flags(cc.router);
  }

  if (options.with_store && options.store_shards < 1) {
    return absl::InvalidArgumentError("need >= 1 store shard");
  }
  std::string store_flag;
  for (int i = 0; options.with_store && i < options.store_shards; ++i) {
    // The first shard is "store" (as with one), the others "store-1", ...
    auto store = c->StartOne(
        i == 0 ? "store" : absl::StrCat("store-", i),
        with(with({bin, "serve", "store", "--port=0"}, store_tls), options.store_flags));
    if (!store.ok()) return store.status();
    c->stores_.push_back(std::move(*store));
  }
  if (options.with_store) {
    store_flag = absl::StrCat("--store=", absl::StrJoin(c->store_addresses(), ","));
  }
  for (int i = 0; options.with_store && i < options.prefill_workers; ++i) {
    auto p = c->StartOne(
        absl::StrCat("prefill-", i),
        with(with({bin, "serve", "prefill", "--worker_port=0", model_flag, store_flag},
                  prefill_tls),
             options.prefill_flags));
    if (!p.ok()) return p.status();
    c->prefill_.push_back(std::move(*p));
  }
  for (int i = 0; i < options.decode_workers; ++i) {
    std::vector<std::string> argv =
        with({bin, "serve", "decode", "--worker_port=0", model_flag}, decode_tls);
    if (options.with_store) argv.push_back(store_flag);
    if (options.decode_kv_budget_bytes > 0) {
      argv.push_back(absl::StrCat("--kv_budget_bytes=", options.decode_kv_budget_bytes));
    }
    auto d = c->StartOne(absl::StrCat("decode-", i), with(argv, options.decode_flags));
    if (!d.ok()) return d.status();
    c->decode_.push_back(std::move(*d));
  }
  if (options.with_router) {
    std::vector<std::string> argv = {
        bin,
        "serve",
        "router",
        "--worker_port=0",
        model_flag,
        absl::StrCat("--prefill=", absl::StrJoin(c->prefill_addresses(), ",")),
        absl::StrCat("--decode=", absl::StrJoin(c->decode_addresses(), ","))};
    auto r = c->StartOne("router", with(with(argv, router_tls), options.router_flags));
    if (!r.ok()) return r.status();
    c->router_ = std::move(*r);
  }
  return c;
}

Cluster::~Cluster() { Stop(); }

void Cluster::Stop() {
  if (router_) router_->Stop();
  for (auto& d : decode_) d->Stop();
  for (auto& p : prefill_) p->Stop();
  for (auto& s : stores_) s->Stop();
  if (!credentials_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(credentials_dir_, ec);
    credentials_dir_.clear();
  }
}

std::unique_ptr<ChildProcess>* Cluster::Slot(Role role, int i) {
  auto at = [i](std::vector<std::unique_ptr<ChildProcess>>& v) {
    return i >= 0 && i < static_cast<int>(v.size()) ? &v[i] : nullptr;
  };
  switch (role) {
    case Role::kStore:
      return at(stores_);
    case Role::kPrefill:
      return at(prefill_);
    case Role::kDecode:
      return at(decode_);
    case Role::kRouter:
      return i == 0 && router_ ? &router_ : nullptr;
  }
  return nullptr;
}

absl::Status Cluster::Restart(Role role, int i) {
  std::unique_ptr<ChildProcess>* slot = Slot(role, i);
  if (slot == nullptr) return absl::InvalidArgumentError("no such service");
  const std::string name = (*slot)->name();
  const std::vector<std::string> argv = argv_[name];
  (*slot)->Kill();
  slot->reset();
  // The port was just freed; a new server may take a moment to bind it.
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto child = StartOne(name, argv);
    if (child.ok()) {
      *slot = std::move(*child);
      return absl::OkStatus();
    }
    last = child.status();
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::UnavailableError(absl::StrCat("restarting ", name, ": ", last.message()));
}

const std::string& Cluster::router_address() const {
  return router_ ? router_->address() : empty_;
}
const std::string& Cluster::store_address() const {
  return stores_.empty() ? empty_ : stores_[0]->address();
}
std::vector<std::string> Cluster::store_addresses() const {
  std::vector<std::string> out;
  for (const auto& s : stores_) out.push_back(s->address());
  return out;
}
std::vector<std::string> Cluster::prefill_addresses() const {
  std::vector<std::string> out;
  for (const auto& p : prefill_) out.push_back(p->address());
  return out;
}
std::vector<std::string> Cluster::decode_addresses() const {
  std::vector<std::string> out;
  for (const auto& d : decode_) out.push_back(d->address());
  return out;
}

}  // namespace kvq::launcher
