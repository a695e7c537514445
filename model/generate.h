// Text generation on one sequence: prefill the prompt, then decode token by
// token until N new tokens, BOS or EOS.
//
//   kvq::model::Transformer t(*loaded.model);
//   std::vector<int> prompt = loaded.tokenizer->Encode("Once upon a time");
//   KVQ_ASSIGN_OR_RETURN(std::vector<int> out,
//       kvq::model::Generate(t, prompt, {.steps = 200, .kv = mode}));
#ifndef KVQ_MODEL_GENERATE_H_
#define KVQ_MODEL_GENERATE_H_

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/kv_mode.h"
#include "model/sampler.h"
#include "model/transformer.h"

namespace kvq::model {

struct GenerateOptions {
  int steps = 64;  // new tokens at most
  KvMode kv;
  Sampling sampling;  // greedy by default (model/sampler.h: step i draws from (seed, i))
  int bos_id = 1;
  int eos_id = 2;
  // Called with each new token as it is produced (for streaming output).
  std::function<void(int token)> on_token;
};

// The new tokens (BOS/EOS that stop generation are not included). The
// prompt must hold at least one token (normally BOS first); generation stops
// early at the model's seq_len. INVALID_ARGUMENT for a bad prompt, mode or
// sampling parameter.
absl::StatusOr<std::vector<int>> Generate(const Transformer& transformer,
                                          absl::Span<const int> prompt,
                                          const GenerateOptions& options);

}  // namespace kvq::model

#endif  // KVQ_MODEL_GENERATE_H_
