// Process and gRPC server settings of `kvq serve store`, shared with the
// bench's gRPC floor server (serve_grpc_floor.cc) so that the two differ only
// in what a call does.
#ifndef KVQ_SERVICES_STORE_SERVER_SETUP_H_
#define KVQ_SERVICES_STORE_SERVER_SETUP_H_

#include <malloc.h>

#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"

namespace kvq::store {

// Call once at start, before any gRPC object exists.
inline void SetStoreProcessDefaults() {
  // Blocks and gRPC buffers are hundreds of KiB: keep them on the heap
  // instead of an mmap/munmap (and page-fault) cycle per allocation.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  // gRPC locks absl::Mutex on every call; the installed Abseil (built without
  // NDEBUG) would also maintain a lock-order graph on each (perf: GraphCycles).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

inline void ConfigureStoreServer(grpc::ServerBuilder& builder, int max_message_bytes) {
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.SetMaxSendMessageSize(max_message_bytes);
  // Large initial HTTP/2 receive window (default 64 KiB) for block-sized puts.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
  // First socket reads of a connection sized for a block-sized message (1 MiB)
  // instead of 8 KiB that gRPC grows only as reads fill up (16-stream puts on
  // fresh connections: +10%; `kvq bench store`, docs/performance.md).
  builder.AddChannelArgument(GRPC_ARG_TCP_READ_CHUNK_SIZE, 1 << 20);
  // No SO_REUSEPORT: a second server on a port that is taken must fail to
  // start, not share the port and take some of the first one's connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Streams one connection may have open at once (gRPC's default is
  // unlimited); each PutBlocks stream holds bookkeeping for its blocks.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 256);
}

}  // namespace kvq::store

#endif  // KVQ_SERVICES_STORE_SERVER_SETUP_H_
