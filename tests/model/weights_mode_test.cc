// --weights: parsing, model ids, the Transformer over bf16 and int8 weights
// (ppl on stories260K within a stated bound of fp32 weights, batch
// invariance, memory), and Bf16MatMul against PackedMatMul.
#include "model/weights_mode.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/paths.h"
#include "gtest/gtest.h"
#include "model/internal/bf16_matmul.h"
#include "model/internal/ops.h"
#include "model/internal/packed_matmul.h"
#include "model/internal/read_file.h"
#include "model/kv_cache_factory.h"
#include "model/model_loader.h"
#include "model/perplexity.h"
#include "model/transformer.h"
#include "tests/model/test_model.h"

namespace kvq::model {
namespace {

TEST(WeightsModeTest, Parse) {
  EXPECT_EQ(*ParseWeightsMode("fp32"), WeightsMode::kFp32);
  EXPECT_EQ(*ParseWeightsMode("BF16"), WeightsMode::kBf16);
  EXPECT_EQ(*ParseWeightsMode("int8"), WeightsMode::kInt8);
  for (const char* bad : {"", "int4", "fp16", "int8 "}) {
    absl::StatusOr<WeightsMode> m = ParseWeightsMode(bad);
    ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(m.status().message().find("fp32, bf16 or int8"), std::string::npos);
  }
  for (WeightsMode m : {WeightsMode::kFp32, WeightsMode::kBf16, WeightsMode::kInt8}) {
    EXPECT_EQ(*ParseWeightsMode(WeightsModeName(m)), m);
  }
}

TEST(WeightsModeTest, ModelIdDependsOnMode) {
  const uint64_t id = 0x0123456789abcdefull;
  EXPECT_EQ(ModelIdWithWeights(id, WeightsMode::kFp32), id);
  const uint64_t b = ModelIdWithWeights(id, WeightsMode::kBf16);
  const uint64_t i = ModelIdWithWeights(id, WeightsMode::kInt8);
  EXPECT_NE(b, id);
  EXPECT_NE(i, id);
  EXPECT_NE(b, i);
  absl::StatusOr<LoadedModel> fp32 = LoadModel(DefaultModelDir(), ModelLoadOptions{});
  absl::StatusOr<LoadedModel> int8 =
      LoadModel(DefaultModelDir(), {.weights = WeightsMode::kInt8});
  ASSERT_TRUE(fp32.ok() && int8.ok());
  EXPECT_EQ(fp32->model->id, testing::Stories260K().model->id);
  EXPECT_EQ(int8->model->weights_mode, WeightsMode::kInt8);
  EXPECT_EQ(int8->model->id, ModelIdWithWeights(fp32->model->id, WeightsMode::kInt8));
}

// Per matrix: out rounded up to 16 (panels); int8 also rounds in up to 4 and
// adds a float scale and an int32 offset per (padded) output.
size_t ExpectedBytes(const ModelConfig& c, WeightsMode mode) {
  struct Mat {
    int out, in;
  };
  std::vector<Mat> mats;
  for (int l = 0; l < c.n_layers; ++l) {
    for (Mat m : {Mat{c.QDim(), c.dim}, Mat{c.KvDim(), c.dim}, Mat{c.KvDim(), c.dim},
                  Mat{c.dim, c.QDim()}, Mat{c.hidden_dim, c.dim},
                  Mat{c.dim, c.hidden_dim}, Mat{c.hidden_dim, c.dim}}) {
      mats.push_back(m);
    }
  }
  mats.push_back({c.vocab_size, c.dim});
  size_t bytes = 0;
  for (const Mat& m : mats) {
    const size_t out = (m.out + 15) / 16 * 16;
    switch (mode) {
      case WeightsMode::kFp32:
        bytes += out * m.in * 4;
        break;
      case WeightsMode::kBf16:
        bytes += out * m.in * 2;
        break;
      case WeightsMode::kInt8:
        bytes += out * ((m.in + 3) / 4 * 4) + out * 8;
        break;
    }
  }
  return bytes;
}

TEST(WeightsModeTest, PackedBytesPerMode) {
  const ModelConfig c = testing::Stories260K().model->config;
  size_t bytes[3];
  for (WeightsMode mode : {WeightsMode::kFp32, WeightsMode::kBf16, WeightsMode::kInt8}) {
    Model m = testing::RandomModel(c, 3);
    SetWeightsMode(m, mode);
    Transformer t(m, RawWeights::kRelease);
    EXPECT_EQ(t.weight_bytes(), ExpectedBytes(c, mode)) << WeightsModeName(mode);
    bytes[int(mode)] = t.weight_bytes();
  }
  EXPECT_EQ(bytes[1] * 2, bytes[0]);
  // stories260K's inputs are multiples of 4: int8 is exactly a quarter plus
  // 8 bytes a (panel-padded) row.
  auto pad = [](int out) { return size_t(out + 15) / 16 * 16; };
  size_t rows = pad(c.vocab_size);
  rows += c.n_layers *
          (pad(c.QDim()) + 2 * pad(c.KvDim()) + 2 * pad(c.dim) + 2 * pad(c.hidden_dim));
  EXPECT_EQ(bytes[2], bytes[0] / 4 + rows * 8);
}

// ppl of stories260K on stories_dev.txt with bf16 / int8 weights against fp32
// weights, same KV mode. Measured (2026-12-05): fp32 kv 3.5049 with fp32,
// 3.5048 with bf16, 3.5036 with int8 weights (-0.04%). The bound, 0.5%, is
// five times the design table's 0.1% agreement between implementations.
TEST(WeightsModeTest, PplWithinBoundOfFp32Weights) {
  absl::StatusOr<std::string> text =
      model_internal::ReadFile(SharedDir() + "/data/stories_dev.txt");
  ASSERT_TRUE(text.ok()) << text.status();
  const LoadedModel& ref = testing::Stories260K();
  for (const char* kv : {"fp32", "kivi:bits=2,block=32,group=8,residual=64"}) {
    absl::StatusOr<KvMode> mode = ParseKvMode(kv);
    ASSERT_TRUE(mode.ok());
    mode = mode->Resolve(ref.model->config.HeadDim());
    ASSERT_TRUE(mode.ok());
    Transformer t_ref(*ref.model);
    absl::StatusOr<PerplexityResult> base =
        EvaluatePerplexity(t_ref, *ref.tokenizer, *text, *mode);
    ASSERT_TRUE(base.ok()) << base.status();
    for (WeightsMode w : {WeightsMode::kBf16, WeightsMode::kInt8}) {
      absl::StatusOr<LoadedModel> m = LoadModel(DefaultModelDir(), {.weights = w});
      ASSERT_TRUE(m.ok()) << m.status();
      Transformer t(*m->model, RawWeights::kRelease);
      absl::StatusOr<PerplexityResult> r =
          EvaluatePerplexity(t, *ref.tokenizer, *text, *mode);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_NEAR(r->ppl / base->ppl, 1.0, 0.005)
          << kv << " " << WeightsModeName(w) << ": " << r->ppl << " vs " << base->ppl;
      EXPECT_NE(r->ppl, base->ppl) << "the weights mode had no effect";
    }
  }
}

// Decoding several sequences in one batch gives each exactly the logits it
// gets alone; a kept model and a released one give the same results.
TEST(WeightsModeTest, BatchInvariantAndKeepReleaseAgree) {
  const LoadedModel& ref = testing::Stories260K();
  for (WeightsMode w : {WeightsMode::kBf16, WeightsMode::kInt8}) {
    Model kept = *ref.model;
    SetWeightsMode(kept, w);
    Model released = kept;
    Transformer tk(kept);
    Transformer tr(released, RawWeights::kRelease);
    absl::StatusOr<KvMode> mode = ParseKvMode("fp16");
    ASSERT_TRUE(mode.ok());
    const KvCacheShape shape = KvCacheShape::Of(kept.config);
    const std::vector<std::vector<int>> prompts = {
        {1, 5, 9, 200}, {1, 33}, {1, 7, 7, 7, 7, 8}};
    std::vector<std::unique_ptr<KvCache>> batch, alone, rel;
    std::vector<KvCache*> ptrs;
    for (const auto& p : prompts) {
      for (auto* v : {&batch, &alone, &rel}) {
        v->push_back(*NewKvCache(*mode, shape));
      }
      ASSERT_TRUE(tk.Prefill(p, *batch.back()).ok());
      ASSERT_TRUE(tk.Prefill(p, *alone.back()).ok());
      ASSERT_TRUE(tr.Prefill(p, *rel.back()).ok());
      ptrs.push_back(batch.back().get());
    }
    const int vocab = kept.config.vocab_size;
    for (int step = 0; step < 4; ++step) {
      std::vector<int> tokens = {10 + step, 20 + step, 30 + step};
      std::vector<float> logits;
      ASSERT_TRUE(tk.DecodeStep(tokens, ptrs, &logits).ok());
      for (size_t i = 0; i < prompts.size(); ++i) {
        absl::StatusOr<std::vector<float>> one = tk.Decode(tokens[i], *alone[i]);
        absl::StatusOr<std::vector<float>> r = tr.Decode(tokens[i], *rel[i]);
        ASSERT_TRUE(one.ok() && r.ok());
        EXPECT_EQ(std::memcmp(one->data(), &logits[i * vocab], vocab * sizeof(float)), 0)
            << WeightsModeName(w) << " step " << step << " sequence " << i;
        EXPECT_EQ(std::memcmp(one->data(), r->data(), vocab * sizeof(float)), 0)
            << WeightsModeName(w) << " kept vs released";
      }
    }
  }
}

// Bf16MatMul is PackedMatMul over the bf16-rounded weights, bit for bit,
// for each kernel.
TEST(Bf16MatMulTest, EqualsPackedMatMulOverRoundedWeights) {
  using namespace model_internal;
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  struct Shape {
    int n, in, out;
  };
  std::vector<MatMulKernel> kernels = {MatMulKernel::kPortable};
  if (HasAvx2Fma()) kernels.push_back(MatMulKernel::kAvx2Fma);
  for (const Shape& s : std::vector<Shape>{
           {1, 1, 1}, {3, 255, 17}, {7, 300, 100}, {13, 513, 48}, {150, 40, 18}}) {
    std::vector<float> x(size_t(s.n) * s.in), w(size_t(s.out) * s.in);
    for (float& f : x) f = normal(rng);
    for (float& f : w) f = normal(rng);
    std::vector<float> rounded(w.size());
    for (size_t i = 0; i < w.size(); ++i) rounded[i] = Bf16ToFloat(FloatToBf16(w[i]));
    const Bf16Matrix b(w.data(), s.out, s.in);
    const PackedMatrix p(rounded.data(), s.out, s.in);
    EXPECT_EQ(b.bytes() * 2, p.bytes());
    for (MatMulKernel k : kernels) {
      std::vector<float> yb(size_t(s.n) * s.out), yp(yb.size());
      Bf16MatMul(x.data(), s.n, b, yb.data(), k);
      PackedMatMul(x.data(), s.n, p, yp.data(), k);
      ASSERT_EQ(std::memcmp(yb.data(), yp.data(), yb.size() * sizeof(float)), 0)
          << "n " << s.n << " in " << s.in << " out " << s.out;
    }
    std::vector<float> row(s.in);
    b.Row(s.out - 1, row.data());
    EXPECT_EQ(std::memcmp(row.data(), &rounded[size_t(s.out - 1) * s.in], s.in * 4), 0);
  }
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.00390625f)), 1.0f);  // tie to even
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.01171875f)), 1.015625f);
}

}  // namespace
}  // namespace kvq::model
