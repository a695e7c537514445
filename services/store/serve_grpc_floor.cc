// `kvq serve grpc-floor`: a stand-in for the store that `kvq bench store`
// measures next to it. The same gRPC server settings and callback API as
// `kvq serve store`, but a PutBlocks call only receives its messages and
// answers STORED: nothing is decoded, copied, hashed or kept. Its throughput
// is what gRPC alone allows on the machine, the ceiling any gRPC store has;
// the store's fraction of it is what the store's own work costs.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "cli/command.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "proto/kvstore.pb.h"
#include "services/store/server_setup.h"

ABSL_DECLARE_FLAG(std::string, address);
ABSL_DECLARE_FLAG(int64_t, max_message_bytes);

namespace kvq::store {
namespace {

constexpr char kPutBlocks[] = "/kvq.v1.KvStore/PutBlocks";
constexpr char kStats[] = "/kvq.v1.KvStore/Stats";

grpc::ByteBuffer Serialize(const google::protobuf::MessageLite& message) {
  const std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// Reads every message of a call, then answers with `reply` (one STORED
// result for PutBlocks: the bench puts one block per call; an empty
// StoreStatsResponse for Stats, which the bench calls to connect).
class DiscardReactor final : public grpc::ServerGenericBidiReactor {
 public:
  explicit DiscardReactor(const grpc::ByteBuffer& reply) : reply_(reply) {
    StartRead(&request_);
  }
  void OnReadDone(bool ok) override {
    if (ok) {
      request_.Clear();
      StartRead(&request_);
      return;
    }
    StartWriteAndFinish(&reply_, grpc::WriteOptions(), grpc::Status::OK);
  }
  void OnDone() override { delete this; }

 private:
  grpc::ByteBuffer request_;
  grpc::ByteBuffer reply_;
};

class UnimplementedReactor final : public grpc::ServerGenericBidiReactor {
 public:
  UnimplementedReactor() {
    Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "kvq serve grpc-floor answers only PutBlocks and Stats"));
  }
  void OnDone() override { delete this; }
};

class FloorService final : public grpc::CallbackGenericService {
 public:
  FloorService() {
    v1::PutBlocksResponse put;
    put.add_results()->set_outcome(v1::PUT_OUTCOME_STORED);
    put_reply_ = Serialize(put);
    stats_reply_ = Serialize(v1::StoreStatsResponse());
  }
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    if (context->method() == kPutBlocks) return new DiscardReactor(put_reply_);
    if (context->method() == kStats) return new DiscardReactor(stats_reply_);
    return new UnimplementedReactor();
  }

 private:
  grpc::ByteBuffer put_reply_, stats_reply_;
};

int ServeGrpcFloor() {
  SetStoreProcessDefaults();
  const std::string address = absl::GetFlag(FLAGS_address);
  const int64_t max_message = absl::GetFlag(FLAGS_max_message_bytes);
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || max_message < (64 << 10) || max_message > (1 << 30)) {
    std::fprintf(stderr,
                 "kvq serve grpc-floor: --address must be HOST:PORT and "
                 "--max_message_bytes in [64 KiB, 1 GiB]\n");
    return 2;
  }
  FloorService service;
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &bound_port);
  ConfigureStoreServer(builder, static_cast<int>(max_message));
  builder.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    std::fprintf(stderr, "kvq serve grpc-floor: cannot listen on %s\n", address.c_str());
    return 1;
  }
  std::printf("kvq grpc-floor listening on %s:%d\n", address.substr(0, colon).c_str(),
              bound_port);
  std::fflush(stdout);
  server->Wait();  // until killed (SIGTERM's default action)
  return 0;
}

const cli::CommandRegistrar kServeGrpcFloor({
    .path = "serve grpc-floor",
    .summary = "Benchmark stand-in: a gRPC server that discards PutBlocks (not a store).",
    .description =
        "What `kvq bench store` compares the store with: the store's gRPC settings\n"
        "and callback API, but each PutBlocks call's messages are received and\n"
        "dropped and the call answers STORED; nothing is kept. Its throughput is\n"
        "the most any gRPC store can reach on this machine. Prints\n"
        "`kvq grpc-floor listening on HOST:PORT`; SIGTERM stops it.",
    .flags = {"address", "max_message_bytes"},
    .run = [](const std::vector<std::string>&) { return ServeGrpcFloor(); },
});

}  // namespace
}  // namespace kvq::store
