// The getaddrinfo resolver of the router's dns targets.
#include "services/router/resolver.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kvq::router {
namespace {

TEST(ResolverTest, PlainTargetsAreThemselves) {
  auto dns = Resolver::System();
  for (const std::string t : {"10.0.0.1:50052", "ipv4:127.0.0.1:1", "unix:/tmp/s"}) {
    auto r = dns->Resolve(t);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, std::vector<std::string>{t});
  }
}

TEST(ResolverTest, ADnsNameIsEveryAddressWithThePort) {
  auto dns = Resolver::System();
  // "localhost" is 127.0.0.1 (and ::1 where configured) without a network.
  for (const std::string t :
       {"dns:///localhost:4321", "dns://8.8.8.8/localhost:4321", "dns:localhost:4321"}) {
    auto r = dns->Resolve(t);
    ASSERT_TRUE(r.ok()) << t << ": " << r.status();
    EXPECT_NE(std::find(r->begin(), r->end(), "127.0.0.1:4321"), r->end()) << t;
    EXPECT_TRUE(std::is_sorted(r->begin(), r->end()));
    for (const std::string& e : *r) {
      EXPECT_TRUE(e == "127.0.0.1:4321" || e == "[::1]:4321") << e;
    }
  }
  auto v6 = dns->Resolve("dns:///[::1]:80");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(*v6, std::vector<std::string>{"[::1]:80"});
}

TEST(ResolverTest, Errors) {
  auto dns = Resolver::System();
  EXPECT_EQ(dns->Resolve("dns:///localhost").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dns->Resolve("dns:///localhost:http").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dns->Resolve("dns:///no-such-host.invalid:1").status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace kvq::router
