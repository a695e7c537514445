#include "services/common/authorizer.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace kvq::services {
namespace {

const std::string kWriter = "writer-token-0123456789";
const std::string kAdmin = "admin-token-0123456789ab";

Authorizer Closed() {
  auto a = Authorizer::Create({.writer_tokens = {kWriter}, .admin_tokens = {kAdmin}});
  EXPECT_TRUE(a.ok()) << a.status();
  return *a;
}

absl::StatusOr<Caller> Identify(const Authorizer& a, std::vector<std::string> values) {
  std::vector<absl::string_view> views(values.begin(), values.end());
  return a.Identify(views, "ipv4:10.1.2.3:45678");
}

TEST(AuthorizerTest, OpenMakesEveryCallerAnAdmin) {
  const Authorizer a = Authorizer::Open();
  EXPECT_TRUE(a.open());
  auto c = Identify(a, {});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->role, Role::kAdmin);
  EXPECT_FALSE(c->authenticated);
  EXPECT_EQ(c->client(), "anonymous@10.1.2.3");
  // A token is not looked at.
  EXPECT_TRUE(Identify(a, {"Bearer whatever"}).ok());
}

TEST(AuthorizerTest, TokensGiveRoles) {
  const Authorizer a = Closed();
  EXPECT_FALSE(a.open());
  auto anon = Identify(a, {});
  ASSERT_TRUE(anon.ok());
  EXPECT_EQ(anon->role, Role::kReader);
  EXPECT_EQ(anon->principal, "anonymous");

  auto writer = Identify(a, {"Bearer " + kWriter});
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ(writer->role, Role::kWriter);
  EXPECT_TRUE(writer->authenticated);
  EXPECT_EQ(writer->client(), "worker@10.1.2.3");

  auto admin = Identify(a, {"Bearer " + kAdmin});
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin->role, Role::kAdmin);
  EXPECT_EQ(admin->principal, "operator");
}

TEST(AuthorizerTest, BadCredentialsAreUnauthenticated) {
  const Authorizer a = Closed();
  for (const std::vector<std::string>& values :
       std::vector<std::vector<std::string>>{{"Bearer " + kWriter + "x"},
                                             {"Bearer " + kWriter.substr(1)},
                                             {"Bearer "},
                                             {kWriter},
                                             {"Basic " + kWriter},
                                             {"Bearer " + kWriter, "Bearer " + kAdmin}}) {
    EXPECT_EQ(Identify(a, values).status().code(), absl::StatusCode::kUnauthenticated)
        << values[0];
  }
}

TEST(AuthorizerTest, RequireSaysWhatIsMissing) {
  const Authorizer a = Closed();
  const Caller anon = *Identify(a, {});
  const Caller writer = *Identify(a, {"Bearer " + kWriter});
  const Caller admin = *Identify(a, {"Bearer " + kAdmin});
  EXPECT_TRUE(Authorizer::Require(anon, Role::kReader, "Lookup").ok());
  const absl::Status put = Authorizer::Require(anon, Role::kWriter, "PutBlocks");
  EXPECT_EQ(put.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(absl::StrContains(put.message(), "PutBlocks needs a worker (writer) token"))
      << put;
  EXPECT_TRUE(absl::StrContains(put.message(), "--writer_token_file")) << put;
  EXPECT_TRUE(Authorizer::Require(writer, Role::kWriter, "PutBlocks").ok());
  const absl::Status del = Authorizer::Require(writer, Role::kAdmin, "DeleteBlocks");
  EXPECT_EQ(del.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(del.message(), "operator")) << del;
  EXPECT_TRUE(Authorizer::Require(admin, Role::kAdmin, "DeleteBlocks").ok());
  EXPECT_TRUE(Authorizer::Require(admin, Role::kWriter, "PutBlocks").ok());
}

TEST(AuthorizerTest, CertificateIdentitiesGiveRoles) {
  auto a = Authorizer::Create({.writer_tokens = {kWriter},
                               .writer_identities = {"kvq-worker"},
                               .admin_identities = {"spiffe://kvq/operator"}});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->open());
  const std::vector<absl::string_view> none;
  const std::string peer = "ipv4:10.1.2.3:45678";
  // A writer's certificate (common name first, then SANs).
  auto w = a->Identify(none, peer, std::vector<std::string>{"kvq-worker", "127.0.0.1"});
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->role, Role::kWriter);
  EXPECT_TRUE(w->authenticated);
  EXPECT_EQ(w->principal, "worker");  // shared with the worker token: leases hand over
  EXPECT_EQ(w->identity, "kvq-worker");
  EXPECT_TRUE(Authorizer::Require(*w, Role::kWriter, "PutBlocks").ok());
  // An admin identity matched by a SAN.
  auto op =
      a->Identify(none, peer, std::vector<std::string>{"ops", "spiffe://kvq/operator"});
  ASSERT_TRUE(op.ok());
  EXPECT_EQ(op->role, Role::kAdmin);
  // A certificate in no list: a reader, told why it may not write.
  auto r = a->Identify(none, peer, std::vector<std::string>{"kvq-client"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->role, Role::kReader);
  const absl::Status put = Authorizer::Require(*r, Role::kWriter, "PutBlocks");
  EXPECT_EQ(put.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(put.message(), "kvq-client")) << put;
  EXPECT_TRUE(absl::StrContains(put.message(), "--writer_identities")) << put;
  // A token decides when one is sent, certificate or not.
  const std::string bearer = "Bearer " + kWriter;
  const std::vector<absl::string_view> token = {bearer};
  auto t = a->Identify(token, peer, std::vector<std::string>{"kvq-client"});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->role, Role::kWriter);
  EXPECT_FALSE(t->by_certificate);
  // Identities alone close an authorizer.
  auto ids = Authorizer::Open().WithIdentities({"kvq-worker"}, {});
  ASSERT_TRUE(ids.ok());
  EXPECT_FALSE(ids->open());
  EXPECT_EQ(ids->Identify(none, peer)->role, Role::kReader);
  // The same identity in both lists, or an empty one, is refused.
  EXPECT_EQ(Authorizer::Open().WithIdentities({"x"}, {"x"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Authorizer::Open().WithIdentities({""}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AuthorizerTest, CreateRefusesWeakOrAmbiguousTokens) {
  EXPECT_EQ(Authorizer::Create({.writer_tokens = {"short"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      Authorizer::Create({.admin_tokens = {"has a space in it, long"}}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Authorizer::Create({.writer_tokens = {kWriter}, .admin_tokens = {kWriter}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

std::string WriteFile(const std::string& name, const std::string& contents) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::ofstream(path) << contents;
  return path;
}

TEST(AuthorizerTest, TokenFiles) {
  const std::string writers = WriteFile(
      "writers", "# rotate: old and new\n" + kWriter + "\n\n  second-token-abcdefgh  \n");
  auto tokens = ReadTokenFile(writers);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(*tokens, (std::vector<std::string>{kWriter, "second-token-abcdefgh"}));
  auto a = Authorizer::FromTokenFiles(writers, "");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(Identify(*a, {"Bearer second-token-abcdefgh"})->role, Role::kWriter);

  const absl::Status empty = ReadTokenFile(WriteFile("empty", "# nothing\n\n")).status();
  EXPECT_EQ(empty.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(empty.message(), "holds no token")) << empty;
  const absl::Status missing =
      Authorizer::FromTokenFiles("/nonexistent/tokens", "").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(missing.message(), "/nonexistent/tokens")) << missing;
}

TEST(AuthorizerTest, PeerHost) {
  EXPECT_EQ(PeerHost("ipv4:127.0.0.1:5000"), "127.0.0.1");
  EXPECT_EQ(PeerHost("ipv6:[::1]:5000"), "::1");
  EXPECT_EQ(PeerHost("ipv6:[fe80::1%eth0]:5000"), "fe80::1%eth0");
  EXPECT_EQ(PeerHost("unix:/tmp/s"), "unix:/tmp/s");
  EXPECT_EQ(PeerHost(""), "");
}

}  // namespace
}  // namespace kvq::services
