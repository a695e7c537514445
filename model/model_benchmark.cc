#include "model/model_benchmark.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>

#include "common/status_macros.h"
#include "model/block_kv_cache.h"
#include "model/kv_cache_factory.h"
#include "model/synthetic_model.h"
#include "model/transformer.h"

namespace kvq::model {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// A cache holding `tokens` synthetic tokens (decode speed does not depend on
// the values): random K/V appended layer by layer, quantized by the rule.
absl::StatusOr<std::unique_ptr<BlockKvCache>> FilledCache(const KvMode& mode,
                                                          const KvCacheShape& shape,
                                                          int tokens, uint64_t seed) {
  KVQ_ASSIGN_OR_RETURN(std::unique_ptr<BlockKvCache> cache,
                       BlockKvCache::Create(mode, shape));
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  constexpr int kChunk = 256;
  std::vector<float> k(size_t(kChunk) * shape.kv_dim()), v(k.size());
  for (int done = 0; done < tokens; done += kChunk) {
    const int n = std::min(kChunk, tokens - done);
    for (int l = 0; l < shape.n_layers; ++l) {
      for (float& x : k) x = normal(rng);
      for (float& x : v) x = normal(rng);
      KVQ_RETURN_IF_ERROR(cache->Append(l, n, k.data(), v.data()));
    }
  }
  return cache;
}

absl::Status RunWeightsMode(const ModelBenchmarkOptions& o, WeightsMode weights,
                            std::vector<BenchResult>& results,
                            const std::function<void(const BenchResult&)>& progress);

}  // namespace

absl::StatusOr<std::vector<BenchResult>> RunModelBenchmark(
    const ModelBenchmarkOptions& o,
    const std::function<void(const BenchResult&)>& progress) {
  std::vector<BenchResult> results;
  for (WeightsMode w : o.weights) {
    KVQ_RETURN_IF_ERROR(RunWeightsMode(o, w, results, progress));
  }
  return results;
}

namespace {

absl::Status RunWeightsMode(const ModelBenchmarkOptions& o, WeightsMode weights,
                            std::vector<BenchResult>& results,
                            const std::function<void(const BenchResult&)>& progress) {
  KVQ_ASSIGN_OR_RETURN(Model model, SyntheticModel(o.config, o.seed));
  SetWeightsMode(model, weights);
  Transformer t(model, RawWeights::kRelease);
  const KvCacheShape shape = KvCacheShape::Of(o.config);
  const size_t first_row = results.size();
  auto report = [&](BenchResult r) {
    r.weights = WeightsModeName(weights);
    r.weights_kernel = t.weights_kernel();
    r.weight_bytes = double(t.weight_bytes());
    // The same row with fp32 weights, when those ran first.
    for (size_t i = 0; i < first_row; ++i) {
      const BenchResult& b = results[i];
      if (b.weights == "fp32" && b.workload == r.workload && b.kv == r.kv &&
          b.batch == r.batch && b.context == r.context) {
        r.ratio_vs_fp32_weights = r.tokens_per_s / b.tokens_per_s;
      }
    }
    if (weights == WeightsMode::kFp32) r.ratio_vs_fp32_weights = 1.0;
    results.push_back(r);
    if (progress) progress(r);
  };
  std::mt19937 rng(o.seed);
  auto random_tokens = [&](int n) {
    std::vector<int> ids(n);
    for (int& id : ids) id = static_cast<int>(rng() % o.config.vocab_size);
    return ids;
  };
  KVQ_ASSIGN_OR_RETURN(KvMode fp16, ParseKvMode("fp16"));

  for (int n : o.prefill_tokens) {
    const std::vector<int> prompt = random_tokens(n);
    std::vector<double> times;
    for (int run = 0; run < o.runs; ++run) {
      KVQ_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, NewKvCache(fp16, shape));
      const auto start = std::chrono::steady_clock::now();
      KVQ_RETURN_IF_ERROR(t.Prefill(prompt, *cache).status());
      times.push_back(Seconds(start));
    }
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    BenchResult r;
    r.workload = "prefill";
    r.kv = "fp16";
    r.context = n;
    r.tokens_per_s = n / median;
    r.seconds = median;
    report(r);
  }

  // fp16 and kivi2 runs alternate, so both see the same machine load.
  for (int context : o.decode_contexts) {
    for (int batch : o.decode_batches) {
      std::vector<KvMode> modes;
      std::vector<std::unique_ptr<BlockKvCache>> bases;
      for (const std::string& mode_text : o.decode_modes) {
        KVQ_ASSIGN_OR_RETURN(KvMode parsed, ParseKvMode(mode_text));
        KVQ_ASSIGN_OR_RETURN(KvMode mode, parsed.Resolve(o.config.HeadDim()));
        KVQ_ASSIGN_OR_RETURN(std::unique_ptr<BlockKvCache> base,
                             FilledCache(mode, shape, context, o.seed));
        modes.push_back(mode);
        bases.push_back(std::move(base));
      }
      std::vector<std::vector<double>> times(modes.size());
      for (int run = 0; run < o.runs; ++run) {
        for (size_t m = 0; m < modes.size(); ++m) {
          std::vector<std::unique_ptr<BlockKvCache>> caches;
          std::vector<KvCache*> ptrs;
          for (int i = 0; i < batch; ++i) {
            caches.push_back(bases[m]->Clone());
            ptrs.push_back(caches.back().get());
          }
          std::vector<float> logits;
          std::vector<int> ids = random_tokens(batch);
          KVQ_RETURN_IF_ERROR(t.DecodeStep(ids, ptrs, &logits));  // warm-up
          const auto start = std::chrono::steady_clock::now();
          for (int step = 0; step < o.decode_steps; ++step) {
            ids = random_tokens(batch);
            KVQ_RETURN_IF_ERROR(t.DecodeStep(ids, ptrs, &logits));
          }
          times[m].push_back(Seconds(start));
        }
      }
      double fp16_rate = 0;
      for (size_t m = 0; m < modes.size(); ++m) {
        std::sort(times[m].begin(), times[m].end());
        const double median = times[m][times[m].size() / 2];
        BenchResult r;
        r.workload = "decode";
        r.kv = modes[m].ToString();
        r.batch = batch;
        r.context = context;
        r.tokens_per_s = double(batch) * o.decode_steps / median;
        r.seconds = median;
        r.cache_bytes_per_seq = bases[m]->Stats().stored_bits / 8;
        if (modes[m].kind == KvMode::Kind::kFp16) fp16_rate = r.tokens_per_s;
        r.ratio_vs_fp16 = fp16_rate > 0 ? r.tokens_per_s / fp16_rate : 0;
        report(r);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace kvq::model
