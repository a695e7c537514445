#include "services/launcher/health_check.h"

#include <future>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"

namespace kvq::launcher {
namespace {

// HealthCheckRequest { string service = 1; }
grpc::ByteBuffer EncodeRequest(const std::string& service) {
  std::string bytes;
  if (!service.empty() && service.size() < 128) {
    bytes.push_back(0x0a);
    bytes.push_back(static_cast<char>(service.size()));
    bytes += service;
  }
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// HealthCheckResponse { ServingStatus status = 1; } SERVING = 1.
int DecodeStatus(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  if (bytes.empty()) return 0;  // UNKNOWN (default value, not encoded)
  if (bytes.size() == 2 && bytes[0] == 0x08) return bytes[1];
  return -1;
}

}  // namespace

absl::Status CheckHealth(const std::string& address, absl::Duration timeout,
                         const std::string& service,
                         const services::ChannelSecurity& security) {
  auto channel = security.CreateChannel(address);
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::ByteBuffer request = EncodeRequest(service);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                 &response, [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status status = done.get_future().get();
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("health check of ", address, " failed: ", status.error_message()));
  }
  const int serving = DecodeStatus(response);
  if (serving != 1) {
    return absl::UnavailableError(
        absl::StrCat(address, " is not serving (health status ", serving, ")"));
  }
  return absl::OkStatus();
}

absl::Status WaitHealthy(const std::string& address, absl::Duration timeout,
                         const services::ChannelSecurity& security) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last;
  while (absl::Now() < deadline) {
    last = CheckHealth(address, absl::Milliseconds(500), "", security);
    if (last.ok()) return last;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "not healthy within ", absl::FormatDuration(timeout), ": ", last.message()));
}

}  // namespace kvq::launcher
