// Every parser of files a user hands kvq (llama2.c checkpoints and
// tokenizers, safetensors, config.json) meets seeded random corruptions of
// valid inputs with a status, never a crash (run under --config=asan too).
#include <cstring>
#include <random>
#include <string>

#include "common/paths.h"
#include "gtest/gtest.h"
#include "model/hf_loader.h"
#include "model/internal/read_file.h"
#include "model/llama2c_loader.h"
#include "model/llama2c_tokenizer.h"
#include "model/safetensors.h"
#include "tests/model/test_model.h"

namespace kvq::model {
namespace {

std::string Mutate(std::string s, std::mt19937& rng) {
  auto pick = [&](size_t n) { return n == 0 ? 0 : rng() % n; };
  switch (rng() % 4) {
    case 0:  // flip bytes
      for (int i = 0, n = 1 + rng() % 8; i < n && !s.empty(); ++i) {
        s[pick(s.size())] ^= static_cast<char>(1 + rng() % 255);
      }
      break;
    case 1:  // truncate
      s.resize(pick(s.size() + 1));
      break;
    case 2:  // insert junk
      s.insert(pick(s.size() + 1), std::string(1 + rng() % 16, static_cast<char>(rng())));
      break;
    default:  // overwrite an int32 with an extreme value
      if (s.size() >= 4) {
        const int32_t v = (rng() % 2) ? INT32_MIN : INT32_MAX - int32_t(rng() % 8);
        std::memcpy(s.data() + pick(s.size() - 3), &v, 4);
      }
  }
  return s;
}

TEST(ParserRobustnessTest, Llama2cCheckpoint) {
  ModelConfig c = testing::SmallConfig();
  const std::string good = SerializeLlama2c(testing::RandomModel(c, 1));
  std::mt19937 rng(1);
  int rejected = 0;
  for (int i = 0; i < 400; ++i) rejected += !ParseLlama2c(Mutate(good, rng)).ok();
  EXPECT_GT(rejected, 100);
}

TEST(ParserRobustnessTest, Llama2cTokenizer) {
  absl::StatusOr<std::string> good =
      model_internal::ReadFile(DefaultModelDir() + "/tok512.bin");
  ASSERT_TRUE(good.ok());
  std::mt19937 rng(2);
  for (int i = 0; i < 400; ++i) {
    auto tok = Llama2cTokenizer::Parse(Mutate(*good, rng), 512);
    if (tok.ok()) {  // still usable
      absl::StatusOr<std::string> text =
          (*tok)->Decode((*tok)->Encode("Once upon a time"));
      EXPECT_TRUE(text.ok());
    }
  }
}

TEST(ParserRobustnessTest, SafetensorsAndConfig) {
  const Model m = testing::RandomModel(testing::SmallConfig(), 3);
  const std::vector<TensorToWrite> tensors = {
      {"a", {64, 32}, &m.weights.token_embedding, TensorDtype::kF32},
      {"b", {32}, &m.weights.rms_final, TensorDtype::kBF16},
      {"c", {32, 32}, &m.weights.layers[0].wq, TensorDtype::kF16}};
  const std::string good = SerializeSafetensors(tensors);
  ASSERT_TRUE(SafetensorsFile::Parse(good, "x").ok());
  std::mt19937 rng(4);
  for (int i = 0; i < 400; ++i) {
    const std::string bad = Mutate(good, rng);
    auto f = SafetensorsFile::Parse(bad, "x");
    if (!f.ok()) continue;
    for (const auto& [name, info] : (*f)->tensors()) {
      (void)(*f)->ReadFloat32(name, info.shape);
    }
  }
  const std::string config =
      R"({"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, )"
      R"("num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64})";
  ASSERT_TRUE(ParseHuggingFaceConfig(config).ok())
      << ParseHuggingFaceConfig(config).status();
  for (int i = 0; i < 400; ++i) (void)ParseHuggingFaceConfig(Mutate(config, rng));
}

}  // namespace
}  // namespace kvq::model
