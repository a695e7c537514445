// TLS option loading (services/common/tls.h): good files make credentials,
// bad ones an INVALID_ARGUMENT naming the file. Certificates come from
// MakeClusterCredentials (the `openssl` tool).
#include "services/common/tls.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "services/launcher/cluster_credentials.h"

namespace kvq::services {
namespace {

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::string(std::getenv("TEST_TMPDIR")) + "/tls");
    std::filesystem::create_directories(*dir_);
    auto c = launcher::MakeClusterCredentials(*dir_);
    ASSERT_TRUE(c.ok()) << c.status();
    creds_ = new launcher::ClusterCredentials(*c);
  }
  static std::string Write(const std::string& name, const std::string& contents) {
    const std::string path = *dir_ + "/" + name;
    std::ofstream(path) << contents;
    return path;
  }
  static void ExpectInvalid(const absl::Status& s, const std::string& says) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), says)) << s << " should say " << says;
  }

  static std::string* dir_;
  static launcher::ClusterCredentials* creds_;
};
std::string* TlsTest::dir_ = nullptr;
launcher::ClusterCredentials* TlsTest::creds_ = nullptr;

TEST_F(TlsTest, NoFilesIsPlaintext) {
  auto server = ServerCredentials({});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(*server, nullptr);
  auto client = ChannelSecurity::Create({});
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_FALSE(client->tls());
}

TEST_F(TlsTest, GoodFilesMakeCredentials) {
  for (absl::Duration refresh : {absl::ZeroDuration(), absl::Minutes(1)}) {
    TlsOptions tls = creds_->store;
    tls.refresh_interval = refresh;
    auto server = ServerCredentials(tls);
    ASSERT_TRUE(server.ok()) << server.status();
    EXPECT_NE(*server, nullptr);
    auto client = ChannelSecurity::Create(creds_->client);
    ASSERT_TRUE(client.ok()) << client.status();
    EXPECT_TRUE(client->tls());
  }
  // A client that only trusts the CA (no certificate of its own).
  auto ca_only = ChannelSecurity::Create({.ca_file = creds_->ca_file});
  ASSERT_TRUE(ca_only.ok()) << ca_only.status();
  EXPECT_TRUE(ca_only->tls());
}

TEST_F(TlsTest, UnreadableFilesAreNamed) {
  TlsOptions tls = creds_->store;
  tls.cert_file = *dir_ + "/missing.pem";
  ExpectInvalid(ServerCredentials(tls).status(),
                "cannot read TLS certificate file " + tls.cert_file);
  tls = creds_->client;
  tls.key_file = *dir_ + "/missing.key";
  ExpectInvalid(ChannelSecurity::Create(tls).status(), "missing.key");
  tls = creds_->client;
  tls.ca_file = *dir_ + "/missing-ca.pem";
  ExpectInvalid(ChannelSecurity::Create(tls).status(), "cannot read TLS CA file");
}

TEST_F(TlsTest, NotPemIsRefused) {
  const std::string junk = Write("junk.pem", "not a certificate\n");
  TlsOptions tls = creds_->store;
  tls.cert_file = junk;
  ExpectInvalid(ServerCredentials(tls).status(), "holds no PEM certificate");
  tls = creds_->store;
  tls.key_file = junk;
  ExpectInvalid(ServerCredentials(tls).status(), "holds no unencrypted PEM private key");
  tls = creds_->store;
  tls.ca_file = junk;
  ExpectInvalid(ServerCredentials(tls).status(), "TLS CA file " + junk);
}

TEST_F(TlsTest, MismatchedKeyIsRefused) {
  TlsOptions tls = creds_->store;
  tls.key_file = creds_->client.key_file;
  ExpectInvalid(ServerCredentials(tls).status(), "does not belong to the certificate");
}

TEST_F(TlsTest, IncompleteOptionsAreRefused) {
  TlsOptions tls = creds_->store;
  tls.key_file.clear();
  ExpectInvalid(ServerCredentials(tls).status(), "without its private key");
  tls = creds_->store;
  tls.cert_file.clear();
  ExpectInvalid(ChannelSecurity::Create(tls).status(), "without its certificate");
  // mTLS needs a CA to check clients against.
  tls = creds_->store;
  tls.ca_file.clear();
  ExpectInvalid(ServerCredentials(tls).status(), "--tls_ca");
}

}  // namespace
}  // namespace kvq::services
