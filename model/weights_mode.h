// The `--weights MODE` string: how a Transformer holds its weight matrices
// (wq, wk, wv, wo, w1, w2, w3, the classifier) once packed at load.
//
//   fp32   4 bytes a weight; the reference (bit-identical to before modes)
//   bf16   2 bytes a weight (round to nearest even; exact for a bf16
//          checkpoint); activations rounded to bf16 and vdpbf16ps where
//          AVX-512 BF16 exists, else fp32 activations and fp32 multiply-adds
//          (model/internal/bf16_matmul.h)
//   int8   1 byte a weight plus a float scale per output channel; activations
//          quantized per row on the fly, integer products, fp32 epilogue
//          (model/internal/int8_matmul.h)
//
//   KVQ_ASSIGN_OR_RETURN(kvq::model::WeightsMode w,
//   kvq::model::ParseWeightsMode("int8")); options.weights = w;  // ModelLoadOptions
//   (model_loader.h)
#ifndef KVQ_MODEL_WEIGHTS_MODE_H_
#define KVQ_MODEL_WEIGHTS_MODE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvq::model {

enum class WeightsMode { kFp32, kBf16, kInt8 };

// "fp32", "bf16" or "int8" (case-insensitive); INVALID_ARGUMENT naming the
// accepted values otherwise.
absl::StatusOr<WeightsMode> ParseWeightsMode(absl::string_view text);

// "fp32", "bf16" or "int8".
const char* WeightsModeName(WeightsMode mode);

// The model id of a model whose matrices are held in `mode` (design section
// 4): `fp32_id` itself for fp32, else XXH3-64 over fp32_id (8 bytes, little
// endian) followed by the mode's name. Caches computed with int8 or bf16
// weights differ from fp32 ones, so their blocks must not share keys.
uint64_t ModelIdWithWeights(uint64_t fp32_id, WeightsMode mode);

}  // namespace kvq::model

#endif  // KVQ_MODEL_WEIGHTS_MODE_H_
