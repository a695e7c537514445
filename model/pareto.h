// The quality-versus-bits front of KV cache modes (issue 15, `kvq eval
// pareto`): for each mode of a grid, its effective bits per element
// (EffectiveBits, kv_mode.h) and its perplexity on a text (design section 8,
// EvaluatePerplexity), and whether it is on the Pareto front of the grid.
//
//   std::vector<std::string> grid = DefaultParetoGrid(config.HeadDim());
//   KVQ_ASSIGN_OR_RETURN(std::vector<ParetoRow> rows,
//                        SweepPareto(transformer, tokenizer, text, grid, {}));
//   for (const ParetoRow& r : rows) ... r.mode.ToString(), r.effective_bits,
//                                       r.result.ppl, r.pareto ...
#ifndef KVQ_MODEL_PARETO_H_
#define KVQ_MODEL_PARETO_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "model/kv_mode.h"
#include "model/perplexity.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace kvq::model {

struct ParetoPoint {
  double bits = 0;  // effective bits per element
  double ppl = 0;
};

// front[i] is true when no other point dominates points[i], i.e. no point has
// bits <= and ppl <= points[i]'s with at least one of the two strictly lower.
// Equal points do not dominate each other (both are on the front). A point
// with a NaN is never on the front and dominates nothing.
std::vector<bool> ParetoFront(absl::Span<const ParetoPoint> points);

// The default grid for a model with this head_dim, as --kv strings:
//   - "fp16", the reference;
//   - pure KIVI over bits {2, 4, 8} x block B {16, 32, 64, 128} x group G
//     (the divisors of head_dim in [2, 32], largest first: 8, 4, 2 for
//     head_dim 8) x residual R {0, 32, 64, 128} (those that are multiples of
//     B), so that KIVI's own front is fair;
//   - kvq's modes beyond KIVI (KvqModes in pareto.cc): K and V bits apart
//     and u8 scales over bits x B x G, fp16 outliers, sinks, edge layers.
std::vector<std::string> DefaultParetoGrid(int head_dim);
// A small grid for smoke runs: fp16, KIVI bits {2, 4, 8} at B 32 with the
// default G and R {0, 32}, and four of kvq's modes.
std::vector<std::string> QuickParetoGrid(int head_dim);

struct ParetoOptions {
  // Modes evaluated at once (each one's perplexity runs on one thread).
  int threads = 1;
  // Called after each mode is done, from the thread that ran it (serialised).
  std::function<void(int done, int total)> progress;
};

struct ParetoRow {
  KvMode mode;                // resolved (ToString() is the canonical form)
  double effective_bits = 0;  // EffectiveBits over the text's sequences
  PerplexityResult result;    // EvaluatePerplexity's
  bool pareto = false;        // on the front of all the rows
};

// Parses and resolves every mode of `modes` (ParseKvMode, Resolve for the
// model's head_dim) before running any, and fails with INVALID_ARGUMENT naming
// the first one rejected; a mode whose canonical form repeats an earlier one
// is dropped. Then evaluates each mode's perplexity on `text` and effective
// bits, and marks the front. Rows come sorted by effective bits, then ppl,
// then grid order. Errors of EvaluatePerplexity (an empty text) are returned
// as they are, prefixed with the mode.
absl::StatusOr<std::vector<ParetoRow>> SweepPareto(const Transformer& transformer,
                                                   const Tokenizer& tokenizer,
                                                   absl::string_view text,
                                                   absl::Span<const std::string> modes,
                                                   const ParetoOptions& options);

// Issue 15's judgement of kvq's modes (kind kivi, not IsPureKivi()) against
// pure KIVI's, over the rows of one sweep (indices into them):
//   - dominance: every row on KIVI's own front (the front of the pure KIVI
//     rows alone) is beaten by a kvq row with the same or fewer bits and a
//     strictly lower ppl;
//   - reach: a kvq row at least 1 effective bit below KIVI's cheapest row
//     with a ppl no higher than that row's.
struct KiviComparison {
  struct Cover {
    int kivi = -1;  // a row on KIVI's own front
    int kvq = -1;   // the kvq row with the fewest bits that beats it; -1: none
  };
  std::vector<Cover> kivi_front;  // by effective bits
  int cheapest_kivi = -1;         // fewest bits among the pure KIVI rows
  int further = -1;               // the lowest-ppl kvq row that reaches; -1: none

  bool Dominates() const;  // every Cover has a kvq row (and there is one)
  bool ReachesFurther() const { return further >= 0; }
};
KiviComparison CompareWithKivi(absl::Span<const ParetoRow> rows);

}  // namespace kvq::model

#endif  // KVQ_MODEL_PARETO_H_
