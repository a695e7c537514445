// The CUDA kernels against the scalar reference: quantization bit-identical
// (codes, scales, zeros) on random and adversarial data, attention within
// 2e-3 of max|reference| per head, at bits 2/4/8 (and fp16 caches), head_dim
// 8/64/128, B 16/32, GQA 1/2/4/8/16, and format 2's encodings (K/V bits
// apart, outliers, u8 scales). Argument checks run everywhere; tests that
// need a GPU skip with the reason when there is none.
#include "kernels/cuda/cuda_kernels.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/block_format.h"
#include "kernels/fp16.h"
#include "kernels/kernel_set.h"
#include "kernels/reference.h"
#include "tests/kernels/cuda_test_data.h"
#include "tests/kernels/test_util.h"

namespace kvq::kernels {
namespace {

using testing::FirstDifference;
using ::testing::HasSubstr;
using testing::MakeData;

#define SKIP_WITHOUT_GPU()                                           \
  do {                                                               \
    if (const absl::Status s = CudaAvailable(); !s.ok()) {           \
      GTEST_SKIP() << s.message() << " (the test needs a CUDA GPU)"; \
    }                                                                \
  } while (0)

constexpr int kBits[] = {2, 4, 8};
constexpr int kHeadDims[] = {8, 64, 128};
constexpr int kBlockTokens[] = {16, 32};

// ---- Without a GPU: availability, compiled shapes, argument checks. ----

TEST(CudaAvailableTest, OkOrSaysWhyNot) {
  const absl::Status s = CudaAvailable();
  if (s.ok()) {
    int count = 0;
    ASSERT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
    EXPECT_GT(count, 0);
    return;
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("no CUDA device"));
}

TEST(CudaSupportsTest, CompiledShapesOnly) {
  for (int bits : kBits) {
    for (int d : kHeadDims) {
      for (int b : kBlockTokens) {
        EXPECT_TRUE(
            CudaSupports(BlockEncoding::Quantized(bits, b, std::min(32, d)), d).ok())
            << bits << " " << d << " " << b;
        EXPECT_TRUE(CudaSupports(BlockEncoding::Fp16(b), d).ok());
      }
    }
  }
  const absl::Status d96 = CudaSupports(BlockEncoding::Quantized(2, 32, 32), 96);
  EXPECT_EQ(d96.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d96.message()), HasSubstr("head_dim 96"));
  const absl::Status b8 = CudaSupports(BlockEncoding::Quantized(2, 8, 32), 64);
  EXPECT_EQ(b8.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(b8.message()), HasSubstr("B 8"));
  EXPECT_EQ(CudaSupports(BlockEncoding::Fp16(64), 64).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CudaSupports(BlockEncoding::Quantized(3, 32, 32), 64).code(),
            absl::StatusCode::kInvalidArgument);
  // Format 2: K/V bits apart, outliers, u8 scales (per-layer encodings).
  for (int d : kHeadDims) {
    for (int b : kBlockTokens) {
      for (const BlockEncoding& enc : testing::Format2AttentionEncodings(b, d)) {
        EXPECT_TRUE(CudaSupports(enc, d).ok()) << enc.bits << "/" << enc.v_bits;
      }
      // Quantization takes any outlier count (attention may refuse huge
      // ones, below): without a GPU the host API gets past its checks.
      for (const BlockEncoding& enc : testing::Format2QuantizeEncodings(b, d)) {
        const std::vector<float> k(size_t{2} * b * d, 1.0f);
        std::vector<uint8_t> out(LayerBytes(enc, 2, d));
        const absl::Status s =
            CudaQuantizeLayerHost(enc, 2, d, k.data(), k.data(), out.data());
        EXPECT_NE(s.code(), absl::StatusCode::kInvalidArgument)
            << enc.k_outliers << "/" << enc.v_outliers << ": " << s;
      }
    }
  }
  // An fp16 key width with quantized values is no encoding at all.
  EXPECT_EQ(
      CudaSupports(BlockEncoding::Mixed(16, 2, 32, 32, 0, 0, ScaleFormat::kFp16), 64)
          .code(),
      absl::StatusCode::kInvalidArgument);
  // A block encoding with edge layers: each layer's ForLayer() is supported.
  BlockEncoding edges = BlockEncoding::Mixed(2, 2, 32, 32, 0, 0, ScaleFormat::kU8);
  edges.edge_layers = 1;
  edges.edge_bits = 8;
  const absl::Status e = CudaSupports(edges, 64);
  EXPECT_EQ(e.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(e.message()), HasSubstr("ForLayer"));
  EXPECT_TRUE(CudaSupports(edges.ForLayer(0, 4), 64).ok());
  EXPECT_TRUE(CudaSupports(edges.ForLayer(1, 4), 64).ok());
  // A section too large for the attention kernel's shared memory.
  const absl::Status big = CudaSupports(
      BlockEncoding::Mixed(8, 8, 32, 32, 4096, 4096, ScaleFormat::kFp16), 128);
  EXPECT_EQ(big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(big.message()), HasSubstr("shared memory"));
}

// Device-API argument errors are reported before any device memory is
// touched, so these pointers are never dereferenced.
alignas(16) uint8_t g_dummy[64];
const float* DummyFloats() { return reinterpret_cast<const float*>(g_dummy); }
uint8_t* DummyOut() { return g_dummy; }

TEST(CudaQuantizeArgsTest, RejectedBeforeTheDevice) {
  CudaWorkspace ws;
  const BlockEncoding enc = BlockEncoding::Quantized(2, 32, 32);
  auto code = [&](const BlockEncoding& e, int head_dim, int n_blocks, uint8_t* out,
                  CudaWorkspace* w) {
    return CudaQuantizeLayers(e, 2, head_dim, n_blocks, DummyFloats(), DummyFloats(), out,
                              w)
        .code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(enc, 96, 1, DummyOut(), &ws), kInvalid);      // not compiled in
  EXPECT_EQ(code(enc, 64, 0, DummyOut(), &ws), kInvalid);      // no blocks
  EXPECT_EQ(code(enc, 64, 1, DummyOut() + 4, &ws), kInvalid);  // misaligned out
  EXPECT_EQ(code(enc, 64, 1, DummyOut(), nullptr), kInvalid);  // no workspace
  EXPECT_EQ(code(BlockEncoding::Quantized(2, 32, 24), 64, 1, DummyOut(), &ws),
            kInvalid);                                  // G does not divide
  EXPECT_EQ(code(enc, 64, 1, nullptr, &ws), kInvalid);  // null out
}

TEST(CudaQuantizeArgsTest, HostApiRejectsNonFiniteLikeTheReference) {
  const BlockEncoding enc = BlockEncoding::Quantized(2, 32, 32);
  const int n_kv_heads = 2, d = 64;
  const size_t n = size_t{2} * 32 * d;
  std::vector<float> k(n, 1.0f), v(n, 1.0f);
  for (float bad : {NAN, INFINITY, 65520.0f}) {
    v[77] = bad;
    std::vector<uint8_t> ref(LayerBytes(enc, n_kv_heads, d), 0xab), out = ref;
    const absl::Status want =
        reference::QuantizeLayer(enc, n_kv_heads, d, k.data(), v.data(), ref.data());
    const absl::Status got =
        CudaQuantizeLayerHost(enc, n_kv_heads, d, k.data(), v.data(), out.data());
    EXPECT_EQ(got.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(got, want);
    EXPECT_EQ(out, std::vector<uint8_t>(out.size(), 0xab)) << "wrote on error";
  }
}

TEST(CudaAttentionArgsTest, RejectedBeforeTheDevice) {
  CudaWorkspace ws;
  AttentionParams p = testing::Params(BlockEncoding::Quantized(2, 32, 32), 8, 2, 64);
  const uint8_t* parts[3] = {g_dummy, g_dummy, g_dummy};
  CudaSequence s;
  s.quantized = absl::MakeConstSpan(parts, 2);
  s.fp16 = absl::MakeConstSpan(parts + 2, 1);
  s.n_tokens = 70;
  s.q = DummyFloats();
  s.out = reinterpret_cast<float*>(g_dummy);
  auto run = [&](const AttentionParams& params, const CudaSequence& seq) {
    return CudaDecodeAttention(params, {seq}, &ws).code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  for (int n_tokens : {64, 97, 0}) {  // must be 65..96
    CudaSequence bad = s;
    bad.n_tokens = n_tokens;
    EXPECT_EQ(run(p, bad), kInvalid) << n_tokens;
  }
  const uint8_t* misaligned[1] = {g_dummy + 8};
  CudaSequence bad = s;
  bad.fp16 = absl::MakeConstSpan(misaligned, 1);
  EXPECT_EQ(run(p, bad), kInvalid);
  AttentionParams heads = p;
  heads.n_heads = 7;
  EXPECT_EQ(run(heads, s), kInvalid);
  AttentionParams d96 = testing::Params(BlockEncoding::Quantized(2, 32, 32), 8, 2, 96);
  EXPECT_EQ(run(d96, s), kInvalid);
  AttentionParams other_b = p;
  other_b.block_tokens = 16;
  EXPECT_EQ(run(other_b, s), kInvalid);
  EXPECT_EQ(CudaDecodeAttention(p, {s}, nullptr).code(), kInvalid);
  AttentionParams edges = p;
  edges.quantized_encoding.edge_layers = 1;
  edges.quantized_encoding.edge_bits = 8;
  EXPECT_EQ(run(edges, s), kInvalid);
}

TEST(CudaAttentionArgsTest, HostApiRejectsLikeTheReference) {
  std::mt19937 rng(7);
  const BlockEncoding enc = BlockEncoding::Quantized(2, 32, 32);
  testing::TestCache c = testing::BuildCache(rng, enc, 2, 64, 70, 2);
  c.cache.n_tokens = 97;  // more than the blocks hold
  std::vector<float> q(8 * 64, 0.5f), out(q.size(), 7.0f);
  const AttentionTask task{q.data(), &c.cache, out.data()};
  const AttentionParams p = testing::Params(enc, 8, 2, 64);
  const absl::Status got = CudaDecodeAttentionHost(p, {task});
  EXPECT_EQ(got.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(got, reference::DecodeAttention(p, {task}));
  EXPECT_EQ(out, std::vector<float>(q.size(), 7.0f));
}

// ---- With a GPU: against the reference. ----

absl::Status QuantizeOnGpu(const BlockEncoding& enc, int n_kv_heads, int d,
                           const std::vector<float>& k, const std::vector<float>& v,
                           std::vector<uint8_t>* out) {
  return CudaQuantizeLayerHost(enc, n_kv_heads, d, k.data(), v.data(), out->data());
}

absl::Status QuantizeFp16OnGpu(const BlockEncoding& enc, int n_kv_heads, int d,
                               const std::vector<uint16_t>& k,
                               const std::vector<uint16_t>& v,
                               std::vector<uint8_t>* out) {
  return CudaQuantizeLayerFp16Host(enc, n_kv_heads, d, k.data(), v.data(), out->data());
}

TEST(CudaQuantizeTest, BitIdenticalToReference) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(1);
  const int n_kv_heads = 3;
  for (int bits : kBits) {
    for (int d : kHeadDims) {
      for (int b : kBlockTokens) {
        for (int g : {std::min(32, d), d, 2}) {
          const BlockEncoding enc = BlockEncoding::Quantized(bits, b, g);
          for (int kind = 0; kind < 3; ++kind) {
            testing::ExpectQuantizeMatchesReference(rng, enc, n_kv_heads, d, kind,
                                                    &QuantizeOnGpu, &QuantizeFp16OnGpu);
          }
        }
      }
    }
  }
}

// Format 2 (cuda_emulation_test runs the same cases on the CPU emulator).
TEST(CudaQuantizeTest, Format2BitIdenticalToReference) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(8);
  const int n_kv_heads = 3;
  for (int d : kHeadDims) {
    for (int b : kBlockTokens) {
      for (const BlockEncoding& enc : testing::Format2QuantizeEncodings(b, d)) {
        for (int kind = 0; kind < 3; ++kind) {
          testing::ExpectQuantizeMatchesReference(rng, enc, n_kv_heads, d, kind,
                                                  &QuantizeOnGpu, &QuantizeFp16OnGpu);
        }
      }
    }
  }
}

TEST(CudaQuantizeTest, Fp16EncodingIdenticalToReference) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(2);
  for (int d : kHeadDims) {
    for (int b : kBlockTokens) {
      const BlockEncoding enc = BlockEncoding::Fp16(b);
      const std::vector<float> k = MakeData(rng, 2, 2, b, d, true);
      const std::vector<float> v = MakeData(rng, 1, 2, b, d, false);
      std::vector<uint8_t> want(LayerBytes(enc, 2, d)), got(want.size());
      ASSERT_TRUE(
          reference::QuantizeLayer(enc, 2, d, k.data(), v.data(), want.data()).ok());
      ASSERT_TRUE(CudaQuantizeLayerHost(enc, 2, d, k.data(), v.data(), got.data()).ok());
      EXPECT_EQ(want, got) << FirstDifference(want, got);
    }
  }
}

// A device buffer for the device-API tests.
struct DeviceBytes {
  explicit DeviceBytes(size_t n) : size(n) {
    EXPECT_EQ(cudaMalloc(&ptr, n), cudaSuccess);
  }
  ~DeviceBytes() { cudaFree(ptr); }
  void Put(const void* src) {
    ASSERT_EQ(cudaMemcpy(ptr, src, size, cudaMemcpyHostToDevice), cudaSuccess);
  }
  std::vector<uint8_t> Get() const {
    std::vector<uint8_t> out(size);
    EXPECT_EQ(cudaMemcpy(out.data(), ptr, size, cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  }
  void* ptr = nullptr;
  size_t size;
};

// n_blocks layer parts at once through the device API, then an Inf in the
// last block: INVALID_ARGUMENT and not one byte written.
void DeviceApiManyBlocks(std::mt19937& rng, const BlockEncoding& enc) {
  const int n_kv_heads = 4, d = 128, n_blocks = 5;
  const size_t per_block = static_cast<size_t>(n_kv_heads) * 32 * d;
  const size_t part = LayerBytes(enc, n_kv_heads, d);
  std::vector<float> k, v;
  for (int i = 0; i < n_blocks; ++i) {
    const std::vector<float> kb = MakeData(rng, i % 3, n_kv_heads, 32, d, true);
    const std::vector<float> vb = MakeData(rng, i % 3, n_kv_heads, 32, d, false);
    k.insert(k.end(), kb.begin(), kb.end());
    v.insert(v.end(), vb.begin(), vb.end());
  }
  DeviceBytes dk(k.size() * 4), dv(v.size() * 4), dout(part * n_blocks);
  dk.Put(k.data());
  dv.Put(v.data());
  CudaWorkspace ws;
  ASSERT_TRUE(CudaQuantizeLayers(
                  enc, n_kv_heads, d, n_blocks, static_cast<const float*>(dk.ptr),
                  static_cast<const float*>(dv.ptr), static_cast<uint8_t*>(dout.ptr), &ws)
                  .ok());
  const std::vector<uint8_t> got = dout.Get();
  for (int i = 0; i < n_blocks; ++i) {
    std::vector<uint8_t> want(part);
    ASSERT_TRUE(reference::QuantizeLayer(enc, n_kv_heads, d, &k[i * per_block],
                                         &v[i * per_block], want.data())
                    .ok());
    const std::vector<uint8_t> block(got.begin() + i * part,
                                     got.begin() + (i + 1) * part);
    EXPECT_EQ(want, block) << "block " << i << ": " << FirstDifference(want, block);
  }

  k[k.size() - 3] = -INFINITY;
  dk.Put(k.data());
  ASSERT_EQ(cudaMemset(dout.ptr, 0xab, dout.size), cudaSuccess);
  const absl::Status s = CudaQuantizeLayers(
      enc, n_kv_heads, d, n_blocks, static_cast<const float*>(dk.ptr),
      static_cast<const float*>(dv.ptr), static_cast<uint8_t*>(dout.ptr), &ws);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dout.Get(), std::vector<uint8_t>(dout.size, 0xab));
}

TEST(CudaQuantizeTest, DeviceApiManyBlocksAndNothingWrittenOnError) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  for (const BlockEncoding& enc :
       {BlockEncoding::Quantized(2, 32, 32),
        // Format 2: 4244-byte head sections, so heads start 4- but not
        // 16-byte aligned.
        BlockEncoding::Mixed(4, 2, 32, 32, 81, 81, ScaleFormat::kU8)}) {
    SCOPED_TRACE(absl::StrCat("outliers ", enc.k_outliers));
    DeviceApiManyBlocks(rng, enc);
  }
}

// ExpectAttentionMatchesReference with the CUDA host API.
void ExpectAttentionMatches(std::mt19937& rng, const BlockEncoding& enc, int n_heads,
                            int n_kv_heads, int d, const std::vector<int>& n_tokens,
                            const std::vector<int>& n_quantized) {
  const std::string what = absl::StrCat(
      "bits ", enc.bits, "/", enc.v_bits, " G ", enc.group, " outliers ", enc.k_outliers,
      "/", enc.v_outliers, " scales ", enc.scales, " B ", enc.block_tokens, " head_dim ",
      d, " heads ", n_heads, "/", n_kv_heads);
  testing::ExpectAttentionMatchesReference(rng, enc, n_heads, n_kv_heads, d, n_tokens,
                                           n_quantized, what, CudaDecodeAttentionHost);
}

TEST(CudaAttentionTest, MatchesReferenceAcrossShapes) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(4);
  for (int bits : {2, 4, 8, 16}) {
    for (int d : kHeadDims) {
      for (int b : kBlockTokens) {
        const BlockEncoding enc =
            bits == 16 ? BlockEncoding::Fp16(b)
                       : BlockEncoding::Quantized(bits, b, std::min(32, d));
        for (int gqa : {1, 2, 4, 8}) {
          // Tail only (1 token); quantized blocks + a partial tail; quantized
          // blocks only; quantized + full fp16 blocks.
          ExpectAttentionMatches(rng, enc, 2 * gqa, 2, d, {1, 5 * b + 7, 6 * b, 9 * b},
                                 {0, 5, 6, 5});
        }
      }
    }
  }
}

TEST(CudaAttentionTest, LongContextsSplitAndMerge) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(5);
  for (int bits : {2, 4, 8, 16}) {
    const BlockEncoding enc =
        bits == 16 ? BlockEncoding::Fp16(32) : BlockEncoding::Quantized(bits, 32, 32);
    // 4k and 1k tokens with a 128-token fp16 window, plus a short one.
    ExpectAttentionMatches(rng, enc, 32, 8, 128, {4096 + 100, 1024 + 31, 40},
                           {(4096 + 100 - 128) / 32, (1024 + 31 - 128) / 32, 1});
  }
}

TEST(CudaAttentionTest, LargeGqaGroupsAndValueGroups) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(6);
  // GQA 16 and 12 span two chunks of query heads per KV head.
  ExpectAttentionMatches(rng, BlockEncoding::Quantized(2, 32, 32), 32, 2, 128, {700},
                         {18});
  ExpectAttentionMatches(rng, BlockEncoding::Quantized(4, 16, 64), 24, 2, 64, {333},
                         {15});
  // Value groups smaller than a lane's channels (G = 2, 1 channel per byte).
  ExpectAttentionMatches(rng, BlockEncoding::Quantized(2, 32, 2), 8, 2, 128, {300}, {6});
  ExpectAttentionMatches(rng, BlockEncoding::Quantized(8, 16, 1), 8, 4, 64, {300}, {12});
  // The test model's shape: head_dim 8, 8 heads over 4 KV heads.
  ExpectAttentionMatches(rng, BlockEncoding::Quantized(2, 32, 8), 8, 4, 8, {512, 200},
                         {12, 2});
}

// Format 2 (cuda_emulation_test runs the same cases on the CPU emulator):
// every Format2AttentionEncodings entry at every compiled-in shape, GQA 1,
// 4 and 12, and a long context that takes the split-and-merge path.
TEST(CudaAttentionTest, Format2MatchesReference) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(9);
  for (int d : kHeadDims) {
    for (int b : kBlockTokens) {
      for (const BlockEncoding& enc : testing::Format2AttentionEncodings(b, d)) {
        for (int gqa : {1, 4, 12}) {
          ExpectAttentionMatches(rng, enc, 2 * gqa, 2, d, {1, 5 * b + 7, 6 * b, 9 * b},
                                 {0, 5, 6, 5});
        }
      }
    }
  }
  ExpectAttentionMatches(rng,
                         BlockEncoding::Mixed(4, 2, 32, 32, 81, 81, ScaleFormat::kU8), 32,
                         8, 128, {4096 + 100, 40}, {(4096 + 100 - 128) / 32, 1});
}

TEST(CudaKernelsTest, IsAKernelSet) {
  const KernelSet& k = CudaKernels();
  EXPECT_EQ(k.name, "cuda");
  EXPECT_EQ(k.quantize_layer, &CudaQuantizeLayerHost);
  EXPECT_EQ(k.decode_attention, &CudaDecodeAttentionHost);
}

}  // namespace
}  // namespace kvq::kernels
