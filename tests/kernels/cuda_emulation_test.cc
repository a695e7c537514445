// The CUDA kernels' device code (kernels/cuda/internal/*.cuh), run on the CPU
// through tests/kernels/cuda_emulator.h, against the scalar reference: the
// quantizer's bytes must be identical and attention within 2e-3 of
// max|reference| per head. This checks the kernels' indexing, bit packing,
// rounding, online softmax and split merging on every machine; the GPU test
// (cuda_kernels_test) checks the real thing where there is a GPU.

// clang-format off
// First: defines the CUDA built-ins the kernel headers below use.
#include "tests/kernels/cuda_emulator.h"
// clang-format on

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "kernels/block_format.h"
#include "kernels/cuda/internal/decode_attention.cuh"
#include "kernels/cuda/internal/dispatch.h"
#include "kernels/cuda/internal/params.h"
#include "kernels/cuda/internal/quantize.cuh"
#include "kernels/fp16.h"
#include "kernels/kernel_set.h"
#include "kernels/reference.h"
#include "tests/kernels/cuda_test_data.h"
#include "tests/kernels/test_util.h"

namespace kvq::kernels {
namespace {

using cuda_internal::DecodeParams;
using cuda_internal::QuantizeParams;
using cuda_internal::SequenceDesc;
using testing::FirstDifference;
using testing::MakeData;

// The quantize launch sequence of quantize.cu, emulated: check, then quantize.
template <typename In>
absl::Status EmulateQuantize(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                             const std::vector<In>& k, const std::vector<In>& v,
                             std::vector<uint8_t>* out) {
  void (*kernel)(QuantizeParams) = nullptr;
  const absl::Status dispatched = cuda_internal::DispatchQuantizeShape(
      enc.bits, enc.v_bits, head_dim, enc.block_tokens,
      [&](auto b, auto vb, auto d, auto t) {
        kernel =
            &cuda_internal::QuantizeKernel<In, decltype(b)::value, decltype(vb)::value,
                                           decltype(d)::value, decltype(t)::value>;
        return absl::OkStatus();
      });
  if (!dispatched.ok()) return dispatched;
  int error = 0;
  QuantizeParams p;
  p.k = k.data();
  p.v = v.data();
  p.out = out->data();
  p.error = &error;
  p.n_blocks = 1;
  p.n_kv_heads = n_kv_heads;
  p.group = enc.group;
  p.k_outliers = enc.k_outliers;
  p.v_outliers = enc.v_outliers;
  p.u8_scales = enc.u8_scales();
  p.head_bytes = GetHeadLayout(enc, head_dim).head_bytes;
  cuda_emu::Launch({2}, {64}, 0, [&] {
    cuda_internal::CheckFiniteKernel<In>(k.data(), k.size(), &error);
    cuda_internal::CheckFiniteKernel<In>(v.data(), v.size(), &error);
  });
  cuda_emu::Launch({static_cast<unsigned>(n_kv_heads)}, {cuda_internal::kQuantizeThreads},
                   0, [&] { kernel(p); });
  return error ? absl::InvalidArgumentError("non-finite") : absl::OkStatus();
}

TEST(CudaEmulationTest, QuantizeBitIdenticalToReference) {
  std::mt19937 rng(11);
  const int n_kv_heads = 2;
  for (int bits : {2, 4, 8}) {
    for (int d : {8, 64, 128}) {
      for (int b : {16, 32}) {
        for (int g : {std::min(32, d), 2}) {
          const BlockEncoding enc = BlockEncoding::Quantized(bits, b, g);
          for (int kind = 0; kind < 3; ++kind) {
            testing::ExpectQuantizeMatchesReference(rng, enc, n_kv_heads, d, kind,
                                                    &EmulateQuantize<float>,
                                                    &EmulateQuantize<uint16_t>);
          }
        }
      }
    }
  }
}

// Format 2 quantization, byte for byte (Format2QuantizeEncodings): keys and
// values at different bit widths, outliers (picked by distance from the
// group mean, left out of the min/max, stored in position order), u8 scales,
// together; several KV heads whose sections are not word-aligned (odd
// outlier counts), on model-like, adversarial (ties, constant groups, signed
// zeros, extremes) and wide-range data, from float and fp16 input.
TEST(CudaEmulationTest, QuantizeFormat2BitIdenticalToReference) {
  std::mt19937 rng(17);
  const int n_kv_heads = 3;
  for (int d : {8, 64, 128}) {
    for (int b : {16, 32}) {
      int i = 0;
      for (const BlockEncoding& enc : testing::Format2QuantizeEncodings(b, d)) {
        testing::ExpectQuantizeMatchesReference(rng, enc, n_kv_heads, d, i++ % 3,
                                                &EmulateQuantize<float>,
                                                &EmulateQuantize<uint16_t>);
      }
    }
  }
}

// Ties in the distance from the mean go to the lower position, as in the
// reference: constant groups but one entry, and whole sections of one value.
TEST(CudaEmulationTest, QuantizeOutlierTiesByPosition) {
  const int d = 64, b = 32, n_kv_heads = 2;
  const size_t n = size_t{n_kv_heads} * b * d;
  std::vector<float> k(n, 0.25f), v(n, -1.0f);
  for (size_t i = 0; i < n; i += 37) k[i] = (i % 2) ? 3.0f : -3.0f;
  for (const BlockEncoding& enc :
       {BlockEncoding::Mixed(2, 2, b, 8, 40, 40, ScaleFormat::kFp16),
        BlockEncoding::Mixed(4, 2, b, 8, 100, 7, ScaleFormat::kU8)}) {
    std::vector<uint8_t> want(LayerBytes(enc, n_kv_heads, d)), got(want.size(), 0xee);
    ASSERT_TRUE(
        reference::QuantizeLayer(enc, n_kv_heads, d, k.data(), v.data(), want.data())
            .ok());
    ASSERT_TRUE(EmulateQuantize<float>(enc, n_kv_heads, d, k, v, &got).ok());
    EXPECT_EQ(want, got) << FirstDifference(want, got);
  }
}

// Whether KV head h's key outliers in a layer part are stored by column
// (block_format.h), and how many columns the kernels use (*n_cols).
bool KeysByColumn(const BlockEncoding& enc, int head_dim, const uint8_t* part, int h,
                  int* n_cols = nullptr) {
  const HeadLayout l = GetHeadLayout(enc, head_dim);
  KeyColumns cols;
  const bool by_column =
      ReadKeyColumns(part + h * l.head_bytes + l.k_out_at, enc.block_tokens, head_dim,
                     enc.k_outliers, &cols);
  if (n_cols != nullptr) *n_cols = cols.n_cols;
  return by_column;
}

// Quantizes k and v ([n_kv_heads][B][head_dim]) on the reference and
// emulated, from float and from fp16, expecting the reference's bytes, and
// expects the reference to have stored every KV head's key outliers by
// column iff `by_column` (so that neither form's coverage can vanish
// unnoticed when the data or the rule change).
void ExpectQuantizeForm(const BlockEncoding& enc, int n_kv_heads, int d,
                        const std::vector<float>& k, const std::vector<float>& v,
                        bool by_column, const std::string& what) {
  std::vector<uint8_t> want(LayerBytes(enc, n_kv_heads, d));
  ASSERT_TRUE(
      reference::QuantizeLayer(enc, n_kv_heads, d, k.data(), v.data(), want.data()).ok())
      << what;
  for (int h = 0; h < n_kv_heads; ++h) {
    EXPECT_EQ(KeysByColumn(enc, d, want.data(), h), by_column)
        << what << " KV head " << h;
  }
  std::vector<uint8_t> got(want.size(), 0xee);
  ASSERT_TRUE(EmulateQuantize<float>(enc, n_kv_heads, d, k, v, &got).ok()) << what;
  EXPECT_EQ(want, got) << what << ": " << FirstDifference(want, got);
  std::vector<uint8_t> got16(want.size(), 0xee);
  ASSERT_TRUE(EmulateQuantize<uint16_t>(enc, n_kv_heads, d, testing::ToHalf(k),
                                        testing::ToHalf(v), &got16)
                  .ok())
      << what;
  EXPECT_EQ(want, got16) << what << " fp16 input: " << FirstDifference(want, got16);
}

// Key outliers by column (block_format.h, version 4), byte for byte: model-like
// keys (a few outlier channels) put a few % of outliers in few channels (by
// column); keys whose channels are all alike spread them over more channels
// than fit (by position, same encodings); every entry an outlier (every
// channel a full column); more columns than a warp has lanes.
TEST(CudaEmulationTest, QuantizeKeyOutliersByColumnAndByPosition) {
  std::mt19937 rng(18);
  const ScaleFormat kFp16 = ScaleFormat::kFp16, kU8 = ScaleFormat::kU8;
  const int n_kv_heads = 3;
  for (int d : {64, 128}) {
    for (int b : {16, 32}) {
      const int n = b * d, g = std::min(32, d);
      const int few = std::max(1, n / 50) | 1;  // about 2%, odd
      const std::vector<float> v = testing::RandomKv(rng, n_kv_heads * b, d, false);
      for (const BlockEncoding& enc :
           {BlockEncoding::Mixed(2, 2, b, g, few, few, kFp16),
            BlockEncoding::Mixed(4, 8, b, 2, few + 2, 1, kU8)}) {
        for (bool model_keys : {true, false}) {
          const std::string what =
              absl::StrCat("bits ", enc.bits, "/", enc.v_bits, " outliers ",
                           enc.k_outliers, " head_dim ", d, " B ", b,
                           model_keys ? " model-like keys" : " keys all alike");
          ExpectQuantizeForm(enc, n_kv_heads, d,
                             testing::RandomKv(rng, n_kv_heads * b, d, model_keys), v,
                             model_keys, what);
        }
      }
      ExpectQuantizeForm(BlockEncoding::Mixed(2, 4, b, 2, 3 * few, few, kU8), n_kv_heads,
                         d, testing::RandomKv(rng, n_kv_heads * b, d, true), v, true,
                         absl::StrCat("3x outliers head_dim ", d, " B ", b));
      ExpectQuantizeForm(BlockEncoding::Mixed(2, 2, b, g, n, 1, kU8), n_kv_heads, d,
                         testing::RandomKv(rng, n_kv_heads * b, d, false), v, true,
                         absl::StrCat("all key outliers head_dim ", d, " B ", b));
    }
  }
  // 300 outliers spread over most of 128 channels: more columns than lanes.
  const BlockEncoding many = BlockEncoding::Mixed(2, 2, 16, 32, 300, 300, kFp16);
  const std::vector<float> k = testing::RandomKv(rng, n_kv_heads * 16, 128, false);
  ExpectQuantizeForm(many, n_kv_heads, 128, k,
                     testing::RandomKv(rng, n_kv_heads * 16, 128, false), true,
                     "300 outliers, keys all alike");
  std::vector<uint8_t> part(LayerBytes(many, n_kv_heads, 128));
  ASSERT_TRUE(
      reference::QuantizeLayer(many, n_kv_heads, 128, k.data(), k.data(), part.data())
          .ok());
  int n_cols = 0;
  EXPECT_TRUE(KeysByColumn(many, 128, part.data(), 0, &n_cols));
  EXPECT_GT(n_cols, 32);
}

// The quantizer's rule at its limit: nk outliers in exactly
// MaxKeyColumns(B, nk) channels are stored by column, in one more by
// position (KV head 0 and KV head 1 of the same part).
TEST(CudaEmulationTest, QuantizeKeyColumnsAtTheLimit) {
  std::mt19937 rng(19);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  const int d = 64, n_kv_heads = 2;
  for (const BlockEncoding& enc :
       {BlockEncoding::Mixed(2, 2, 32, 8, 40, 3, ScaleFormat::kFp16),
        BlockEncoding::Mixed(4, 2, 16, 8, 21, 3, ScaleFormat::kU8)}) {
    const int b = enc.block_tokens, nk = enc.k_outliers;
    const int limit = MaxKeyColumns(b, nk);
    std::vector<float> k(static_cast<size_t>(n_kv_heads) * b * d);
    for (float& x : k) x = normal(rng);
    // KV head h: nk entries of 100 (the outliers: every other distance is
    // far smaller) in limit + h channels, as evenly as they go.
    for (int h = 0; h < n_kv_heads; ++h) {
      const int channels = limit + h;
      for (int i = 0; i < channels; ++i) {
        const int c = (5 * i + 3) % d;
        const int count = nk / channels + (i < nk % channels);
        for (int m = 0; m < count; ++m) {
          const int t = (3 * i + 7 * m) % b;
          k[(static_cast<size_t>(h) * b + t) * d + c] = 100.0f;
        }
      }
    }
    const std::vector<float> v = testing::RandomKv(rng, n_kv_heads * b, d, false);
    const std::string what = absl::StrCat("B ", b, " nk ", nk, " limit ", limit);
    std::vector<uint8_t> want(LayerBytes(enc, n_kv_heads, d));
    ASSERT_TRUE(
        reference::QuantizeLayer(enc, n_kv_heads, d, k.data(), v.data(), want.data())
            .ok());
    int n_cols = 0;
    EXPECT_TRUE(KeysByColumn(enc, d, want.data(), 0, &n_cols)) << what;
    EXPECT_EQ(n_cols, limit) << what;
    EXPECT_FALSE(KeysByColumn(enc, d, want.data(), 1)) << what;
    std::vector<uint8_t> got(want.size(), 0xee);
    ASSERT_TRUE(EmulateQuantize<float>(enc, n_kv_heads, d, k, v, &got).ok()) << what;
    EXPECT_EQ(want, got) << what << ": " << FirstDifference(want, got);
  }
}

TEST(CudaEmulationTest, QuantizeWritesNothingOnNonFinite) {
  std::mt19937 rng(12);
  const BlockEncoding enc = BlockEncoding::Quantized(2, 32, 32);
  std::vector<float> k = MakeData(rng, 0, 2, 32, 64, true);
  const std::vector<float> v = MakeData(rng, 0, 2, 32, 64, false);
  for (float bad : {NAN, -INFINITY, 70000.0f}) {
    k[1000] = bad;
    std::vector<uint8_t> out(LayerBytes(enc, 2, 64), 0xab);
    EXPECT_EQ(EmulateQuantize<float>(enc, 2, 64, k, v, &out).code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(out, std::vector<uint8_t>(out.size(), 0xab));
  }
}

// The attention launch of decode_attention.cc / decode_attention_launch.cuh,
// emulated with a given split size (blocks per split).
template <int kKBits, int kVBits, int kHeadDim, int kB>
void EmulateAttention(const AttentionParams& ap, const std::vector<AttentionTask>& batch,
                      int blocks_per_split) {
  constexpr bool kFp16 = kKBits == 16;
  const BlockEncoding& enc = ap.quantized_encoding;
  std::vector<SequenceDesc> descs(batch.size());
  std::vector<std::vector<const uint8_t*>> blocks(batch.size());
  int max_blocks = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const SequenceCache& c = *batch[i].cache;
    blocks[i] = c.quantized;
    blocks[i].insert(blocks[i].end(), c.fp16.begin(), c.fp16.end());
    const int n = static_cast<int>(blocks[i].size());
    max_blocks = std::max(max_blocks, n);
    descs[i] = {blocks[i].data(),
                batch[i].q,
                batch[i].out,
                static_cast<int>(c.quantized.size()),
                static_cast<int>(c.fp16.size()),
                c.n_tokens,
                (n + blocks_per_split - 1) / blocks_per_split};
  }
  DecodeParams p;
  p.seqs = descs.data();
  p.batch = static_cast<int>(batch.size());
  p.n_heads = ap.n_heads;
  p.n_kv_heads = ap.n_kv_heads;
  p.group = kFp16 ? 0 : enc.group;
  p.k_outliers = kFp16 ? 0 : enc.k_outliers;
  p.v_outliers = kFp16 ? 0 : enc.v_outliers;
  p.u8_scales = !kFp16 && enc.u8_scales();
  const int group_size = ap.n_heads / ap.n_kv_heads;
  p.head_chunks =
      (group_size + cuda_internal::kMaxHeadsPerCta - 1) / cuda_internal::kMaxHeadsPerCta;
  p.blocks_per_split = blocks_per_split;
  p.n_splits = (max_blocks + blocks_per_split - 1) / blocks_per_split;
  p.scale_log2 = static_cast<float>(1.4426950408889634 / std::sqrt(double{kHeadDim}));
  p.quantized_head_bytes = kFp16 ? 0 : GetHeadLayout(enc, kHeadDim).head_bytes;
  p.fp16_head_bytes = GetHeadLayout(BlockEncoding::Fp16(kB), kHeadDim).head_bytes;
  const size_t slots = batch.size() * ap.n_heads * p.n_splits;
  std::vector<float> partial_o(slots * kHeadDim), partial_ml(slots * 2);
  p.partial_o = partial_o.data();
  p.partial_ml = partial_ml.data();
  p.smem_per_warp = cuda_internal::AttentionStageBytes(
      kHeadDim, kB, p.quantized_head_bytes, p.v_outliers);
  const size_t smem = cuda_internal::AttentionSmemBytes(kHeadDim, kB, p.smem_per_warp);
  const cuda_emu::Dim3 grid{static_cast<unsigned>(p.n_splits),
                            static_cast<unsigned>(p.n_kv_heads * p.head_chunks),
                            static_cast<unsigned>(p.batch)};
  cuda_emu::Launch(grid, {cuda_internal::kAttentionWarps * 32}, smem, [&] {
    cuda_internal::DecodeAttentionKernel<kKBits, kVBits, kHeadDim, kB>(p);
  });
  if (p.n_splits > 1) {
    cuda_emu::Launch({static_cast<unsigned>(p.n_heads), static_cast<unsigned>(p.batch)},
                     {kHeadDim}, 0,
                     [&] { cuda_internal::MergeSplitsKernel<kHeadDim>(p); });
  }
}

// ExpectAttentionMatchesReference with the emulated launch.
void ExpectEmulatedAttentionMatches(std::mt19937& rng, const BlockEncoding& enc,
                                    int n_heads, int n_kv_heads, int d,
                                    const std::vector<int>& n_tokens,
                                    const std::vector<int>& n_quantized,
                                    int blocks_per_split) {
  const std::string what = absl::StrCat(
      "bits ", enc.bits, "/", enc.v_bits, " G ", enc.group, " outliers ", enc.k_outliers,
      "/", enc.v_outliers, " scales ", enc.scales, " B ", enc.block_tokens, " head_dim ",
      d, " heads ", n_heads, "/", n_kv_heads, " split ", blocks_per_split);
  testing::ExpectAttentionMatchesReference(
      rng, enc, n_heads, n_kv_heads, d, n_tokens, n_quantized, what,
      [&](const AttentionParams& p, const std::vector<AttentionTask>& tasks) {
        if (!enc.is_fp16()) {
          KVQ_RETURN_IF_ERROR(cuda_internal::CheckAttentionSmem(enc, d));
        }
        return cuda_internal::DispatchAttentionShape(
            enc.bits, enc.v_bits, d, enc.block_tokens,
            [&](auto b, auto vb, auto dd, auto t) {
              EmulateAttention<decltype(b)::value, decltype(vb)::value,
                               decltype(dd)::value, decltype(t)::value>(p, tasks,
                                                                        blocks_per_split);
              return absl::OkStatus();
            });
      });
}

// Attention of random queries over one sequence of the quantized layer
// parts `parts` (full blocks of `enc`), on the reference and emulated: every
// head within 2e-3 of its max|reference|. Returns the reference's output.
std::vector<float> ExpectAttentionOverParts(
    const BlockEncoding& enc, int n_heads, int n_kv_heads, int d,
    const std::vector<std::vector<uint8_t>>& parts, const std::vector<float>& q,
    const std::string& what) {
  SequenceCache cache;
  for (const std::vector<uint8_t>& part : parts) cache.quantized.push_back(part.data());
  cache.n_tokens = static_cast<int>(parts.size()) * enc.block_tokens;
  const AttentionParams p = testing::Params(enc, n_heads, n_kv_heads, d);
  std::vector<float> want(q.size(), NAN), got(q.size(), NAN);
  const std::vector<AttentionTask> ref_tasks = {{q.data(), &cache, want.data()}};
  const std::vector<AttentionTask> run_tasks = {{q.data(), &cache, got.data()}};
  const absl::Status ref = reference::DecodeAttention(p, ref_tasks);
  EXPECT_TRUE(ref.ok()) << what << ": " << ref;
  const absl::Status smem = cuda_internal::CheckAttentionSmem(enc, d);
  EXPECT_TRUE(smem.ok()) << what << ": " << smem;
  if (!ref.ok() || !smem.ok()) return want;
  const absl::Status s = cuda_internal::DispatchAttentionShape(
      enc.bits, enc.v_bits, d, enc.block_tokens, [&](auto b, auto vb, auto dd, auto t) {
        EmulateAttention<decltype(b)::value, decltype(vb)::value, decltype(dd)::value,
                         decltype(t)::value>(p, run_tasks, 4);
        return absl::OkStatus();
      });
  EXPECT_TRUE(s.ok()) << what << ": " << s;
  for (int h = 0; h < n_heads; ++h) {
    float ref_max = 0.0f, err = 0.0f;
    for (int c = 0; c < d; ++c) {
      const float r = want[h * d + c], g = got[h * d + c];
      ref_max = std::max(ref_max, std::fabs(r));
      err = std::isfinite(g) ? std::max(err, std::fabs(g - r)) : INFINITY;
    }
    EXPECT_LE(err, 2e-3f * ref_max) << what << " head " << h;
  }
  return want;
}

// Damages the key outlier columns of the head section at `head` in a way the
// kernels do not check (block_format.h): 0 a channel == head_dim and one of
// 255 (skipped, their corrections still counted); 1 a column count that
// does not fit, 2 a count of 0 (no key outliers either way); 3 one column
// fewer (the channels read from the last mask); 4 every token of the first
// column set (bits past the nk-th ignored, the others' corrections shifted).
void CorruptKeyColumns(const BlockEncoding& enc, int head_dim, uint8_t* head, int how) {
  const HeadLayout l = GetHeadLayout(enc, head_dim);
  uint8_t* at = head + l.k_out_at;
  const int n_cols = at[2] | at[3] << 8, mask_bytes = enc.block_tokens / 8;
  uint8_t* channels = at + 4 + n_cols * mask_bytes;
  int count = n_cols;
  switch (how) {
    case 0:
      channels[0] = static_cast<uint8_t>(head_dim);
      if (n_cols > 1) channels[n_cols - 1] = 255;
      break;
    case 1:
      count = MaxKeyColumns(enc.block_tokens, enc.k_outliers) + 1;
      break;
    case 2:
      count = 0;
      break;
    case 3:
      count = n_cols - 1;
      break;
    default:
      std::fill(at + 4, at + 4 + mask_bytes, 0xff);
      break;
  }
  at[2] = static_cast<uint8_t>(count & 0xff);
  at[3] = static_cast<uint8_t>(count >> 8);
}

// Attention over key outliers by column (block_format.h, version 4) and by
// position (keys whose channels are all alike, same encoding), with more
// columns than lanes, and over damaged columns, which the kernel must read
// as the reference does (and which must change the reference's output, so
// that the columns are seen to be read at all).
TEST(CudaEmulationTest, AttentionKeyOutliersByColumnByPositionAndDamaged) {
  std::mt19937 rng(20);
  const int n_heads = 4, n_kv_heads = 2, n_blocks = 3;
  struct Case {
    int d;
    BlockEncoding enc;
  };
  const ScaleFormat kFp16 = ScaleFormat::kFp16, kU8 = ScaleFormat::kU8;
  for (const Case& c : {Case{128, BlockEncoding::Mixed(2, 2, 32, 32, 81, 81, kFp16)},
                        Case{64, BlockEncoding::Mixed(4, 2, 16, 2, 21, 21, kU8)},
                        Case{128, BlockEncoding::Mixed(2, 2, 16, 32, 300, 300, kFp16)}}) {
    const BlockEncoding& enc = c.enc;
    const int d = c.d, b = enc.block_tokens;
    for (bool model_keys : {true, false}) {
      // 300 outliers lie in more channels than lanes but fit as columns.
      const bool by_column = model_keys || enc.k_outliers == 300;
      const std::string what = absl::StrCat(
          "bits ", enc.bits, "/", enc.v_bits, " outliers ", enc.k_outliers, " head_dim ",
          d, " B ", b, model_keys ? " model-like keys" : " keys all alike");
      std::vector<std::vector<uint8_t>> parts;
      for (int i = 0; i < n_blocks; ++i) {
        const std::vector<float> k =
            testing::RandomKv(rng, n_kv_heads * b, d, model_keys);
        const std::vector<float> v = testing::RandomKv(rng, n_kv_heads * b, d, false);
        parts.emplace_back(LayerBytes(enc, n_kv_heads, d));
        ASSERT_TRUE(reference::QuantizeLayer(enc, n_kv_heads, d, k.data(), v.data(),
                                             parts.back().data())
                        .ok())
            << what;
        for (int h = 0; h < n_kv_heads; ++h) {
          ASSERT_EQ(KeysByColumn(enc, d, parts.back().data(), h), by_column)
              << what << " block " << i << " KV head " << h;
        }
      }
      const std::vector<float> q = testing::RandomKv(rng, n_heads, d, false);
      const std::vector<float> intact =
          ExpectAttentionOverParts(enc, n_heads, n_kv_heads, d, parts, q, what);
      if (!by_column) continue;
      for (int how = 0; how < 5; ++how) {
        std::vector<std::vector<uint8_t>> damaged = parts;
        const size_t head_bytes = GetHeadLayout(enc, d).head_bytes;
        for (std::vector<uint8_t>& part : damaged) {
          for (int h = 0; h < n_kv_heads; ++h) {
            CorruptKeyColumns(enc, d, part.data() + h * head_bytes, how);
          }
        }
        const std::string damage = absl::StrCat(what, " damage ", how);
        EXPECT_NE(
            ExpectAttentionOverParts(enc, n_heads, n_kv_heads, d, damaged, q, damage),
            intact)
            << damage;
      }
    }
  }
}

TEST(CudaEmulationTest, AttentionMatchesReference) {
  std::mt19937 rng(13);
  for (int bits : {2, 4, 8, 16}) {
    for (int d : {8, 64, 128}) {
      for (int b : {16, 32}) {
        const BlockEncoding enc =
            bits == 16 ? BlockEncoding::Fp16(b)
                       : BlockEncoding::Quantized(bits, b, std::min(32, d));
        // 1 token; quantized + partial fp16 tail; quantized only. Splits of 4
        // blocks (5 + 1 blocks: two splits) and one split for everything.
        for (int split : {4, 64}) {
          ExpectEmulatedAttentionMatches(rng, enc, 4, 2, d, {1, 5 * b + 7, 4 * b},
                                         {0, 5, 4}, split);
        }
      }
    }
  }
}

TEST(CudaEmulationTest, AttentionGqaChunksAndValueGroups) {
  std::mt19937 rng(14);
  // GQA 1, 8 and 12 (two chunks of query heads per KV head).
  ExpectEmulatedAttentionMatches(rng, BlockEncoding::Quantized(2, 32, 32), 2, 2, 64,
                                 {200}, {4}, 4);
  ExpectEmulatedAttentionMatches(rng, BlockEncoding::Quantized(4, 16, 64), 8, 1, 64,
                                 {150}, {7}, 4);
  ExpectEmulatedAttentionMatches(rng, BlockEncoding::Quantized(2, 32, 32), 24, 2, 128,
                                 {300}, {6}, 4);
  // Value groups smaller than a lane's channels: G = 1 and 2.
  ExpectEmulatedAttentionMatches(rng, BlockEncoding::Quantized(2, 32, 2), 4, 2, 128,
                                 {150}, {3}, 4);
  ExpectEmulatedAttentionMatches(rng, BlockEncoding::Quantized(8, 16, 1), 4, 2, 64, {100},
                                 {4}, 4);
}

// Format 2 (kernels/README.md, Format2AttentionEncodings): keys and values
// at different bit widths, fp16 outliers (the kernel adds their exact
// contribution and removes their codes'), u8 scales, and all of them
// together, over every compiled-in head_dim and B. Outlier counts are odd,
// so most sections are not a multiple of 16 bytes (the narrow-copy path) and
// positions are u8 (head_dim 8) or u16.
TEST(CudaEmulationTest, AttentionFormat2MatchesReference) {
  std::mt19937 rng(15);
  for (int d : {8, 64, 128}) {
    for (int b : {16, 32}) {
      int i = 0;
      for (const BlockEncoding& enc : testing::Format2AttentionEncodings(b, d)) {
        // Splits of 4 blocks (5 + 1 blocks: two splits) or one split, in turn.
        ExpectEmulatedAttentionMatches(rng, enc, 4, 2, d, {1, 5 * b + 7, 4 * b},
                                       {0, 5, 4}, i++ % 2 == 0 ? 4 : 64);
      }
    }
  }
}

TEST(CudaEmulationTest, AttentionFormat2GqaAndManyOutliers) {
  std::mt19937 rng(16);
  const ScaleFormat kFp16 = ScaleFormat::kFp16, kU8 = ScaleFormat::kU8;
  // GQA 8 and 12 (two chunks of query heads): every query head gets the
  // outliers' fixes.
  ExpectEmulatedAttentionMatches(rng, BlockEncoding::Mixed(2, 4, 32, 32, 82, 81, kU8), 16,
                                 2, 128, {300}, {6}, 4);
  ExpectEmulatedAttentionMatches(rng, BlockEncoding::Mixed(4, 2, 16, 64, 21, 20, kFp16),
                                 24, 2, 64, {150}, {7}, 4);
  // Many outliers (more than a warp's lanes, several on one token and
  // channel's neighbours), value groups G = 1.
  ExpectEmulatedAttentionMatches(rng, BlockEncoding::Mixed(2, 2, 32, 1, 300, 300, kFp16),
                                 4, 2, 64, {200}, {5}, 4);
  // The test model's shape: head_dim 8, 8 heads over 4 KV heads, u8 scales.
  ExpectEmulatedAttentionMatches(rng, BlockEncoding::Mixed(4, 2, 32, 8, 5, 5, kU8), 8, 4,
                                 8, {512, 200}, {12, 2}, 4);
}

// An encoding whose staged section does not fit the attention kernel's
// shared memory is INVALID_ARGUMENT (the launchers check before launching).
TEST(CudaEmulationTest, AttentionFormat2SharedMemoryLimit) {
  // Every entry an outlier: a section far larger than an fp16 one.
  const BlockEncoding huge =
      BlockEncoding::Mixed(8, 8, 32, 32, 4096, 4096, ScaleFormat::kFp16);
  const absl::Status s = cuda_internal::CheckAttentionSmem(huge, 128);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(cuda_internal::CheckAttentionSmem(
                  BlockEncoding::Mixed(8, 8, 32, 32, 400, 400, ScaleFormat::kU8), 128)
                  .ok());
}

}  // namespace
}  // namespace kvq::kernels
