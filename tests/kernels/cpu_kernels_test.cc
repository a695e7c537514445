// The optimized CPU variants (kernels/cpu/) against the scalar reference:
// quantization bit-identical on random and adversarial data, attention
// within 2e-3 of max|reference| per head over bits, head_dim, GQA, partial
// blocks, mixed quantized/fp16 caches, batches and split contexts. A variant
// this CPU cannot run is skipped with a message.
#include "kernels/cpu/cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "kernels/block_format.h"
#include "kernels/fp16.h"
#include "kernels/kernel_set.h"
#include "kernels/reference.h"
#include "tests/kernels/test_util.h"

namespace kvq::kernels {
namespace {

struct VariantCase {
  const char* name;
  bool (*supported)();
  const KernelSet& (*kernels)();
};

const VariantCase kVariants[] = {
    {"avx2", &cpu::Avx2Supported, &cpu::Avx2Kernels},
    {"avx512", &cpu::Avx512Supported, &cpu::Avx512Kernels},
};

class CpuKernelsTest : public ::testing::TestWithParam<VariantCase> {
 protected:
  void SetUp() override {
    if (!GetParam().supported()) {
      GTEST_SKIP() << "this CPU lacks the instructions of the " << GetParam().name
                   << " variant; skipped";
    }
  }
  const KernelSet& K() const { return GetParam().kernels(); }
};

// Quantizes k/v with the variant and the reference (float and fp16 entry
// points) and expects identical bytes.
void ExpectSameQuantization(const KernelSet& ks, const BlockEncoding& enc, int n_kv_heads,
                            int head_dim, const std::vector<float>& k,
                            const std::vector<float>& v) {
  const size_t bytes = LayerBytes(enc, n_kv_heads, head_dim);
  std::vector<uint8_t> want(bytes, 0xAB), got(bytes, 0xCD);
  ASSERT_TRUE(
      reference::QuantizeLayer(enc, n_kv_heads, head_dim, k.data(), v.data(), want.data())
          .ok());
  ASSERT_TRUE(
      ks.quantize_layer(enc, n_kv_heads, head_dim, k.data(), v.data(), got.data()).ok());
  const std::string what = "bits " + std::to_string(enc.bits) + " B " +
                           std::to_string(enc.block_tokens) + " G " +
                           std::to_string(enc.group) + " D " + std::to_string(head_dim);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < bytes; ++i) {
    ASSERT_EQ(want[i], got[i]) << what << ": first difference at byte " << i;
  }
  const std::vector<uint16_t> kh = testing::ToHalf(k), vh = testing::ToHalf(v);
  std::fill(got.begin(), got.end(), 0xEF);
  ASSERT_TRUE(
      ks.quantize_layer_fp16(enc, n_kv_heads, head_dim, kh.data(), vh.data(), got.data())
          .ok());
  EXPECT_EQ(want, got) << what << " (fp16 input)";
}

TEST_P(CpuKernelsTest, QuantizeMatchesReferenceOnRandomData) {
  std::mt19937 rng(1);
  for (int bits : {2, 4, 8}) {
    for (int head_dim : {8, 64, 128}) {
      for (int B : {8, 32, 40}) {
        for (int G : {8, 32, head_dim, 4}) {  // G = 4 takes the reference path
          if (G > head_dim || head_dim % G != 0) continue;
          const BlockEncoding enc = BlockEncoding::Quantized(bits, B, G);
          const int n_kv_heads = 2;
          const std::vector<float> k =
              testing::RandomKv(rng, n_kv_heads * B, head_dim, true);
          const std::vector<float> v =
              testing::RandomKv(rng, n_kv_heads * B, head_dim, false);
          ExpectSameQuantization(K(), enc, n_kv_heads, head_dim, k, v);
        }
      }
    }
  }
  // fp16 encodings are a plain conversion.
  std::vector<float> k = testing::RandomKv(rng, 32, 64, true);
  ExpectSameQuantization(K(), BlockEncoding::Fp16(32), 1, 64, k, k);
}

// Values that sit exactly on rounding ties, constant groups (scale 0), the
// fp16 extremes, subnormals and signed zeros.
std::vector<float> Adversarial(std::mt19937& rng, size_t n, int kind) {
  std::vector<float> x(n);
  std::uniform_int_distribution<int> pick(0, 7);
  for (size_t i = 0; i < n; ++i) {
    switch (kind) {
      case 0:  // Ties: multiples of 0.5 over [0, 3] so (x - 0) / 1 hits .5.
        x[i] = 0.5f * pick(rng) * 3.0f / 7.0f * 2.0f;
        x[i] = std::round(x[i] * 2.0f) / 2.0f;
        if (i % 8 == 0) x[i] = 0.0f;
        if (i % 8 == 1) x[i] = 3.0f;
        break;
      case 1:  // Constant, with signed zeros.
        x[i] = (i % 3 == 0) ? -0.0f : 0.0f;
        break;
      case 2:  // Constant non-zero.
        x[i] = 1.25f;
        break;
      case 3:  // Extremes of the fp16 range.
        x[i] = (pick(rng) & 1) ? 65504.0f : -65504.0f;
        if (i % 5 == 0) x[i] = 0.0f;
        break;
      case 4:  // Subnormal halves and tiny ranges.
        x[i] = pick(rng) * 5.96046448e-8f;
        break;
      default:  // Values that round to fp16 ties (fp32 -> fp16 rounding).
        x[i] = 1.0f + (2 * pick(rng) + 1) * 0.00048828125f;
        break;
    }
  }
  return x;
}

TEST_P(CpuKernelsTest, QuantizeMatchesReferenceOnAdversarialData) {
  std::mt19937 rng(2);
  for (int kind = 0; kind < 6; ++kind) {
    for (int bits : {2, 4, 8}) {
      for (int G : {8, 32}) {
        const int head_dim = 64, B = 32, n_kv_heads = 2;
        const BlockEncoding enc = BlockEncoding::Quantized(bits, B, G);
        const std::vector<float> k = Adversarial(rng, n_kv_heads * B * head_dim, kind);
        const std::vector<float> v = Adversarial(rng, n_kv_heads * B * head_dim, kind);
        ExpectSameQuantization(K(), enc, n_kv_heads, head_dim, k, v);
      }
    }
  }
}

TEST_P(CpuKernelsTest, QuantizeRejectsWhatTheReferenceRejects) {
  const BlockEncoding enc = BlockEncoding::Quantized(2, 32, 32);
  const int head_dim = 64, n = 32 * head_dim;
  for (float bad : {NAN, INFINITY, 70000.0f}) {
    std::vector<float> k(n, 1.0f), v(n, 1.0f);
    v[77] = bad;
    std::vector<uint8_t> want(LayerBytes(enc, 1, head_dim), 7), got(want.size(), 7);
    const absl::Status ws =
        reference::QuantizeLayer(enc, 1, head_dim, k.data(), v.data(), want.data());
    const absl::Status gs =
        K().quantize_layer(enc, 1, head_dim, k.data(), v.data(), got.data());
    EXPECT_EQ(ws, gs);
    EXPECT_EQ(gs.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(got, std::vector<uint8_t>(got.size(), 7)) << "wrote output on error";
  }
  std::vector<uint16_t> kh(n, 0x3c00), vh(n, 0x3c00);
  kh[5] = 0x7e00;  // NaN
  std::vector<uint8_t> out(LayerBytes(enc, 1, head_dim));
  EXPECT_EQ(
      K().quantize_layer_fp16(enc, 1, head_dim, kh.data(), vh.data(), out.data()),
      reference::QuantizeLayerFp16(enc, 1, head_dim, kh.data(), vh.data(), out.data()));
}

// Runs attention with the variant and the reference on the same caches and
// checks every head within 2e-3 of that head's max |reference|.
void ExpectAttentionClose(const KernelSet& ks, AttentionParams p,
                          const std::vector<testing::TestCache>& caches,
                          const std::vector<std::vector<float>>& qs,
                          const std::string& what) {
  const size_t n_out = static_cast<size_t>(p.n_heads) * p.head_dim;
  std::vector<std::vector<float>> want(caches.size(), std::vector<float>(n_out)),
      got(caches.size(), std::vector<float>(n_out, NAN));
  std::vector<AttentionTask> ref_batch, batch;
  for (size_t i = 0; i < caches.size(); ++i) {
    ref_batch.push_back({qs[i].data(), &caches[i].cache, want[i].data()});
    batch.push_back({qs[i].data(), &caches[i].cache, got[i].data()});
  }
  ASSERT_TRUE(reference::DecodeAttention(p, ref_batch).ok()) << what;
  const absl::Status s = ks.decode_attention(p, batch);
  ASSERT_TRUE(s.ok()) << what << ": " << s;
  for (size_t i = 0; i < caches.size(); ++i) {
    for (int h = 0; h < p.n_heads; ++h) {
      const float* w = &want[i][static_cast<size_t>(h) * p.head_dim];
      const float* g = &got[i][static_cast<size_t>(h) * p.head_dim];
      float max_abs = 0.0f, max_err = 0.0f;
      for (int d = 0; d < p.head_dim; ++d) {
        max_abs = std::max(max_abs, std::fabs(w[d]));
        max_err = std::max(max_err, std::fabs(w[d] - g[d]));
      }
      ASSERT_LE(max_err, 2e-3f * max_abs)
          << what << " task " << i << " head " << h << " max|ref| " << max_abs;
    }
  }
}

std::vector<float> RandomQuery(std::mt19937& rng, int n_heads, int head_dim) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(n_heads) * head_dim);
  for (float& x : q) x = normal(rng);
  return q;
}

// Caches of the given {tokens, quantized blocks} shapes, each with a random
// query.
struct TestBatch {
  std::vector<testing::TestCache> caches;  // moved in: a cache points into its parts
  std::vector<std::vector<float>> qs;
};
TestBatch MakeBatch(std::mt19937& rng, const BlockEncoding& enc, int n_heads,
                    int n_kv_heads, int head_dim,
                    const std::vector<std::pair<int, int>>& shapes) {
  TestBatch b;
  for (const auto& [tokens, quantized] : shapes) {
    b.caches.push_back(
        testing::BuildCache(rng, enc, n_kv_heads, head_dim, tokens, quantized));
    b.qs.push_back(RandomQuery(rng, n_heads, head_dim));
  }
  return b;
}

TEST_P(CpuKernelsTest, AttentionMatchesReference) {
  std::mt19937 rng(3);
  for (int bits : {2, 4, 8}) {
    for (int head_dim : {8, 64, 128}) {
      // 3 and 6: query heads not a multiple of the kernels' groups of 4.
      for (int gqa : {1, 2, 3, 4, 6, 8}) {
        const int n_kv_heads = 2, B = 32;
        const int G = std::min(32, head_dim);
        const BlockEncoding enc = BlockEncoding::Quantized(bits, B, G);
        // Contexts not multiples of B; quantized blocks then an fp16 tail.
        const int n_tokens = 3 * B + 17 + (gqa * 13) % 29;
        const int n_quantized = 3;
        std::vector<testing::TestCache> caches;
        caches.push_back(
            testing::BuildCache(rng, enc, n_kv_heads, head_dim, n_tokens, n_quantized));
        std::vector<std::vector<float>> qs = {
            RandomQuery(rng, n_kv_heads * gqa, head_dim)};
        AttentionParams p = testing::Params(enc, n_kv_heads * gqa, n_kv_heads, head_dim);
        for (int threads : {1, 2}) {
          p.n_threads = threads;
          ExpectAttentionClose(
              K(), p, caches, qs,
              "bits " + std::to_string(bits) + " D " + std::to_string(head_dim) +
                  " gqa " + std::to_string(gqa) + " threads " + std::to_string(threads));
        }
      }
    }
  }
}

TEST_P(CpuKernelsTest, AttentionOverBatchesAndCacheShapes) {
  std::mt19937 rng(4);
  const int head_dim = 64, n_kv_heads = 2, n_heads = 8, B = 16;
  const BlockEncoding enc = BlockEncoding::Quantized(2, B, 32);
  // fp16 only (one token, a partial block, full blocks), quantized only,
  // and mixed.
  const auto [caches, qs] =
      MakeBatch(rng, enc, n_heads, n_kv_heads, head_dim,
                {{1, 0}, {5, 0}, {48, 0}, {64, 4}, {70, 4}, {200, 10}});
  AttentionParams p = testing::Params(enc, n_heads, n_kv_heads, head_dim);
  for (int threads : {1, 2, 3}) {
    p.n_threads = threads;
    ExpectAttentionClose(K(), p, caches, qs, "batch threads " + std::to_string(threads));
  }
}

// One KV head and one sequence: the context is split into chunks whose
// partial softmax states are merged.
TEST_P(CpuKernelsTest, SplitContextMatchesReference) {
  std::mt19937 rng(5);
  for (int bits : {2, 8}) {
    const int head_dim = 128, B = 32;
    const BlockEncoding enc = BlockEncoding::Quantized(bits, B, 32);
    std::vector<testing::TestCache> caches;  // moved in: the cache points into parts
    // 3 chunks of 64 blocks (the last with the remainder) on any thread count.
    caches.push_back(testing::BuildCache(rng, enc, 1, head_dim, 200 * B + 9, 196));
    std::vector<std::vector<float>> qs = {RandomQuery(rng, 4, head_dim)};
    AttentionParams p = testing::Params(enc, 4, 1, head_dim);
    for (int threads : {1, 2, 4}) {
      p.n_threads = threads;
      ExpectAttentionClose(
          K(), p, caches, qs,
          "split bits " + std::to_string(bits) + " threads " + std::to_string(threads));
    }
  }
}

// Batch invariance: a sequence's output is bit-identical computed alone or
// inside any batch, with any number of threads (its context's chunks depend
// on its length only), also for a shape the SIMD kernels leave to the
// reference (G = 4) when the batch mixes fp16-only and quantized caches.
TEST_P(CpuKernelsTest, AttentionIsBatchInvariant) {
  std::mt19937 rng(7);
  for (int group : {32, 4}) {
    const int head_dim = 64, n_kv_heads = 2, n_heads = 8, B = 32;
    const BlockEncoding enc = BlockEncoding::Quantized(2, B, group);
    // fp16 only (short, then long enough to be chunked), quantized + fp16.
    // (64-block chunks: the long ones are cut in 2 and 3.)
    const auto [caches, qs] =
        MakeBatch(rng, enc, n_heads, n_kv_heads, head_dim,
                  {{9, 0}, {130 * B + 5, 0}, {200 * B + 3, 196}, {3 * B, 2}});
    const size_t n_out = static_cast<size_t>(n_heads) * head_dim;
    AttentionParams p = testing::Params(enc, n_heads, n_kv_heads, head_dim);
    std::vector<std::vector<float>> alone(caches.size(), std::vector<float>(n_out));
    for (size_t i = 0; i < caches.size(); ++i) {
      p.n_threads = 1;
      const AttentionTask task{qs[i].data(), &caches[i].cache, alone[i].data()};
      ASSERT_TRUE(K().decode_attention(p, {&task, 1}).ok());
    }
    for (int threads : {1, 2, 3}) {
      for (size_t first = 0; first < caches.size(); ++first) {
        // The batch of every sequence from `first` on, in reverse order.
        std::vector<std::vector<float>> got(caches.size(), std::vector<float>(n_out));
        std::vector<AttentionTask> batch;
        for (size_t i = caches.size(); i-- > first;) {
          batch.push_back({qs[i].data(), &caches[i].cache, got[i].data()});
        }
        p.n_threads = threads;
        ASSERT_TRUE(K().decode_attention(p, batch).ok());
        for (size_t i = first; i < caches.size(); ++i) {
          EXPECT_EQ(got[i], alone[i])
              << "G " << group << " threads " << threads << " sequence " << i
              << " in a batch of " << batch.size();
        }
      }
    }
  }
}

// A caller's thread pool (AttentionParams::parallel_for: the model lends its
// OpenMP team) runs the work items when more than one thread is allowed, and
// the outputs are bit-identical to the kernels' own pool's.
int g_runner_calls = 0;
void TwoThreadsBackwards(int n, int threads, const std::function<void(int)>& fn) {
  ++g_runner_calls;
  EXPECT_GT(threads, 1);
  std::thread other([&] {
    for (int i = n - 1; i >= 0; i -= 2) fn(i);
  });
  for (int i = n - 2; i >= 0; i -= 2) fn(i);
  other.join();
}

TEST_P(CpuKernelsTest, AttentionRunsOnTheCallersThreads) {
  std::mt19937 rng(8);
  const int head_dim = 64, n_kv_heads = 2, n_heads = 8, B = 32;
  const BlockEncoding enc = BlockEncoding::Quantized(2, B, 32);
  const auto [caches, qs] = MakeBatch(rng, enc, n_heads, n_kv_heads, head_dim,
                                      {{200 * B + 3, 196}, {3 * B, 2}});
  const size_t n_out = static_cast<size_t>(n_heads) * head_dim;
  for (int threads : {1, 2, 4}) {
    std::vector<std::vector<float>> own(2, std::vector<float>(n_out)), lent = own;
    std::vector<AttentionTask> a, b;
    for (size_t i = 0; i < caches.size(); ++i) {
      a.push_back({qs[i].data(), &caches[i].cache, own[i].data()});
      b.push_back({qs[i].data(), &caches[i].cache, lent[i].data()});
    }
    AttentionParams p = testing::Params(enc, n_heads, n_kv_heads, head_dim);
    p.n_threads = threads;
    ASSERT_TRUE(K().decode_attention(p, a).ok());
    p.parallel_for = &TwoThreadsBackwards;
    g_runner_calls = 0;
    ASSERT_TRUE(K().decode_attention(p, b).ok());
    EXPECT_EQ(lent, own) << "threads " << threads;
    EXPECT_EQ(g_runner_calls, threads > 1 ? 1 : 0) << "threads " << threads;
  }
}

TEST_P(CpuKernelsTest, AttentionRejectsWhatTheReferenceRejects) {
  std::mt19937 rng(6);
  const BlockEncoding enc = BlockEncoding::Quantized(2, 32, 32);
  testing::TestCache c = testing::BuildCache(rng, enc, 1, 64, 50, 1);
  std::vector<float> q = RandomQuery(rng, 2, 64), out(2 * 64, 5.0f);
  q[3] = NAN;
  AttentionParams p = testing::Params(enc, 2, 1, 64);
  std::vector<AttentionTask> batch = {{q.data(), &c.cache, out.data()}};
  EXPECT_EQ(K().decode_attention(p, batch), reference::DecodeAttention(p, batch));
  EXPECT_EQ(out, std::vector<float>(out.size(), 5.0f));
  q[3] = 0.0f;
  p.n_threads = 0;
  EXPECT_EQ(K().decode_attention(p, batch).code(), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Variants, CpuKernelsTest, ::testing::ValuesIn(kVariants),
                         [](const ::testing::TestParamInfo<VariantCase>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace kvq::kernels
