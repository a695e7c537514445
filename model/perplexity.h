// Perplexity of a text under a KV cache mode, exactly as design section 8
// defines it: each non-empty line is one sequence (BOS, the " " piece, the
// line), truncated to seq_len; tokens go through the cache one at a time
// (decode mode, no prefill); every position p < n-1 predicts token p+1.
//
//   KVQ_ASSIGN_OR_RETURN(PerplexityResult r,
//                        EvaluatePerplexity(transformer, tokenizer, text, mode));
//   std::printf("ppl %.4f over %ld tokens\n", r.ppl, r.tokens);
#ifndef KVQ_MODEL_PERPLEXITY_H_
#define KVQ_MODEL_PERPLEXITY_H_

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/kv_cache.h"
#include "model/kv_mode.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace kvq::model {

struct PerplexityResult {
  double mean_nll = 0;  // nats per predicted token
  double ppl = 0;       // exp(mean_nll)
  long tokens = 0;      // predicted tokens
  int sequences = 0;    // non-empty lines
  KvCacheStats cache;   // storage of every line's final cache, summed
  // Tokens each line's final cache held (its length - 1: the last token is
  // only predicted), in line order; for EffectiveBits (kv_mode.h).
  std::vector<int> cached_tokens;
};

// Called after each sequence: sequences done, sequences in all, running result.
using PerplexityProgress =
    std::function<void(int done, int total, const PerplexityResult& so_far)>;

// INVALID_ARGUMENT when the text has no token to predict (empty, or only
// empty lines) or the mode does not fit the model.
absl::StatusOr<PerplexityResult> EvaluatePerplexity(
    const Transformer& transformer, const Tokenizer& tokenizer, absl::string_view text,
    const KvMode& mode, const PerplexityProgress& progress = nullptr);

}  // namespace kvq::model

#endif  // KVQ_MODEL_PERPLEXITY_H_
