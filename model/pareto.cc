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

// kvq's modes beyond pure KIVI (issue 15), in canonical --kv form: keys and
// values at their own bit widths, u8 scales (cheap enough that blocks of 16
// tokens pay), fp16 outliers, attention sinks and wider edge layers. Every
// entry goes through ParseKvMode like any other mode; rows whose mode is not
// IsPureKivi() are the `kivi: false` rows. `groups` as the KIVI grid's.
std::string Canonical(const std::string& text) {
  absl::StatusOr<KvMode> mode = ParseKvMode(text);
  return mode.ok() ? mode->ToString() : text;  // a bad entry fails in SweepPareto
}

std::string KvqMode(int kbits, int vbits, int block, int group, absl::string_view extra) {
  return Canonical(
      absl::StrFormat("kivi:kbits=%d,vbits=%d,block=%d,group=%d,residual=0%s", kbits,
                      vbits, block, group, extra));
}

std::vector<std::string> KvqModes(absl::Span<const int> groups) {
  std::vector<std::string> modes;
  const int widest = groups.front();
  for (int kbits : {2, 4, 8}) {
    for (int vbits : {2, 4, 8}) {
      for (int block : {16, 32, 64}) {
        for (int group : groups)
          modes.push_back(KvqMode(kbits, vbits, block, group, ",scales=u8"));
        if (kbits != vbits) modes.push_back(KvqMode(kbits, vbits, block, widest, ""));
      }
    }
  }
  for (auto [kbits, vbits] : {std::pair{2, 2}, std::pair{4, 2}, std::pair{4, 4}}) {
    for (const char* outliers :
         {",koutliers=0.02", ",koutliers=0.05", ",outliers=0.02"}) {
      for (int block : {16, 32}) {
        modes.push_back(KvqMode(kbits, vbits, block, widest, outliers));
        modes.push_back(
            KvqMode(kbits, vbits, block, widest, std::string(outliers) + ",scales=u8"));
      }
    }
    modes.push_back(KvqMode(kbits, vbits, 16, widest, ",scales=u8,sinks=16"));
    modes.push_back(KvqMode(kbits, vbits, 16, widest, ",scales=u8,sinks=32"));
    for (int edge_bits : {4, 8}) {
      modes.push_back(
          KvqMode(kbits, vbits, 16, widest,
                  absl::StrFormat(",scales=u8,edge_layers=1,edge_bits=%d", edge_bits)));
    }
  }
  modes.push_back(KvqMode(2, 2, 32, widest, ",sinks=32"));
  modes.push_back(KvqMode(2, 2, 32, widest, ",outliers=0.02,sinks=32"));
  return modes;
}

// A few of them, for --quick.
std::vector<std::string> QuickKvqModes(int group) {
  return {KvqMode(2, 2, 16, group, ",scales=u8"), KvqMode(4, 2, 16, group, ",scales=u8"),
          KvqMode(2, 2, 32, group, ",outliers=0.02"),
          KvqMode(2, 2, 32, group, ",sinks=32")};
}

std::vector<int> Groups(int head_dim) {
  std::vector<int> groups;
  for (int g = std::min(32, head_dim); g >= 2; --g) {
    if (head_dim % g == 0) groups.push_back(g);
  }
  if (groups.empty()) groups.push_back(std::max(1, std::min(32, head_dim)));
  return groups;
}

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
  const std::vector<int> groups = Groups(head_dim);
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
  for (std::string& m : KvqModes(groups)) grid.push_back(std::move(m));
  return grid;
}

std::vector<std::string> QuickParetoGrid(int head_dim) {
  std::vector<std::string> grid = {"fp16"};
  for (int bits : {2, 4, 8}) {
    for (int residual : {0, 32}) {
      grid.push_back(KiviMode(bits, 32, std::min(32, head_dim), residual));
    }
  }
  for (std::string& m : QuickKvqModes(Groups(head_dim).front()))
    grid.push_back(std::move(m));
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

KiviComparison CompareWithKivi(absl::Span<const ParetoRow> rows) {
  auto is_kivi = [&](size_t i) { return rows[i].mode.IsPureKivi(); };
  auto is_kvq = [&](size_t i) {
    return rows[i].mode.kind == KvMode::Kind::kKivi && !rows[i].mode.IsPureKivi();
  };
  auto point = [&](size_t i) {
    return ParetoPoint{rows[i].effective_bits, rows[i].result.ppl};
  };
  std::vector<size_t> kivi;
  std::vector<ParetoPoint> kivi_points;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!is_kivi(i)) continue;
    kivi.push_back(i);
    kivi_points.push_back(point(i));
  }
  KiviComparison c;
  const std::vector<bool> front = ParetoFront(kivi_points);
  for (size_t k = 0; k < kivi.size(); ++k) {
    const ParetoPoint p = kivi_points[k];
    if (c.cheapest_kivi < 0 || p.bits < rows[c.cheapest_kivi].effective_bits ||
        (p.bits == rows[c.cheapest_kivi].effective_bits &&
         p.ppl < rows[c.cheapest_kivi].result.ppl)) {
      c.cheapest_kivi = static_cast<int>(kivi[k]);
    }
    if (!front[k]) continue;
    KiviComparison::Cover cover{.kivi = static_cast<int>(kivi[k])};
    for (size_t i = 0; i < rows.size(); ++i) {
      const ParetoPoint q = point(i);
      if (!is_kvq(i) || !(q.bits <= p.bits && q.ppl < p.ppl)) continue;
      if (cover.kvq < 0 || q.bits < rows[cover.kvq].effective_bits)
        cover.kvq = static_cast<int>(i);
    }
    c.kivi_front.push_back(cover);
  }
  std::sort(c.kivi_front.begin(), c.kivi_front.end(),
            [&](const KiviComparison::Cover& a, const KiviComparison::Cover& b) {
              return rows[a.kivi].effective_bits < rows[b.kivi].effective_bits;
            });
  if (c.cheapest_kivi >= 0) {
    const ParetoPoint cheapest = point(c.cheapest_kivi);
    for (size_t i = 0; i < rows.size(); ++i) {
      const ParetoPoint q = point(i);
      if (!is_kvq(i) || !(q.bits <= cheapest.bits - 1 && q.ppl <= cheapest.ppl)) continue;
      if (c.further < 0 || q.ppl < rows[c.further].result.ppl)
        c.further = static_cast<int>(i);
    }
  }
  return c;
}

bool KiviComparison::Dominates() const {
  if (kivi_front.empty()) return false;
  for (const Cover& cover : kivi_front) {
    if (cover.kvq < 0) return false;
  }
  return true;
}

}  // namespace kvq::model
