// Opens whatever model path a user gives: a llama2.c checkpoint (.bin, with
// its tokenizer beside it), a directory holding one, or a Hugging Face
// directory (config.json + *.safetensors, tokenizer.model when present), or
// "synthetic[:dim=...,...]" (synthetic_model.h; no tokenizer unless given).
//
//   KVQ_ASSIGN_OR_RETURN(kvq::model::LoadedModel m,
//                        kvq::model::LoadModel(kvq::DefaultModelDir()));
//   std::vector<int> ids = m.tokenizer->Encode("Once upon a time");
//
//   // int8 weights (model/weights_mode.h), whatever the checkpoint's dtype:
//   KVQ_ASSIGN_OR_RETURN(m, LoadModel(path, {.weights = WeightsMode::kInt8}));
#ifndef KVQ_MODEL_MODEL_LOADER_H_
#define KVQ_MODEL_MODEL_LOADER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "model/weights_mode.h"

namespace kvq::model {

struct LoadedModel {
  std::unique_ptr<Model> model;          // stable address for Transformer
  std::unique_ptr<Tokenizer> tokenizer;  // null when none was found
  std::string model_path;                // the file or directory loaded
};

struct ModelLoadOptions {
  // Overrides the tokenizer search (see LoadModel below); empty: search.
  std::string tokenizer_path;
  // How the Transformer will hold the matrices (sets Model::weights_mode and
  // the model id that goes with it, SetWeightsMode). Every loader (llama2.c,
  // Hugging Face fp32/fp16/bf16, synthetic) honours it: the file's tensors
  // are read as float32, then packed in this mode when the Transformer is
  // built (a bf16 checkpoint held as bf16 keeps its exact values).
  WeightsMode weights = WeightsMode::kFp32;
};

absl::StatusOr<LoadedModel> LoadModel(const std::string& path,
                                      const ModelLoadOptions& options);
absl::StatusOr<LoadedModel> LoadModelWithTokenizer(const std::string& path,
                                                   const ModelLoadOptions& options);

// `tokenizer_path` overrides the tokenizer search (llama2.c: tok<vocab>.bin
// then tokenizer.bin beside the checkpoint). NOT_FOUND when nothing loadable
// is at `path`; the loaders' errors otherwise.
absl::StatusOr<LoadedModel> LoadModel(const std::string& path,
                                      const std::string& tokenizer_path = "");

// LoadModel with fp32 weights and `tokenizer_path`, as above.
// LoadModel for commands that turn text into tokens: NOT_FOUND when no
// tokenizer was found beside the model (the caller should pass one).
absl::StatusOr<LoadedModel> LoadModelWithTokenizer(const std::string& path,
                                                   const std::string& tokenizer_path);

}  // namespace kvq::model

#endif  // KVQ_MODEL_MODEL_LOADER_H_
