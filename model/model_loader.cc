#include "model/model_loader.h"

#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "model/hf_loader.h"
#include "model/llama2c_loader.h"
#include "model/llama2c_tokenizer.h"
#include "model/sentencepiece_tokenizer.h"
#include "model/synthetic_model.h"

namespace kvq::model {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path,
                                                         int vocab_size);

// The one llama2.c checkpoint in `dir` (a .bin not named tok*/tokenizer*).
absl::StatusOr<std::string> FindCheckpoint(const fs::path& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() == ".bin" && !absl::StartsWith(name, "tok")) {
      found.push_back(e.path().string());
    }
  }
  if (ec) return absl::NotFoundError("cannot list " + dir.string() + ": " + ec.message());
  if (found.empty()) {
    return absl::NotFoundError(
        absl::StrCat(dir.string(),
                     " holds no model: expected config.json + *.safetensors or a "
                     "llama2.c .bin checkpoint"));
  }
  if (found.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir.string(), " holds several checkpoints (",
                     absl::StrJoin(found, ", "), "): name one file"));
  }
  return found[0];
}

absl::StatusOr<LoadedModel> LoadLlama2cWithTokenizer(const std::string& file,
                                                     const std::string& tokenizer_path) {
  LoadedModel out;
  out.model_path = file;
  KVQ_ASSIGN_OR_RETURN(Model m, LoadLlama2c(file));
  out.model = std::make_unique<Model>(std::move(m));
  const int vocab = out.model->config.vocab_size;
  std::string tok = tokenizer_path;
  if (tok.empty()) {
    const fs::path dir = fs::path(file).parent_path();
    for (const std::string& name :
         {absl::StrCat("tok", vocab, ".bin"), std::string("tokenizer.bin")}) {
      std::error_code ec;
      if (fs::exists(dir / name, ec)) {
        tok = (dir / name).string();
        break;
      }
    }
  }
  if (!tok.empty()) {
    KVQ_ASSIGN_OR_RETURN(out.tokenizer, LoadTokenizer(tok, vocab));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path,
                                                         int vocab_size) {
  std::unique_ptr<Tokenizer> tok;
  if (absl::EndsWith(path, ".model")) {
    KVQ_ASSIGN_OR_RETURN(tok, SentencePieceTokenizer::Load(path));
  } else {
    KVQ_ASSIGN_OR_RETURN(tok, Llama2cTokenizer::Load(path, vocab_size));
  }
  if (tok->vocab_size() > vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the tokenizer has ", tok->vocab_size(),
                     " tokens, more than the model's vocabulary of ", vocab_size));
  }
  return tok;
}

absl::StatusOr<LoadedModel> LoadHuggingFaceWithTokenizer(
    const std::string& dir, const std::string& tokenizer_path) {
  LoadedModel out;
  out.model_path = dir;
  KVQ_ASSIGN_OR_RETURN(Model m, LoadHuggingFace(dir));
  out.model = std::make_unique<Model>(std::move(m));
  std::string tok = tokenizer_path;
  std::error_code ec;
  if (tok.empty() && fs::exists(fs::path(dir) / "tokenizer.model", ec)) {
    tok = (fs::path(dir) / "tokenizer.model").string();
  }
  if (!tok.empty()) {
    KVQ_ASSIGN_OR_RETURN(out.tokenizer, LoadTokenizer(tok, out.model->config.vocab_size));
  }
  return out;
}

}  // namespace

absl::StatusOr<LoadedModel> LoadModel(const std::string& path,
                                      const ModelLoadOptions& options) {
  KVQ_ASSIGN_OR_RETURN(LoadedModel loaded, LoadModel(path, options.tokenizer_path));
  SetWeightsMode(*loaded.model, options.weights);
  return loaded;
}

absl::StatusOr<LoadedModel> LoadModelWithTokenizer(const std::string& path,
                                                   const ModelLoadOptions& options) {
  KVQ_ASSIGN_OR_RETURN(LoadedModel loaded,
                       LoadModelWithTokenizer(path, options.tokenizer_path));
  SetWeightsMode(*loaded.model, options.weights);
  return loaded;
}

absl::StatusOr<LoadedModel> LoadModel(const std::string& path,
                                      const std::string& tokenizer_path) {
  if (path.empty()) {
    return absl::NotFoundError("no model path given and no default model found");
  }
  if (IsSyntheticSpec(path)) {
    KVQ_ASSIGN_OR_RETURN(SyntheticSpec spec, ParseSyntheticSpec(path));
    KVQ_ASSIGN_OR_RETURN(Model m, SyntheticModel(spec.config, spec.seed));
    LoadedModel out;
    out.model = std::make_unique<Model>(std::move(m));
    out.model_path = path;
    if (!tokenizer_path.empty()) {
      KVQ_ASSIGN_OR_RETURN(out.tokenizer,
                           LoadTokenizer(tokenizer_path, out.model->config.vocab_size));
    }
    return out;
  }
  std::error_code ec;
  const fs::path p(path);
  if (!fs::exists(p, ec))
    return absl::NotFoundError("model path " + path + " does not exist");
  if (fs::is_directory(p, ec)) {
    if (IsHuggingFaceDir(path)) return LoadHuggingFaceWithTokenizer(path, tokenizer_path);
    KVQ_ASSIGN_OR_RETURN(std::string file, FindCheckpoint(p));
    return LoadLlama2cWithTokenizer(file, tokenizer_path);
  }
  return LoadLlama2cWithTokenizer(path, tokenizer_path);
}

absl::StatusOr<LoadedModel> LoadModelWithTokenizer(const std::string& path,
                                                   const std::string& tokenizer_path) {
  KVQ_ASSIGN_OR_RETURN(LoadedModel loaded, LoadModel(path, tokenizer_path));
  if (loaded.tokenizer == nullptr) {
    return absl::NotFoundError("no tokenizer found beside " + loaded.model_path +
                               "; pass --tokenizer");
  }
  return loaded;
}

}  // namespace kvq::model
