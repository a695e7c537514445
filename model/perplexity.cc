#include "model/perplexity.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "model/kv_cache_factory.h"

namespace kvq::model {
namespace {

// -log softmax(logits)[target], in double.
double NegLogProb(const std::vector<float>& logits, int target) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l) - mx);
  return std::log(sum) - (double(logits[target]) - mx);
}

}  // namespace

absl::StatusOr<PerplexityResult> EvaluatePerplexity(const Transformer& transformer,
                                                    const Tokenizer& tokenizer,
                                                    absl::string_view text,
                                                    const KvMode& mode,
                                                    const PerplexityProgress& progress) {
  const ModelConfig& c = transformer.model().config;
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  PerplexityResult r;
  double nll = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::vector<int> ids = tokenizer.Encode(lines[i]);
    if (static_cast<int>(ids.size()) > c.seq_len) ids.resize(c.seq_len);
    KVQ_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                         NewKvCache(mode, KvCacheShape::Of(c)));
    for (size_t p = 0; p + 1 < ids.size(); ++p) {
      KVQ_ASSIGN_OR_RETURN(std::vector<float> logits, transformer.Decode(ids[p], *cache));
      nll += NegLogProb(logits, ids[p + 1]);
      ++r.tokens;
    }
    r.cache += cache->Stats();
    r.cached_tokens.push_back(cache->n_tokens());
    r.sequences++;
    r.mean_nll = r.tokens > 0 ? nll / r.tokens : 0;
    r.ppl = std::exp(r.mean_nll);
    if (progress) progress(static_cast<int>(i + 1), static_cast<int>(lines.size()), r);
  }
  if (r.tokens == 0) {
    return absl::InvalidArgumentError(
        "the text has no token to predict (it is empty or holds only empty lines)");
  }
  return r;
}

}  // namespace kvq::model
