#include "model/pareto.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_format.h"

namespace kvq::model {
namespace {

// ---------------------------------------------------------------------------
// kvq's modes beyond pure KIVI (issue 15: key and value bits apart, fp16
// outliers, attention sinks, cheaper scales), in the --kv grammar. EMPTY
// until that grammar lands (branch format2): fill it then with the modes the
// front is judged on, e.g. "kivi:kbits=4,vbits=2,outliers=0.02,sinks=32".
// Every entry goes through ParseKvMode like any other mode; rows whose mode
// is not is_pure_kivi() are the `kivi: false` rows.
// ---------------------------------------------------------------------------
std::vector<std::string> KvqModes() { return {}; }

std::string KiviMode(int bits, int block, int group, int residual) {
  return absl::StrFormat("kivi:bits=%d,block=%d,group=%d,residual=%d", bits, block, group,
                         residual);
}

bool Dominates(const ParetoPoint& a, const ParetoPoint& b) {
  return a.bits <= b.bits && a.ppl <= b.ppl && (a.bits < b.bits || a.ppl < b.ppl);
}

}  // namespace

std::vector<bool> ParetoFront(absl::Span<const ParetoPoint> points) {
  std::vector<bool> front(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    const ParetoPoint& p = points[i];
    front[i] = !std::isnan(p.bits) && !std::isnan(p.ppl);
    for (size_t j = 0; j < points.size() && front[i]; ++j) {
      if (j != i && Dominates(points[j], p)) front[i] = false;
    }
  }
  return front;
}

std::vector<std::string> DefaultParetoGrid(int head_dim) {
  std::vector<int> groups;
  for (int g = std::min(32, head_dim); g >= 2; --g) {
    if (head_dim % g == 0) groups.push_back(g);
  }
  if (groups.empty()) groups.push_back(std::max(1, std::min(32, head_dim)));
  std::vector<std::string> grid = {"fp16"};
  for (int bits : {2, 4, 8}) {
    for (int block : {16, 32, 64, 128}) {
      for (int group : groups) {
        for (int residual : {0, 32, 64, 128}) {
          if (residual % block == 0)
            grid.push_back(KiviMode(bits, block, group, residual));
        }
      }
    }
  }
  for (std::string& m : KvqModes()) grid.push_back(std::move(m));
  return grid;
}

std::vector<std::string> QuickParetoGrid(int head_dim) {
  std::vector<std::string> grid = {"fp16"};
  for (int bits : {2, 4, 8}) {
    for (int residual : {0, 32}) {
      grid.push_back(KiviMode(bits, 32, std::min(32, head_dim), residual));
    }
  }
  for (std::string& m : KvqModes()) grid.push_back(std::move(m));
  return grid;
}

absl::StatusOr<std::vector<ParetoRow>> SweepPareto(const Transformer& transformer,
                                                   const Tokenizer& tokenizer,
                                                   absl::string_view text,
                                                   absl::Span<const std::string> modes,
                                                   const ParetoOptions& options) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("threads must be at least 1, got %d", options.threads));
  }
  const ModelConfig& c = transformer.model().config;
  std::vector<ParetoRow> rows;
  std::set<std::string> seen;
  for (const std::string& text_mode : modes) {
    absl::StatusOr<KvMode> mode = ParseKvMode(text_mode);
    if (mode.ok()) mode = mode->Resolve(c.HeadDim());
    if (!mode.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "mode \"%s\" rejected: %s", text_mode, mode.status().message()));
    }
    if (!seen.insert(mode->ToString()).second) continue;
    rows.push_back({.mode = *mode});
  }
  if (rows.empty()) return absl::InvalidArgumentError("no mode to evaluate");

  // Each worker takes the next mode; every row is written by one worker only.
  const kernels::CacheShape shape{
      .n_layers = c.n_layers, .n_kv_heads = c.n_kv_heads, .head_dim = c.HeadDim()};
  std::atomic<size_t> next{0};
  std::mutex mu;  // guards done, first_error and the progress calls
  int done = 0;
  absl::Status first_error;
  auto work = [&] {
    for (size_t i = next++; i < rows.size(); i = next++) {
      ParetoRow& row = rows[i];
      absl::StatusOr<PerplexityResult> r =
          EvaluatePerplexity(transformer, tokenizer, text, row.mode);
      std::lock_guard<std::mutex> lock(mu);
      if (!r.ok()) {
        if (first_error.ok()) {
          first_error =
              absl::Status(r.status().code(), row.mode.ToString() + ": " +
                                                  std::string(r.status().message()));
        }
        next = rows.size();
        return;
      }
      row.result = *std::move(r);
      row.effective_bits = EffectiveBits(row.mode, shape, row.result.cached_tokens);
      ++done;
      if (options.progress) options.progress(done, static_cast<int>(rows.size()));
    }
  };
  std::vector<std::thread> workers;
  const int n_workers = std::min<int>(options.threads, rows.size());
  for (int t = 1; t < n_workers; ++t) workers.emplace_back(work);
  work();
  for (std::thread& t : workers) t.join();
  if (!first_error.ok()) return first_error;

  std::vector<ParetoPoint> points;
  for (const ParetoRow& r : rows) points.push_back({r.effective_bits, r.result.ppl});
  const std::vector<bool> front = ParetoFront(points);
  for (size_t i = 0; i < rows.size(); ++i) rows[i].pareto = front[i];
  std::stable_sort(rows.begin(), rows.end(), [](const ParetoRow& a, const ParetoRow& b) {
    if (a.effective_bits != b.effective_bits) return a.effective_bits < b.effective_bits;
    return a.result.ppl < b.result.ppl;
  });
  return rows;
}

}  // namespace kvq::model
