#include "model/transformer.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "model/internal/ops.h"
#include "model/internal/weight_matrix.h"
#include "model/tokenizer.h"

namespace kvq::model {

namespace ops = model_internal;

namespace {

// Query rows per slice of prefill attention (bounds the score buffer).
constexpr int kPrefillRows = 128;

// x[i] = the embedding of tokens[i], rows of `dim` floats: from the model's
// token_embedding, or from the packed shared classifier once it was released.
// With bf16 or int8 weights a shared classifier's rows are always read back
// from the packed copy, so a model gives the same results kept or released.
void EmbedTokens(const Model& model, const ops::WeightMatrix& classifier,
                 absl::Span<const int> tokens, float* x) {
  const int dim = model.config.dim;
  const std::vector<float>& table = model.weights.token_embedding;
  const bool from_classifier =
      table.empty() ||
      (model.config.shared_classifier && model.weights_mode != WeightsMode::kFp32);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (from_classifier) {
      classifier.Row(tokens[i], x + i * dim);
    } else {
      std::memcpy(x + i * dim, &table[size_t(tokens[i]) * dim], dim * sizeof(float));
    }
  }
}

// Packs m[out][in]; when `release`, frees m (before the next matrix is
// packed, so the peak is the model plus one matrix).
ops::WeightMatrix Pack(const std::vector<float>& m, int out, int in, WeightsMode mode,
                       std::vector<float>* release) {
  if (m.size() != size_t(out) * in) {
    std::fprintf(stderr,
                 "kvq: Transformer over a model whose weight matrices were released\n");
    std::abort();
  }
  ops::WeightMatrix packed(m.data(), out, in, mode);
  if (release != nullptr) std::vector<float>().swap(*release);
  return packed;
}

// RmsNorm of each of `n` rows of `dim` floats.
void RmsNormRows(const float* x, int n, int dim, const float* weight, float eps,
                 float* out) {
  for (int i = 0; i < n; ++i) {
    ops::RmsNorm(x + size_t(i) * dim, weight, dim, eps, out + size_t(i) * dim);
  }
}

}  // namespace

struct Transformer::Packed {
  struct Layer {
    ops::WeightMatrix wq, wk, wv, wo, w1, w2, w3;
  };
  std::vector<Layer> layers;
  ops::WeightMatrix classifier;  // [vocab_size, dim]
};

Transformer::Transformer(const Model& model) : Transformer(model, nullptr) {}

Transformer::Transformer(Model& model, RawWeights raw)
    : Transformer(model, raw == RawWeights::kRelease ? &model : nullptr) {}

Transformer::Transformer(const Model& model, Model* release)
    : model_(model),
      rope_freq_(ops::RopeFrequencies(model.config.HeadDim(), model.config.rope_theta)),
      n_threads_(ops::InitThreads()) {
  const ModelConfig& c = model.config;
  auto packed = std::make_unique<Packed>();
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& w = model.weights.layers[l];
    LayerWeights* r = release != nullptr ? &release->weights.layers[l] : nullptr;
    auto pack = [&](std::vector<float> LayerWeights::*m, int out, int in) {
      return Pack(w.*m, out, in, model.weights_mode, r != nullptr ? &(r->*m) : nullptr);
    };
    // In order (braced lists evaluate left to right): one matrix at a time.
    packed->layers.push_back({pack(&LayerWeights::wq, c.QDim(), c.dim),
                              pack(&LayerWeights::wk, c.KvDim(), c.dim),
                              pack(&LayerWeights::wv, c.KvDim(), c.dim),
                              pack(&LayerWeights::wo, c.dim, c.QDim()),
                              pack(&LayerWeights::w1, c.hidden_dim, c.dim),
                              pack(&LayerWeights::w2, c.dim, c.hidden_dim),
                              pack(&LayerWeights::w3, c.hidden_dim, c.dim)});
  }
  const std::vector<float>& cls =
      c.shared_classifier ? model.weights.token_embedding : model.weights.classifier;
  std::vector<float>* cls_release = nullptr;
  if (release != nullptr) {
    cls_release = c.shared_classifier ? &release->weights.token_embedding
                                      : &release->weights.classifier;
  }
  packed->classifier = Pack(cls, c.vocab_size, c.dim, model.weights_mode, cls_release);
  size_t bytes = packed->classifier.bytes();
  for (const Packed::Layer& l : packed->layers) {
    for (const ops::WeightMatrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w1, &l.w2, &l.w3}) {
      bytes += m->bytes();
    }
  }
  weight_bytes_ = bytes;
  packed_ = std::move(packed);
}

const char* Transformer::weights_kernel() const {
  return ops::WeightsKernelName(model_.weights_mode);
}

Transformer::~Transformer() = default;

absl::Status Transformer::CheckCache(const KvCache& cache, int new_tokens) const {
  const ModelConfig& c = model_.config;
  const KvCacheShape& s = cache.shape();
  if (s.n_layers != c.n_layers || s.n_heads != c.n_heads ||
      s.n_kv_heads != c.n_kv_heads || s.head_dim != c.HeadDim()) {
    return absl::InvalidArgumentError("KV cache shape does not match the model");
  }
  for (int l = 0; l < c.n_layers; ++l) {
    if (cache.layer_tokens(l) != cache.n_tokens()) {
      return absl::FailedPreconditionError("KV cache holds a partial step");
    }
  }
  if (static_cast<long>(cache.n_tokens()) + new_tokens > c.seq_len) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "sequence too long: %d cached + %d new tokens exceed the model's seq_len %d",
        cache.n_tokens(), new_tokens, c.seq_len));
  }
  return absl::OkStatus();
}

void Transformer::FeedForward(int l, float* x, int n) const {
  const ModelConfig& c = model_.config;
  const Packed::Layer& w = packed_->layers[l];
  std::vector<float> xb(size_t(n) * c.dim), gate(size_t(n) * c.hidden_dim),
      up(gate.size()), down(xb.size());
  RmsNormRows(x, n, c.dim, model_.weights.layers[l].rms_ffn.data(), c.norm_eps,
              xb.data());
  w.w1.MatMul(xb.data(), n, gate.data());
  w.w3.MatMul(xb.data(), n, up.data());
  ops::SwiGlu(gate.data(), up.data(), static_cast<int>(gate.size()));
  w.w2.MatMul(gate.data(), n, down.data());
  for (size_t i = 0; i < down.size(); ++i) x[i] += down[i];
}

void Transformer::Logits(const float* x, int n, float* logits) const {
  const ModelConfig& c = model_.config;
  std::vector<float> xb(size_t(n) * c.dim);
  RmsNormRows(x, n, c.dim, model_.weights.rms_final.data(), c.norm_eps, xb.data());
  packed_->classifier.MatMul(xb.data(), n, logits);
}

absl::StatusOr<std::vector<float>> Transformer::Prefill(
    absl::Span<const int> tokens, KvCache& cache, const PrefillOptions& options) const {
  const ModelConfig& c = model_.config;
  if (tokens.empty()) return absl::InvalidArgumentError("prefill of no tokens");
  KVQ_RETURN_IF_ERROR(CheckTokenIds(tokens, c.vocab_size));
  const int n = static_cast<int>(tokens.size());
  KVQ_RETURN_IF_ERROR(CheckCache(cache, n));
  const int p0 = cache.n_tokens(), total = p0 + n;
  const int dim = c.dim, hd = c.HeadDim(), qdim = c.QDim(), kvdim = c.KvDim();
  const int group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));

  std::vector<float> x(size_t(n) * dim), xb(x.size()), q(size_t(n) * qdim),
      att(size_t(n) * qdim), proj(x.size());
  std::vector<float> k(size_t(total) * kvdim), v(k.size());  // prefix then prompt
  const size_t score_floats = size_t(std::min(n, kPrefillRows)) * total;
  std::vector<float> scores(score_floats * n_threads_);
  EmbedTokens(model_, packed_->classifier, tokens, x.data());
  for (int l = 0; l < c.n_layers; ++l) {
    const Packed::Layer& w = packed_->layers[l];
    RmsNormRows(x.data(), n, dim, model_.weights.layers[l].rms_att.data(), c.norm_eps,
                xb.data());
    float* kn = &k[size_t(p0) * kvdim];
    float* vn = &v[size_t(p0) * kvdim];
    w.wq.MatMul(xb.data(), n, q.data());
    w.wk.MatMul(xb.data(), n, kn);
    w.wv.MatMul(xb.data(), n, vn);
    for (int i = 0; i < n; ++i) {
      ops::ApplyRope(&q[size_t(i) * qdim], c.n_heads, hd, p0 + i, rope_freq_, c.rope);
      ops::ApplyRope(kn + size_t(i) * kvdim, c.n_kv_heads, hd, p0 + i, rope_freq_,
                     c.rope);
    }
    if (p0 > 0) KVQ_RETURN_IF_ERROR(cache.Read(l, k.data(), v.data()));

      // Causal attention, heads in parallel: S = Q_h K_h^T, softmax, S V_h,
      // in slices of query rows that multiply only the keys they can see.
#pragma omp parallel for num_threads(n_threads_) schedule(dynamic, 1)
    for (int h = 0; h < c.n_heads; ++h) {
      const int kvh = h / group;
      float* s = &scores[score_floats * omp_get_thread_num()];
      for (int i0 = 0; i0 < n; i0 += kPrefillRows) {
        const int rows = std::min(kPrefillRows, n - i0), width = p0 + i0 + rows;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, width, hd, scale,
                    &q[size_t(i0) * qdim + size_t(h) * hd], qdim, &k[size_t(kvh) * hd],
                    kvdim, 0.0f, s, total);
        for (int i = 0; i < rows; ++i) {
          float* row = s + size_t(i) * total;
          const int visible = p0 + i0 + i + 1;
          ops::Softmax(row, visible);
          std::fill(row + visible, row + width, 0.0f);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, width, 1.0f, s,
                    total, &v[size_t(kvh) * hd], kvdim, 0.0f,
                    &att[size_t(i0) * qdim + size_t(h) * hd], qdim);
      }
    }
    KVQ_RETURN_IF_ERROR(cache.Append(l, n, kn, vn));
    if (options.on_layer) KVQ_RETURN_IF_ERROR(options.on_layer(l));

    w.wo.MatMul(att.data(), n, proj.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
    FeedForward(l, x.data(), n);
  }
  std::vector<float> logits(c.vocab_size);
  Logits(&x[size_t(n - 1) * dim], 1, logits.data());
  return logits;
}

absl::Status Transformer::DecodeStep(absl::Span<const int> tokens,
                                     absl::Span<KvCache* const> caches,
                                     std::vector<float>* logits) const {
  const ModelConfig& c = model_.config;
  if (tokens.size() != caches.size() || tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "decode step: %d tokens for %d caches", tokens.size(), caches.size()));
  }
  KVQ_RETURN_IF_ERROR(CheckTokenIds(tokens, c.vocab_size));
  for (size_t i = 0; i < caches.size(); ++i) {
    KVQ_RETURN_IF_ERROR(CheckCache(*caches[i], 1));
    for (size_t j = 0; j < i; ++j) {
      if (caches[j] == caches[i]) {
        return absl::InvalidArgumentError(
            "decode step: a cache appears twice in the batch");
      }
    }
  }
  const int n = static_cast<int>(tokens.size());
  const int dim = c.dim, hd = c.HeadDim(), qdim = c.QDim(), kvdim = c.KvDim();

  std::vector<int> pos(n);
  for (int i = 0; i < n; ++i) pos[i] = caches[i]->n_tokens();
  std::vector<float> x(size_t(n) * dim), xb(x.size()), q(size_t(n) * qdim), att(q.size()),
      k(size_t(n) * kvdim), v(k.size()), proj(x.size());
  EmbedTokens(model_, packed_->classifier, tokens, x.data());
  for (int l = 0; l < c.n_layers; ++l) {
    const Packed::Layer& w = packed_->layers[l];
    RmsNormRows(x.data(), n, dim, model_.weights.layers[l].rms_att.data(), c.norm_eps,
                xb.data());
    w.wq.MatMul(xb.data(), n, q.data());
    w.wk.MatMul(xb.data(), n, k.data());
    w.wv.MatMul(xb.data(), n, v.data());
    for (int i = 0; i < n; ++i) {
      ops::ApplyRope(&q[size_t(i) * qdim], c.n_heads, hd, pos[i], rope_freq_, c.rope);
      ops::ApplyRope(&k[size_t(i) * kvdim], c.n_kv_heads, hd, pos[i], rope_freq_, c.rope);
      KVQ_RETURN_IF_ERROR(
          caches[i]->Append(l, 1, &k[size_t(i) * kvdim], &v[size_t(i) * kvdim]));
    }
    // On the products' OpenMP threads: a second pool would leave them spinning
    // beside it on the same cores (docs/performance.md, "One thread pool").
    KVQ_RETURN_IF_ERROR(
        AttendBatch(l, caches, q.data(), att.data(), n_threads_, &ops::ParallelFor));
    w.wo.MatMul(att.data(), n, proj.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
    FeedForward(l, x.data(), n);
  }
  logits->resize(size_t(n) * c.vocab_size);
  Logits(x.data(), n, logits->data());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> Transformer::Decode(int token, KvCache& cache) const {
  std::vector<float> logits;
  KvCache* caches[] = {&cache};
  KVQ_RETURN_IF_ERROR(DecodeStep({&token, 1}, caches, &logits));
  return logits;
}

}  // namespace kvq::model
