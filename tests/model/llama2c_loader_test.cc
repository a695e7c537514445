#include "model/llama2c_loader.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "common/paths.h"
#include "gtest/gtest.h"
#include "model/synthetic_model.h"
#include "tests/model/test_model.h"

namespace kvq::model {
namespace {

using ::kvq::model::testing::RandomModel;
using ::kvq::model::testing::SmallConfig;
using ::kvq::model::testing::Stories260K;

TEST(Llama2cLoaderTest, LoadsStories260K) {
  const Model& m = *Stories260K().model;
  EXPECT_EQ(m.config.dim, 64);
  EXPECT_EQ(m.config.hidden_dim, 172);
  EXPECT_EQ(m.config.n_layers, 5);
  EXPECT_EQ(m.config.n_heads, 8);
  EXPECT_EQ(m.config.n_kv_heads, 4);
  EXPECT_EQ(m.config.vocab_size, 512);
  EXPECT_EQ(m.config.seq_len, 512);
  EXPECT_EQ(m.config.HeadDim(), 8);
  EXPECT_TRUE(m.config.shared_classifier);
  EXPECT_TRUE(CheckWeightShapes(m.config, m.weights).ok());
  EXPECT_NE(m.id, 0u);
}

TEST(Llama2cLoaderTest, RoundTripsAndSeparateClassifier) {
  for (bool shared : {true, false}) {
    ModelConfig c = SmallConfig();
    c.shared_classifier = shared;
    Model m = RandomModel(c, 7);
    absl::StatusOr<Model> back = ParseLlama2c(SerializeLlama2c(m));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->config.shared_classifier, shared);
    EXPECT_EQ(back->weights.layers[1].w2, m.weights.layers[1].w2);
    EXPECT_EQ(back->weights.classifier, m.weights.classifier);
    EXPECT_EQ(back->id, m.id);
  }
}

TEST(Llama2cLoaderTest, ModelIdDependsOnEveryByte) {
  Model m = RandomModel(SmallConfig(), 7);
  const uint64_t id = m.id;
  EXPECT_EQ(ComputeModelId(m.config, m.weights), id);
  m.weights.layers[1].w3.back() += 1e-3f;
  EXPECT_NE(ComputeModelId(m.config, m.weights), id);
  Model other = RandomModel(SmallConfig(), 7);
  other.config.seq_len = 256;
  EXPECT_NE(ComputeModelId(other.config, other.weights), id);
}

TEST(Llama2cLoaderTest, RejectsBadFiles) {
  const std::string good = SerializeLlama2c(RandomModel(SmallConfig(), 1));
  // Truncated: header only, half, one float short.
  for (size_t n : {size_t{0}, size_t{10}, good.size() / 2, good.size() - 4}) {
    absl::StatusOr<Model> m = ParseLlama2c(good.substr(0, n));
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << n;
  }
  EXPECT_EQ(ParseLlama2c(good + "xxxx").status().code(),
            absl::StatusCode::kInvalidArgument);
  // Header disagreeing with the size, and out-of-range header fields.
  auto with_header = [&](int field, int32_t value) {
    std::string bad = good;
    std::memcpy(bad.data() + 4 * field, &value, 4);
    return ParseLlama2c(bad).status();
  };
  EXPECT_EQ(with_header(0, 64).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(with_header(2, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(with_header(4, 3).code(), absl::StatusCode::kInvalidArgument);  // 4 % 3
  EXPECT_EQ(with_header(5, -64).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(with_header(0, -1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(with_header(5, std::numeric_limits<int32_t>::min()).code(),
            absl::StatusCode::kInvalidArgument);
  // A NaN weight.
  std::string nan = good;
  const float q = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(nan.data() + 28 + 40, &q, 4);
  EXPECT_EQ(ParseLlama2c(nan).status().code(), absl::StatusCode::kDataLoss);
  absl::Status missing = LoadLlama2c("/nonexistent/model.bin").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("/nonexistent/model.bin"), std::string::npos);
}

TEST(ModelLoaderTest, AcceptsDirectoryOrFile) {
  absl::StatusOr<LoadedModel> dir = LoadModel(DefaultModelDir());
  ASSERT_TRUE(dir.ok()) << dir.status();
  absl::StatusOr<LoadedModel> file = LoadModel(DefaultModelDir() + "/stories260K.bin");
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_NE(file->tokenizer, nullptr);
  EXPECT_EQ(dir->model->id, file->model->id);
  EXPECT_EQ(LoadModel("/nonexistent").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadModel(DefaultModelDir() + "/stories260K.bin", "/nonexistent/tok.bin")
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST(ModelLoaderTest, LoadModelWithTokenizerRequiresOne) {
  absl::StatusOr<LoadedModel> m = LoadModelWithTokenizer(DefaultModelDir(), "");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_NE(m->tokenizer, nullptr);
  const absl::Status none =
      LoadModelWithTokenizer(
          "synthetic:dim=64,hidden=96,layers=2,heads=4,kv_heads=2,vocab=100,seed=3", "")
          .status();
  EXPECT_EQ(none.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(none.message()).find("pass --tokenizer"), std::string::npos)
      << none;
}

TEST(ModelLoaderTest, SyntheticModels) {
  absl::StatusOr<LoadedModel> a = LoadModel(
      "synthetic:dim=64,hidden=96,layers=2,heads=4,kv_heads=2,vocab=100,seed=3");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->model->config.n_layers, 2);
  EXPECT_EQ(a->model->config.vocab_size, 100);
  EXPECT_EQ(a->tokenizer, nullptr);
  EXPECT_TRUE(CheckWeightShapes(a->model->config, a->model->weights).ok());
  absl::StatusOr<LoadedModel> b = LoadModel(
      "synthetic:dim=64,hidden=96,layers=2,heads=4,kv_heads=2,vocab=100,seed=3");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->model->id, b->model->id);
  EXPECT_EQ(ParseSyntheticSpec("synthetic;dim=4").status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<SyntheticSpec> def = ParseSyntheticSpec("synthetic");
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(def->config.dim, 1024);
  for (const char* bad : {"synthetic:dim", "synthetic:dim=x", "synthetic:depth=3",
                          "synthetic:heads=5", "synthetic:dim=-4"}) {
    EXPECT_EQ(LoadModel(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace kvq::model
