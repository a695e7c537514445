#include "services/serving/request.h"

#include "absl/strings/str_cat.h"
#include "model/tokenizer.h"

namespace kvq::serving {

absl::StatusOr<model::KvMode> ResolveKvMode(const std::string& kv,
                                            const model::ModelConfig& config,
                                            bool allow_fp32,
                                            const std::string& default_kv) {
  const std::string text = kv.empty() ? default_kv : kv;
  absl::StatusOr<model::KvMode> mode = model::ParseKvMode(text);
  if (!mode.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache.kv: ", mode.status().message()));
  }
  if (!allow_fp32 && mode->kind == model::KvMode::Kind::kFp32) {
    return absl::InvalidArgumentError(
        "cache.kv: fp32 is a reference mode that is never stored as blocks; use fp16 or "
        "kivi for disaggregated serving (fp32 works colocated)");
  }
  if (mode->kind == model::KvMode::Kind::kFp32) return mode;
  absl::StatusOr<model::KvMode> resolved = mode->Resolve(config.HeadDim());
  if (!resolved.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache.kv: ", resolved.status().message()));
  }
  return resolved;
}

std::string KvModeLabel(const model::KvMode& mode) {
  switch (mode.kind) {
    case model::KvMode::Kind::kFp32:
      return "fp32";
    case model::KvMode::Kind::kFp16:
      return "fp16";
    case model::KvMode::Kind::kKivi:
      return absl::StrCat("kivi", mode.bits);
  }
  return "other";
}

absl::Status CheckPrompt(const std::vector<int>& tokens, int max_tokens,
                         const model::ModelConfig& config) {
  if (tokens.empty()) {
    return absl::InvalidArgumentError("the prompt is empty (send at least BOS)");
  }
  if (absl::Status s = model::CheckTokenIds(tokens, config.vocab_size); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("prompt: ", s.message()));
  }
  if (static_cast<int64_t>(tokens.size()) + max_tokens - 1 > config.seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt (", tokens.size(), " tokens) plus max_tokens (", max_tokens,
                     ") exceeds the model's seq_len of ", config.seq_len));
  }
  return absl::OkStatus();
}

}  // namespace kvq::serving
