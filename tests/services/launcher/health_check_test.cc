#include "services/launcher/health_check.h"

#include <memory>

#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace kvq::launcher {
namespace {

TEST(HealthCheckTest, ServingServerIsHealthy) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  EXPECT_TRUE(CheckHealth(addr, absl::Seconds(2)).ok());
  EXPECT_TRUE(WaitHealthy(addr, absl::Seconds(2)).ok());

  server->GetHealthCheckService()->SetServingStatus(false);
  absl::Status s = CheckHealth(addr, absl::Seconds(2));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("not serving"), std::string::npos) << s;
  server->Shutdown();
}

TEST(HealthCheckTest, NothingListeningIsUnavailable) {
  // Port 1 on loopback: nothing listens there in a test sandbox.
  absl::Status s = CheckHealth("127.0.0.1:1", absl::Milliseconds(300));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(WaitHealthy("127.0.0.1:1", absl::Milliseconds(200)).code(),
            absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace kvq::launcher
