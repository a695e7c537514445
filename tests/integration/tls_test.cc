// TLS and mTLS between real processes on loopback (docs/security.md): a
// store serving mTLS refuses plaintext clients, clients that trust another
// CA and clients without a certificate; a client certificate's identity
// decides whether it may write; and `kvq demo --tls` generates the same text
// as the plaintext demo.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/child_process.h"
#include "common/paths.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/serving.grpc.pb.h"
#include "services/launcher/cluster_credentials.h"
#include "services/launcher/health_check.h"
#include "services/launcher/launcher.h"
#include "services/store/client.h"
#include "tests/common/run_command.h"
#include "tests/integration/serving_test_util.h"
#include "tests/kvstore/test_blocks.h"

namespace kvq {
namespace {

using kvstore::testing::MakeTestBlock;
using kvstore::testing::TestBlock;

std::string MakeDir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::filesystem::create_directories(dir);
  return dir;
}

kvstore::Block ToBlock(const TestBlock& t) {
  return {t.key, t.meta, std::make_shared<const std::string>(t.bytes)};
}

class TlsStoreTest : public ::testing::Test {
 protected:
  // Two CAs with their certificates, made once (openssl takes a while).
  static void SetUpTestSuite() {
    auto c = launcher::MakeClusterCredentials(MakeDir("ca1"));
    ASSERT_TRUE(c.ok()) << c.status();
    shared_creds_ = new launcher::ClusterCredentials(*c);
    auto other = launcher::MakeClusterCredentials(MakeDir("ca2"));
    ASSERT_TRUE(other.ok()) << other.status();
    shared_other_ = new launcher::ClusterCredentials(*other);
  }

  void SetUp() override {
    ASSERT_NE(shared_creds_, nullptr);
    ASSERT_NE(shared_other_, nullptr);
    creds_ = *shared_creds_;
    other_ = *shared_other_;
    std::vector<std::string> argv = {launcher::FindKvqBinary(), "serve", "store",
                                     "--address=127.0.0.1:0",
                                     "--writer_identities=" + creds_.worker_identity};
    for (const std::string& f : launcher::ClusterCredentials::Flags(creds_.store)) {
      argv.push_back(f);
    }
    auto store = ChildProcess::Start("store", argv, {});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto security = services::ChannelSecurity::Create(creds_.client);
    ASSERT_TRUE(security.ok());
    ASSERT_TRUE(
        launcher::WaitHealthy(store_->address(), absl::Seconds(20), *security).ok())
        << store_->Output();
  }

  // A store client with `tls`; one attempt, short deadline.
  std::unique_ptr<store::StoreClient> Client(const services::TlsOptions& tls) {
    auto c = store::StoreClient::Create({.addresses = {store_->address()},
                                         .deadline = absl::Seconds(5),
                                         .max_attempts = 1,
                                         .tls = tls});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  static launcher::ClusterCredentials* shared_creds_;
  static launcher::ClusterCredentials* shared_other_;
  launcher::ClusterCredentials creds_, other_;
  std::unique_ptr<ChildProcess> store_;
};
launcher::ClusterCredentials* TlsStoreTest::shared_creds_ = nullptr;
launcher::ClusterCredentials* TlsStoreTest::shared_other_ = nullptr;

TEST_F(TlsStoreTest, PlaintextClientIsRefused) {
  auto client = Client({});
  const absl::Status s = client->Stats(0).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(launcher::CheckHealth(store_->address(), absl::Seconds(2)).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(TlsStoreTest, ClientTrustingAnotherCaIsRefused) {
  // A certificate of another CA, trusting only that CA: neither side trusts
  // the other.
  auto client = Client(other_.worker);
  EXPECT_EQ(client->Stats(0).status().code(), absl::StatusCode::kUnavailable);
  // Our own certificate, but trusting the other CA: the store's certificate
  // is refused by the client.
  services::TlsOptions tls = creds_.worker;
  tls.ca_file = other_.ca_file;
  EXPECT_EQ(Client(tls)->Stats(0).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(TlsStoreTest, MtlsRefusesClientWithoutCertificate) {
  auto client = Client({.ca_file = creds_.ca_file});
  const absl::Status s = client->Stats(0).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  // With a certificate of the CA it gets through.
  EXPECT_TRUE(Client(creds_.client)->Stats(0).ok());
}

TEST_F(TlsStoreTest, WritesAreAuthorizedByCertificateIdentity) {
  const kvstore::Block block = ToBlock(MakeTestBlock(1));
  // kvq-client is not in --writer_identities: a reader.
  auto reader = Client(creds_.client);
  const absl::Status denied = reader->PutBlocks({block}).status();
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied) << denied;
  EXPECT_TRUE(absl::StrContains(denied.message(), "kvq-client")) << denied;
  auto stats = reader->Stats(0);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->blocks, 0u);
  // kvq-worker is: it writes, takes and releases leases without a token.
  auto writer = Client(creds_.worker);
  auto put = writer->PutBlocks({block});
  ASSERT_TRUE(put.ok()) << put.status();
  auto got = writer->GetBlocks({block.key}, absl::Seconds(10));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->blocks[0].ok());
  ASSERT_EQ(got->leases.size(), 1u);
  EXPECT_TRUE(writer->ReleaseLeases(got->leases).ok());
  // Deleting needs an operator: a writer's certificate is not enough.
  EXPECT_EQ(writer->Delete({block.key})[0].code(), absl::StatusCode::kPermissionDenied);
}

// A plaintext cluster whose store takes writes only with the worker token:
// prefill and decode workers with --store_token_file push, lease and reuse
// blocks; a worker without it cannot.
TEST(TokenLockedStoreTest, WorkersUseTheirStoreTokenFile) {
  auto creds = launcher::MakeClusterCredentials(MakeDir("tokens"));
  ASSERT_TRUE(creds.ok()) << creds.status();
  launcher::ClusterOptions o = testing::TestClusterOptions();
  o.store_flags = {"--writer_token_file=" + creds->writer_token_file,
                   "--admin_token_file=" + creds->admin_token_file};
  o.prefill_flags.push_back("--store_token_file=" + creds->writer_token_file);
  o.decode_flags.push_back("--store_token_file=" + creds->writer_token_file);
  auto cluster = launcher::Cluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  launcher::Cluster& c = **cluster;
  const std::string kv = "kivi:bits=2,residual=0";
  std::vector<int> first;
  for (int i = 0; i < 70; ++i) first.push_back(i == 0 ? 1 : 259 + (i * 37) % 250);
  std::vector<int> second = first;
  for (int i = 0; i < 30; ++i) second.push_back(300 + i);
  testing::StreamResult a =
      testing::RouterGenerate(c.router_address(), testing::GreedyRequest(first, kv, 8));
  ASSERT_TRUE(a.status.ok()) << a.status.error_message() << c.prefill(0)->Output();
  EXPECT_GT(a.last.prefill().bytes_pushed(), 0u);
  // The second prompt reuses the first's blocks: a Lookup with a lease,
  // which needs the worker token too.
  testing::StreamResult b =
      testing::RouterGenerate(c.router_address(), testing::GreedyRequest(second, kv, 8));
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_EQ(b.last.prefill().blocks_reused(), 2u);

  // A prefill worker without the token: its push is refused, named.
  auto tokenless = ChildProcess::Start(
      "prefill-tokenless",
      {launcher::FindKvqBinary(), "serve", "prefill", "--worker_port=0",
       "--model=" + DefaultModelDir(), "--store=" + c.store_address()},
      {});
  ASSERT_TRUE(tokenless.ok()) << tokenless.status();
  ASSERT_TRUE(launcher::WaitHealthy((*tokenless)->address(), absl::Seconds(20)).ok());
  std::vector<int> third = first;
  third[1] = 260;  // shares no block with the others
  auto stub = v1::Prefill::NewStub(
      grpc::CreateChannel((*tokenless)->address(), grpc::InsecureChannelCredentials()));
  v1::PrefillRequest request;
  for (int t : third) request.add_tokens(t);
  request.mutable_cache()->set_kv(kv);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::PrefillResponse response;
  const grpc::Status s = stub->Prefill(&ctx, request, &response);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(absl::StrContains(s.error_message(), "token")) << s.error_message();
}

// The continuation text `kvq demo` prints (stdout), or "" on failure.
std::string DemoText(const std::vector<std::string>& extra) {
  std::string cmd = launcher::FindKvqBinary() + " demo --model=" + DefaultModelDir() +
                    " --prompt='Once upon a time' --steps=24";
  for (const std::string& f : extra) cmd += " " + f;
  cmd += " 2>&1 1>&3 3>&- | tail -3 >&2; } 3>&1";  // stdout only; stderr's tail
  const testing::CommandResult r = testing::RunCommand("{ " + cmd);
  return r.exit_code == 0 ? r.out : "";
}

TEST(TlsDemoTest, DemoOverMtlsGeneratesTheSameText) {
  const std::string plain = DemoText({});
  const std::string tls = DemoText({"--tls"});
  ASSERT_FALSE(plain.empty());
  EXPECT_TRUE(absl::StartsWith(plain, "Once upon a time")) << plain;
  EXPECT_GT(plain.size(), std::string("Once upon a time\n").size()) << plain;
  EXPECT_EQ(tls, plain);
}

}  // namespace
}  // namespace kvq
