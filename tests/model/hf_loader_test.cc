#include "model/hf_loader.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/paths.h"
#include "gtest/gtest.h"
#include "kernels/fp16.h"
#include "model/internal/sp_processor.h"
#include "model/kv_cache_factory.h"
#include "model/llama2c_loader.h"
#include "model/model_loader.h"
#include "model/safetensors.h"
#include "model/transformer.h"
#include "tests/model/test_model.h"

namespace kvq::model {
namespace {

namespace fs = std::filesystem;
using ::kvq::model::testing::RandomModel;

ModelConfig TinyConfig() {
  return ModelConfig{.dim = 32,
                     .hidden_dim = 40,
                     .n_layers = 2,
                     .n_heads = 4,
                     .n_kv_heads = 2,
                     .vocab_size = 64,
                     .seq_len = 64,
                     .shared_classifier = false};
}

void WriteFile(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

std::string ConfigJson(const ModelConfig& c, const std::string& extra = "") {
  return absl::StrCat(
      R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", )",
      R"("hidden_act": "silu", "hidden_size": )", c.dim, R"(, "intermediate_size": )",
      c.hidden_dim, R"(, "num_hidden_layers": )", c.n_layers,
      R"(, "num_attention_heads": )", c.n_heads, R"(, "num_key_value_heads": )",
      c.n_kv_heads, R"(, "vocab_size": )", c.vocab_size,
      R"(, "max_position_embeddings": )", c.seq_len,
      R"(, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": )",
      c.shared_classifier ? "true" : "false", extra, "}");
}

// llama2.c (interleaved RoPE) -> HF (half-split) q/k row order:
// HF row h*hd + p*hd/2 + j holds llama2.c row h*hd + 2j + p.
std::vector<float> PermuteRows(const std::vector<float>& w, int heads, int hd, int in) {
  std::vector<float> out(w.size());
  for (int h = 0; h < heads; ++h) {
    for (int j = 0; j < hd / 2; ++j) {
      for (int p = 0; p < 2; ++p) {
        const float* src = &w[size_t(h * hd + 2 * j + p) * in];
        std::copy(src, src + in, &out[size_t(h * hd + p * hd / 2 + j) * in]);
      }
    }
  }
  return out;
}

float RoundTo(TensorDtype d, float f) {
  if (d == TensorDtype::kF16) return kernels::RoundToHalf(f);
  if (d == TensorDtype::kBF16) {
    uint32_t u = kernels::FloatBits(f);
    u += 0x7fff + ((u >> 16) & 1);
    return kernels::BitsToFloat(u & 0xffff0000u);
  }
  return f;
}

Model Rounded(Model m, TensorDtype d) {
  auto round = [d](std::vector<float>& t) {
    for (float& x : t) x = RoundTo(d, x);
  };
  round(m.weights.token_embedding);
  round(m.weights.rms_final);
  round(m.weights.classifier);
  for (LayerWeights& L : m.weights.layers) {
    for (auto* t :
         {&L.rms_att, &L.wq, &L.wk, &L.wv, &L.wo, &L.rms_ffn, &L.w1, &L.w2, &L.w3})
      round(*t);
  }
  return m;
}

// Writes `m` as a Hugging Face checkpoint (layers and the rest in two files).
struct HfTensors {
  std::vector<std::vector<float>> storage;
  std::vector<TensorToWrite> layers, rest;
};
HfTensors HfTensorsOf(const Model& m, TensorDtype d) {
  const ModelConfig& c = m.config;
  const int64_t dim = c.dim, hidden = c.hidden_dim, q = c.QDim(), kv = c.KvDim();
  HfTensors t;
  t.storage.reserve(4 * c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = m.weights.layers[l];
    t.storage.push_back(PermuteRows(L.wq, c.n_heads, c.HeadDim(), c.dim));
    t.storage.push_back(PermuteRows(L.wk, c.n_kv_heads, c.HeadDim(), c.dim));
    const std::string p = absl::StrCat("model.layers.", l, ".");
    const auto& wq = t.storage[t.storage.size() - 2];
    const auto& wk = t.storage.back();
    t.layers.push_back({p + "input_layernorm.weight", {dim}, &L.rms_att, d});
    t.layers.push_back({p + "self_attn.q_proj.weight", {q, dim}, &wq, d});
    t.layers.push_back({p + "self_attn.k_proj.weight", {kv, dim}, &wk, d});
    t.layers.push_back({p + "self_attn.v_proj.weight", {kv, dim}, &L.wv, d});
    t.layers.push_back({p + "self_attn.o_proj.weight", {dim, q}, &L.wo, d});
    t.layers.push_back({p + "post_attention_layernorm.weight", {dim}, &L.rms_ffn, d});
    t.layers.push_back({p + "mlp.gate_proj.weight", {hidden, dim}, &L.w1, d});
    t.layers.push_back({p + "mlp.down_proj.weight", {dim, hidden}, &L.w2, d});
    t.layers.push_back({p + "mlp.up_proj.weight", {hidden, dim}, &L.w3, d});
  }
  t.rest.push_back(
      {"model.embed_tokens.weight", {c.vocab_size, dim}, &m.weights.token_embedding, d});
  t.rest.push_back({"model.norm.weight", {dim}, &m.weights.rms_final, d});
  if (!c.shared_classifier) {
    t.rest.push_back({"lm_head.weight", {c.vocab_size, dim}, &m.weights.classifier, d});
  }
  return t;
}

fs::path NewDir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

fs::path WriteHf(const Model& m, TensorDtype d, const std::string& name) {
  fs::path dir = NewDir(name);
  HfTensors t = HfTensorsOf(m, d);
  WriteFile(dir / "config.json", ConfigJson(m.config));
  WriteFile(dir / "model-00001-of-00002.safetensors", SerializeSafetensors(t.layers));
  WriteFile(dir / "model-00002-of-00002.safetensors", SerializeSafetensors(t.rest));
  return dir;
}

std::vector<std::vector<float>> RunLogits(const Model& m) {
  Transformer t(m);
  auto cache = NewKvCache(*ParseKvMode("fp32"), KvCacheShape::Of(m.config));
  EXPECT_TRUE(cache.ok());
  const std::vector<int> prompt = {1, 5, 9, 33, 2, 17, 60, 61, 12, 40};
  std::vector<std::vector<float>> out;
  absl::StatusOr<std::vector<float>> l = t.Prefill(prompt, **cache);
  EXPECT_TRUE(l.ok()) << l.status();
  out.push_back(*l);
  for (int id : {3, 4, 50}) {
    l = t.Decode(id, **cache);
    EXPECT_TRUE(l.ok()) << l.status();
    out.push_back(*l);
  }
  return out;
}

TEST(HfLoaderTest, SameLogitsAsLlama2cForEveryDtype) {
  for (TensorDtype d : {TensorDtype::kF32, TensorDtype::kF16, TensorDtype::kBF16}) {
    const Model rounded = Rounded(RandomModel(TinyConfig(), 11), d);
    absl::StatusOr<Model> l2c = ParseLlama2c(SerializeLlama2c(rounded));
    ASSERT_TRUE(l2c.ok()) << l2c.status();
    const fs::path dir = WriteHf(rounded, d, "hf_" + std::to_string(int(d)));
    absl::StatusOr<LoadedModel> hf = LoadModel(dir.string());
    ASSERT_TRUE(hf.ok()) << hf.status();
    EXPECT_EQ(hf->model->config.rope, RopeStyle::kHalfSplit);
    EXPECT_EQ(hf->tokenizer, nullptr);
    const auto a = RunLogits(*l2c), b = RunLogits(*hf->model);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      for (size_t j = 0; j < a[i].size(); ++j) {
        ASSERT_NEAR(a[i][j], b[i][j], 1e-4) << "dtype " << int(d) << " step " << i;
      }
    }
  }
}

TEST(HfLoaderTest, TiedEmbeddings) {
  ModelConfig c = TinyConfig();
  c.shared_classifier = true;
  const Model m = RandomModel(c, 2);
  absl::StatusOr<Model> hf =
      LoadHuggingFace(WriteHf(m, TensorDtype::kF32, "tied").string());
  ASSERT_TRUE(hf.ok()) << hf.status();
  EXPECT_TRUE(hf->config.shared_classifier);
  EXPECT_EQ(hf->weights.token_embedding, m.weights.token_embedding);
}

TEST(HfLoaderTest, RejectsBadCheckpoints) {
  const Model m = RandomModel(TinyConfig(), 3);
  HfTensors t = HfTensorsOf(m, TensorDtype::kF32);
  auto load = [](const fs::path& dir) { return LoadHuggingFace(dir.string()).status(); };

  // A missing tensor.
  fs::path dir = WriteHf(m, TensorDtype::kF32, "missing");
  std::vector<TensorToWrite> partial(t.layers.begin() + 1, t.layers.end());
  WriteFile(dir / "model-00001-of-00002.safetensors", SerializeSafetensors(partial));
  absl::Status s = load(dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("model.layers.0.input_layernorm.weight"), std::string::npos)
      << s;

  // An unsupported dtype.
  dir = WriteHf(m, TensorDtype::kF32, "dtype");
  std::string bytes = SerializeSafetensors(t.rest);
  bytes = absl::StrReplaceAll(bytes, {{"\"F32\"", "\"I32\""}});
  WriteFile(dir / "model-00002-of-00002.safetensors", bytes);
  s = load(dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("I32"), std::string::npos) << s;

  // Truncated data, and a header longer than the file.
  dir = WriteHf(m, TensorDtype::kF32, "truncated");
  bytes = SerializeSafetensors(t.rest);
  WriteFile(dir / "model-00002-of-00002.safetensors", bytes.substr(0, bytes.size() - 10));
  EXPECT_EQ(load(dir).code(), absl::StatusCode::kInvalidArgument);
  WriteFile(dir / "model-00002-of-00002.safetensors", bytes.substr(0, 30));
  EXPECT_EQ(load(dir).code(), absl::StatusCode::kInvalidArgument);
  WriteFile(dir / "model-00002-of-00002.safetensors", "\x01\x02");
  EXPECT_EQ(load(dir).code(), absl::StatusCode::kInvalidArgument);

  // A config disagreeing with the tensors (size/header mismatch).
  dir = WriteHf(m, TensorDtype::kF32, "mismatch");
  ModelConfig wrong = m.config;
  wrong.hidden_dim = 48;
  WriteFile(dir / "config.json", ConfigJson(wrong));
  s = load(dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("shape"), std::string::npos) << s;

  // Bad config.json files, and no safetensors at all.
  for (const std::string& bad :
       {std::string("{"), std::string("[]"), std::string(R"({"hidden_size": 32})"),
        ConfigJson(m.config, R"(, "rope_scaling": {"type": "linear", "factor": 2.0})"),
        absl::StrReplaceAll(ConfigJson(m.config), {{"\"llama\"", "\"gpt2\""}}),
        absl::StrReplaceAll(ConfigJson(m.config),
                            {{"\"hidden_size\": 32", "\"hidden_size\": -32"}})}) {
    WriteFile(dir / "config.json", bad);
    EXPECT_EQ(load(dir).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  dir = NewDir("empty");
  WriteFile(dir / "config.json", ConfigJson(m.config));
  EXPECT_EQ(load(dir).code(), absl::StatusCode::kNotFound);
}

TEST(HfLoaderTest, SentencePieceTokenizerBesideTheModel) {
  ModelConfig c = TinyConfig();
  c.vocab_size = 320;
  const Model m = RandomModel(c, 4);
  const fs::path dir = WriteHf(m, TensorDtype::kF32, "with_tokenizer");
  std::string error;
  ASSERT_TRUE(model_internal::TrainSentencePiece(
      SharedDir() + "/data/stories_dev.txt", (dir / "tokenizer").string(), 320, &error))
      << error;
  absl::StatusOr<LoadedModel> hf = LoadModel(dir.string());
  ASSERT_TRUE(hf.ok()) << hf.status();
  ASSERT_NE(hf->tokenizer, nullptr);
  const Tokenizer& tok = *hf->tokenizer;
  EXPECT_EQ(tok.vocab_size(), 320);
  for (const std::string& text :
       {std::string("Once upon a time, there was a little girl."),
        std::string("Zebras queue \xc3\xbc \xe6\x97\xa5 {x}")}) {
    const std::vector<int> ids = tok.Encode(text);
    ASSERT_GE(ids.size(), 2u);
    EXPECT_EQ(ids[0], tok.bos_id());
    absl::StatusOr<std::string> back = tok.Decode(ids);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, text);
  }
  // A tokenizer bigger than the model's vocabulary is refused.
  ModelConfig small = TinyConfig();
  const fs::path dir2 =
      WriteHf(RandomModel(small, 4), TensorDtype::kF32, "big_tokenizer");
  fs::copy_file(dir / "tokenizer.model", dir2 / "tokenizer.model");
  EXPECT_EQ(LoadModel(dir2.string()).status().code(), absl::StatusCode::kInvalidArgument);
  WriteFile(dir2 / "tokenizer.model", "not a model");
  EXPECT_EQ(LoadModel(dir2.string()).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvq::model
