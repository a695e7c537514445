#include "model/weights_mode.h"

#include <cstring>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "xxhash.h"

namespace kvq::model {

absl::StatusOr<WeightsMode> ParseWeightsMode(absl::string_view text) {
  const std::string t = absl::AsciiStrToLower(text);
  if (t == "fp32") return WeightsMode::kFp32;
  if (t == "bf16") return WeightsMode::kBf16;
  if (t == "int8") return WeightsMode::kInt8;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown weights mode \"", text, "\": expected fp32, bf16 or int8"));
}

const char* WeightsModeName(WeightsMode mode) {
  switch (mode) {
    case WeightsMode::kFp32:
      return "fp32";
    case WeightsMode::kBf16:
      return "bf16";
    case WeightsMode::kInt8:
      return "int8";
  }
  return "?";
}

uint64_t ModelIdWithWeights(uint64_t fp32_id, WeightsMode mode) {
  if (mode == WeightsMode::kFp32) return fp32_id;
  unsigned char buf[16] = {};
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<unsigned char>(fp32_id >> (8 * i));
  const char* name = WeightsModeName(mode);
  const size_t len = std::strlen(name);
  std::memcpy(buf + 8, name, len);
  return XXH3_64bits(buf, 8 + len);
}

}  // namespace kvq::model
