#include "model/model_flags.h"

#include "absl/flags/flag.h"
#include "common/paths.h"

ABSL_FLAG(std::string, model, "",
          "Model: a llama2.c .bin checkpoint (tokenizer beside it), a directory "
          "holding one, or a Hugging Face directory (config.json + *.safetensors). "
          "Empty: ../shared/models/stories260K.");
ABSL_FLAG(std::string, tokenizer, "",
          "Tokenizer file; empty: the one beside the model (tok<vocab>.bin, "
          "tokenizer.bin, tokenizer.model).");
ABSL_FLAG(std::string, kv, "fp16",
          "KV cache mode: fp32, fp16, kivi2, kivi4, kivi8, or "
          "kivi:bits=2,block=32,group=8,residual=32.");
ABSL_FLAG(std::string, weights, "fp32",
          "Weight matrices held as fp32 (4 bytes a weight, the reference), bf16 (2 "
          "bytes; fp32 arithmetic) or int8 (1 byte + a scale per output channel; "
          "activations quantized per row, integer products: AVX-512 VNNI, AVX-VNNI or "
          "AVX2 when present). See docs/performance.md for each mode's ppl and speed.");
ABSL_FLAG(bool, json, false, "Print one JSON object instead of text.");

namespace kvq::model {

std::string ModelPathFromFlags() {
  const std::string flag = absl::GetFlag(FLAGS_model);
  return flag.empty() ? DefaultModelDir() : ResolveUserPath(flag);
}

absl::StatusOr<WeightsMode> WeightsModeFromFlags() {
  absl::StatusOr<WeightsMode> mode = ParseWeightsMode(absl::GetFlag(FLAGS_weights));
  if (!mode.ok())
    return absl::InvalidArgumentError("--weights: " +
                                      std::string(mode.status().message()));
  return mode;
}

std::string TokenizerPathFromFlags() {
  return ResolveUserPath(absl::GetFlag(FLAGS_tokenizer));
}

}  // namespace kvq::model
