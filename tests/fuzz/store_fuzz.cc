// libFuzzer target for everything the KV store decodes from the network:
// PutBlocksRequest messages (protobuf parsing, key and metadata validation,
// chunk placement in BlockAssembler, commits into a small LRU engine), the
// same bytes through the server's own wire decoder (chunk_decoder.h,
// PutSession::ApplyEncoded, fed in small pieces as gRPC slices would be), and
// the wire conversions. Built and run by tests/fuzz/run_fuzz.sh (clang-14,
// -fsanitize=fuzzer,address).
//
// Input: a sequence of records, each a little-endian u16 length followed by
// that many bytes, parsed as one PutBlocksRequest of a single stream. Records
// that do not parse are skipped by the parsed path; the wire decoder gets
// every record until its stream's first error. With KVQ_FUZZ_WRITE_SEEDS=DIR set, the
// target writes a few valid streams to DIR and exits (the script's seed corpus).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "kvstore/block_assembler.h"
#include "kvstore/kv_store.h"
#include "proto/kvstore.pb.h"
#include "services/store/proto_convert.h"
#include "services/store/put_session.h"

namespace {

using kvq::kvstore::BlockKey;
using kvq::kvstore::BlockMeta;

void AppendRecord(std::string& out, const google::protobuf::Message& m) {
  const std::string bytes = m.SerializeAsString();
  out.push_back(static_cast<char>(bytes.size() & 0xff));
  out.push_back(static_cast<char>(bytes.size() >> 8));
  out += bytes;
}

// A valid stream: `n` blocks of the given encoding, interleaved layer by layer.
std::string SeedStream(int n, kvq::kernels::BlockEncoding enc, int chunk) {
  std::string out;
  kvq::v1::PutBlocksRequest headers;
  std::vector<std::string> bytes;
  BlockMeta meta;
  meta.encoding = enc;
  meta.n_layers = 2;
  meta.n_kv_heads = 2;
  meta.head_dim = 8;
  meta.token_count = enc.block_tokens;
  for (int i = 0; i < n; ++i) {
    std::string b(meta.block_bytes(), '\0');
    for (size_t j = 0; j < b.size(); ++j) b[j] = static_cast<char>(j * 31 + i);
    meta.checksum = kvq::kvstore::BlockChecksum(b);
    kvq::v1::BlockHeader* h = headers.add_headers();
    h->set_block_id(i);
    h->set_key(BlockKey{1, static_cast<uint64_t>(i)}.ToBytes());
    *h->mutable_meta() = kvq::store::MetaToProto(meta);
    bytes.push_back(std::move(b));
  }
  AppendRecord(out, headers);
  const size_t lb = meta.layer_bytes(0);
  for (int layer = 0; layer < meta.n_layers; ++layer) {
    for (int i = 0; i < n; ++i) {
      for (size_t off = 0; off < lb; off += chunk) {
        kvq::v1::PutBlocksRequest r;
        kvq::v1::BlockChunk* c = r.add_chunks();
        c->set_block_id(i);
        c->set_layer(layer);
        c->set_offset(off);
        c->set_data(bytes[i].substr(layer * lb + off, std::min<size_t>(chunk, lb - off)));
        AppendRecord(out, r);
      }
    }
  }
  return out;
}

void WriteSeeds(const std::string& dir) {
  const std::vector<std::string> seeds = {
      SeedStream(1, kvq::kernels::BlockEncoding::Quantized(2, 8, 8), 64),
      SeedStream(2, kvq::kernels::BlockEncoding::Quantized(4, 8, 4), 50),
      SeedStream(2, kvq::kernels::BlockEncoding::Fp16(4), 128),
  };
  for (size_t i = 0; i < seeds.size(); ++i) {
    std::ofstream(dir + "/seed" + std::to_string(i), std::ios::binary) << seeds[i];
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("KVQ_FUZZ_WRITE_SEEDS"); dir != nullptr && *dir) {
    WriteSeeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* store =
      kvq::kvstore::KvStore::Open({.capacity_bytes = 64 << 10})->release();
  static auto* wire_store =
      kvq::kvstore::KvStore::Open({.capacity_bytes = 64 << 10})->release();
  kvq::store::PutSession session(store, {.max_pending_bytes = 32 << 10});
  kvq::store::PutSession wire_session(wire_store, {.max_pending_bytes = 32 << 10});
  bool wire_ok = true;
  size_t pos = 0;
  while (pos + 2 <= size) {
    const size_t len = data[pos] | (size_t{data[pos + 1]} << 8);
    pos += 2;
    if (len > size - pos) break;
    if (wire_ok) {
      // Pieces of 7 bytes: fields and chunk data straddle buffer boundaries.
      google::protobuf::io::ArrayInputStream in(data + pos, static_cast<int>(len), 7);
      wire_ok = wire_session.ApplyEncoded(&in).ok();
    }
    kvq::v1::PutBlocksRequest request;
    if (request.ParseFromArray(data + pos, static_cast<int>(len))) {
      // Also the read side's decoders on whatever came in.
      for (const kvq::v1::BlockHeader& h : request.headers()) {
        (void)kvq::store::KeyFromProto(h.key());
        auto meta = kvq::store::MetaFromProto(h.meta());
        if (meta.ok()) {
          // A valid meta must describe a consistent, bounded block.
          if (meta->block_bytes() == 0 ||
              meta->block_bytes() > kvq::kvstore::kMaxBlockBytes ||
              meta->layer_offset(meta->n_layers) != meta->block_bytes()) {
            std::abort();
          }
        }
      }
      if (!session.Apply(request).ok()) break;  // the stream ends at its first error
    }
    pos += len;
  }
  (void)session.Finish();
  (void)wire_session.Finish();
  for (kvq::kvstore::KvStore* s : {store, wire_store}) {
    const kvq::kvstore::StoreStats stats = s->Stats();
    if (stats.bytes > stats.capacity_bytes)
      std::abort();  // capacity accounting invariant
  }
  return 0;
}
