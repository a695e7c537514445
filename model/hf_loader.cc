#include "model/hf_loader.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/internal/read_file.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace kvq::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

absl::Status GetInt(const json& j, const char* key, int* out, bool required,
                    int fallback = 0) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) {
      return absl::InvalidArgumentError(absl::StrCat("config.json lacks ", key));
    }
    *out = fallback;
    return absl::OkStatus();
  }
  if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0 ||
      j[key].get<int64_t>() > (int64_t{1} << 30)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: ", key, " must be a positive integer"));
  }
  *out = j[key].get<int>();
  return absl::OkStatus();
}

absl::Status GetFloat(const json& j, const char* key, float* out, float fallback) {
  if (!j.contains(key) || j[key].is_null()) {
    *out = fallback;
    return absl::OkStatus();
  }
  if (!j[key].is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: ", key, " must be a number"));
  }
  *out = j[key].get<float>();
  return absl::OkStatus();
}

// Tensor name -> the file holding it, over every *.safetensors in `dir`.
class TensorSource {
 public:
  absl::Status Open(const fs::path& dir) {
    std::vector<fs::path> paths;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.path().extension() == ".safetensors") paths.push_back(e.path());
    }
    std::sort(paths.begin(), paths.end());
    if (paths.empty()) {
      return absl::NotFoundError(dir.string() + " holds no *.safetensors file");
    }
    for (const fs::path& p : paths) {
      KVQ_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> f,
                           SafetensorsFile::Open(p.string()));
      for (const auto& [name, info] : f->tensors()) {
        if (!where_.emplace(name, f.get()).second) {
          return absl::InvalidArgumentError(
              absl::StrCat("tensor ", name, " appears in two files (", p.string(), ")"));
        }
      }
      files_.push_back(std::move(f));
    }
    return absl::OkStatus();
  }
  bool Has(const std::string& name) const { return where_.count(name) > 0; }
  absl::Status Read(const std::string& name, std::vector<int64_t> shape,
                    std::vector<float>* out) const {
    auto it = where_.find(name);
    if (it == where_.end()) {
      return absl::NotFoundError("the checkpoint lacks tensor " + name);
    }
    KVQ_ASSIGN_OR_RETURN(*out, it->second->ReadFloat32(name, shape));
    for (float x : *out) {
      if (!std::isfinite(x)) return absl::DataLossError("NaN or Inf in tensor " + name);
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
};

}  // namespace

bool IsHuggingFaceDir(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(dir) / "config.json", ec);
}

absl::StatusOr<ModelConfig> ParseHuggingFaceConfig(absl::string_view text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("config.json is not a JSON object");
  }
  if (j.contains("model_type") && j["model_type"] != "llama") {
    return absl::InvalidArgumentError(absl::StrCat("config.json: model_type ",
                                                   j["model_type"].dump(),
                                                   " is not supported (llama only)"));
  }
  if (j.contains("hidden_act") && j["hidden_act"] != "silu") {
    return absl::InvalidArgumentError(
        "config.json: only hidden_act \"silu\" is supported");
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    return absl::InvalidArgumentError("config.json: rope_scaling is not supported");
  }
  ModelConfig c;
  KVQ_RETURN_IF_ERROR(GetInt(j, "hidden_size", &c.dim, true));
  KVQ_RETURN_IF_ERROR(GetInt(j, "intermediate_size", &c.hidden_dim, true));
  KVQ_RETURN_IF_ERROR(GetInt(j, "num_hidden_layers", &c.n_layers, true));
  KVQ_RETURN_IF_ERROR(GetInt(j, "num_attention_heads", &c.n_heads, true));
  KVQ_RETURN_IF_ERROR(GetInt(j, "num_key_value_heads", &c.n_kv_heads, false, c.n_heads));
  KVQ_RETURN_IF_ERROR(GetInt(j, "vocab_size", &c.vocab_size, true));
  KVQ_RETURN_IF_ERROR(GetInt(j, "max_position_embeddings", &c.seq_len, false, 2048));
  KVQ_RETURN_IF_ERROR(GetInt(j, "head_dim", &c.head_dim, false, 0));
  KVQ_RETURN_IF_ERROR(GetFloat(j, "rms_norm_eps", &c.norm_eps, 1e-6f));
  KVQ_RETURN_IF_ERROR(GetFloat(j, "rope_theta", &c.rope_theta, 10000.0f));
  c.rope = RopeStyle::kHalfSplit;
  c.shared_classifier = j.value("tie_word_embeddings", false);
  KVQ_RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::StatusOr<Model> LoadHuggingFace(const std::string& dir) {
  const fs::path root(dir);
  KVQ_ASSIGN_OR_RETURN(std::string text,
                       model_internal::ReadFile((root / "config.json").string()));
  absl::StatusOr<ModelConfig> config = ParseHuggingFaceConfig(text);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        dir + ": " + std::string(config.status().message()));
  }
  TensorSource src;
  KVQ_RETURN_IF_ERROR(src.Open(root));
  Model m;
  ModelConfig& c = m.config;
  c = *config;
  // Untied configs may still omit lm_head (then the embedding is the head).
  if (!src.Has("lm_head.weight")) c.shared_classifier = true;
  const int64_t dim = c.dim, hidden = c.hidden_dim, q = c.QDim(), kv = c.KvDim();
  Weights& w = m.weights;
  KVQ_RETURN_IF_ERROR(
      src.Read("model.embed_tokens.weight", {c.vocab_size, dim}, &w.token_embedding));
  w.layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& L = w.layers[l];
    const std::string p = absl::StrCat("model.layers.", l, ".");
    KVQ_RETURN_IF_ERROR(src.Read(p + "input_layernorm.weight", {dim}, &L.rms_att));
    KVQ_RETURN_IF_ERROR(src.Read(p + "self_attn.q_proj.weight", {q, dim}, &L.wq));
    KVQ_RETURN_IF_ERROR(src.Read(p + "self_attn.k_proj.weight", {kv, dim}, &L.wk));
    KVQ_RETURN_IF_ERROR(src.Read(p + "self_attn.v_proj.weight", {kv, dim}, &L.wv));
    KVQ_RETURN_IF_ERROR(src.Read(p + "self_attn.o_proj.weight", {dim, q}, &L.wo));
    KVQ_RETURN_IF_ERROR(
        src.Read(p + "post_attention_layernorm.weight", {dim}, &L.rms_ffn));
    KVQ_RETURN_IF_ERROR(src.Read(p + "mlp.gate_proj.weight", {hidden, dim}, &L.w1));
    KVQ_RETURN_IF_ERROR(src.Read(p + "mlp.down_proj.weight", {dim, hidden}, &L.w2));
    KVQ_RETURN_IF_ERROR(src.Read(p + "mlp.up_proj.weight", {hidden, dim}, &L.w3));
  }
  KVQ_RETURN_IF_ERROR(src.Read("model.norm.weight", {dim}, &w.rms_final));
  if (!c.shared_classifier) {
    KVQ_RETURN_IF_ERROR(src.Read("lm_head.weight", {c.vocab_size, dim}, &w.classifier));
  }
  m.id = ComputeModelId(m.config, m.weights);
  return m;
}

}  // namespace kvq::model
