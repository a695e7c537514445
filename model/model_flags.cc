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

namespace kvq::model {

std::string ModelPathFromFlags() {
  const std::string flag = absl::GetFlag(FLAGS_model);
  return flag.empty() ? DefaultModelDir() : ResolveUserPath(flag);
}

std::string TokenizerPathFromFlags() {
  return ResolveUserPath(absl::GetFlag(FLAGS_tokenizer));
}

}  // namespace kvq::model
