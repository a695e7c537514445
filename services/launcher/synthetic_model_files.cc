#include "services/launcher/synthetic_model_files.h"

#include <cstdint>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "model/llama2c_loader.h"
#include "model/synthetic_model.h"

namespace kvq::launcher {
namespace {

constexpr int kVocab = 512;

void PutI32(std::string* out, int32_t v) { out->append(reinterpret_cast<char*>(&v), 4); }
void PutF32(std::string* out, float v) { out->append(reinterpret_cast<char*>(&v), 4); }

std::string TokenizerBytes(int vocab) {
  std::string out;
  PutI32(&out, 16);  // max_token_length
  for (int id = 0; id < vocab; ++id) {
    std::string piece;
    if (id == 0) {
      piece = "<unk>";
    } else if (id == 1) {
      piece = "\n<s>\n";
    } else if (id == 2) {
      piece = "\n</s>\n";
    } else if (id < 259) {
      piece = absl::StrFormat("<0x%02X>", id - 3);
    } else {
      piece = absl::StrCat("<extra_", id, ">");
    }
    PutF32(&out, 0.0f);
    PutI32(&out, static_cast<int32_t>(piece.size()));
    out += piece;
  }
  return out;
}

absl::Status WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> WriteSyntheticModelFiles(const std::string& dir) {
  model::ModelConfig config;
  config.dim = 64;
  config.hidden_dim = 172;
  config.n_layers = 5;
  config.n_heads = 8;
  config.n_kv_heads = 4;
  config.vocab_size = kVocab;
  config.seq_len = 512;
  KVQ_ASSIGN_OR_RETURN(model::Model m, model::SyntheticModel(config, /*seed=*/1));
  const std::string checkpoint = dir + "/synthetic.bin";
  KVQ_RETURN_IF_ERROR(WriteFile(checkpoint, model::SerializeLlama2c(m)));
  KVQ_RETURN_IF_ERROR(WriteByteTokenizer(dir, kVocab).status());
  return checkpoint;
}

absl::StatusOr<std::string> WriteByteTokenizer(const std::string& dir, int vocab) {
  if (vocab < 259) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a byte-level tokenizer needs a vocabulary of at least 259 tokens, not ", vocab));
  }
  const std::string path = absl::StrCat(dir, "/tok", vocab, ".bin");
  KVQ_RETURN_IF_ERROR(WriteFile(path, TokenizerBytes(vocab)));
  return path;
}

}  // namespace kvq::launcher
