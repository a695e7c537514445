#include "model/llama2c_loader.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "model/internal/read_file.h"

namespace kvq::model {
namespace {

constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);

// Per-kind tensor lists in file order, all layers of a kind together.
template <typename LayersT, typename Fn>
void ForEachLayerTensor(LayersT& layers, Fn fn) {
  using L = LayerWeights;
  for (auto member : {&L::rms_att, &L::wq, &L::wk, &L::wv, &L::wo, &L::rms_ffn, &L::w1,
                      &L::w2, &L::w3}) {
    for (auto& layer : layers) fn(layer.*member, member);
  }
}

}  // namespace

absl::StatusOr<Model> ParseLlama2c(absl::string_view bytes) {
  if (bytes.size() < kHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("llama2.c checkpoint truncated: %d bytes, the header alone is %d",
                        bytes.size(), kHeaderBytes));
  }
  int32_t h[7];
  std::memcpy(h, bytes.data(), kHeaderBytes);
  Model m;
  ModelConfig& c = m.config;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  c.vocab_size = h[5] == INT32_MIN ? 0 : std::abs(h[5]);
  c.seq_len = h[6];
  c.rope = RopeStyle::kInterleaved;
  if (absl::Status s = c.Validate(); !s.ok()) {
    return absl::InvalidArgumentError("bad llama2.c header: " + std::string(s.message()));
  }
  const size_t dim = c.dim, hidden = c.hidden_dim, q = c.QDim(), kv = c.KvDim();
  const size_t sizes[] = {dim, q * dim,      kv * dim,     kv * dim,    dim * q,
                          dim, hidden * dim, dim * hidden, hidden * dim};
  size_t floats = size_t(c.vocab_size) * dim + dim;
  for (size_t s : sizes) floats += s * c.n_layers;
  const size_t rope_floats = size_t(c.seq_len) * c.HeadDim();  // two tables of /2
  floats += rope_floats;
  if (!c.shared_classifier) floats += size_t(c.vocab_size) * dim;
  const size_t want = kHeaderBytes + floats * sizeof(float);
  if (bytes.size() != want) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "llama2.c checkpoint size mismatch: the header (%s) implies %d bytes, the file "
        "has %d (truncated or not a llama2.c v0 checkpoint)",
        c.DebugString(), want, bytes.size()));
  }

  const char* p = bytes.data() + kHeaderBytes;
  auto take = [&p](std::vector<float>& t, size_t n) {
    t.resize(n);
    std::memcpy(t.data(), p, n * sizeof(float));
    p += n * sizeof(float);
  };
  Weights& w = m.weights;
  w.layers.resize(c.n_layers);
  take(w.token_embedding, size_t(c.vocab_size) * dim);
  int kind = 0, i = 0;
  ForEachLayerTensor(w.layers, [&](std::vector<float>& t, auto) {
    take(t, sizes[kind]);
    if (++i == c.n_layers) i = 0, ++kind;
  });
  take(w.rms_final, dim);
  p += rope_floats * sizeof(float);
  if (!c.shared_classifier) take(w.classifier, size_t(c.vocab_size) * dim);

  auto check_finite = [](const std::vector<float>& t) {
    for (float x : t) {
      if (!std::isfinite(x)) return false;
    }
    return true;
  };
  bool finite = check_finite(w.token_embedding) && check_finite(w.rms_final) &&
                check_finite(w.classifier);
  ForEachLayerTensor(
      w.layers, [&](std::vector<float>& t, auto) { finite = finite && check_finite(t); });
  if (!finite) {
    return absl::DataLossError("llama2.c checkpoint holds NaN or infinite weights");
  }
  m.id = ComputeModelId(m.config, m.weights);
  return m;
}

absl::StatusOr<Model> LoadLlama2c(const std::string& path) {
  KVQ_ASSIGN_OR_RETURN(std::string bytes, model_internal::ReadFile(path));
  absl::StatusOr<Model> m = ParseLlama2c(bytes);
  if (!m.ok()) {
    return absl::Status(m.status().code(),
                        path + ": " + std::string(m.status().message()));
  }
  return m;
}

std::string SerializeLlama2c(const Model& m) {
  const ModelConfig& c = m.config;
  std::string out;
  int32_t h[7] = {c.dim,        c.hidden_dim,
                  c.n_layers,   c.n_heads,
                  c.n_kv_heads, c.shared_classifier ? c.vocab_size : -c.vocab_size,
                  c.seq_len};
  out.append(reinterpret_cast<const char*>(h), sizeof(h));
  auto put = [&out](const std::vector<float>& t) {
    out.append(reinterpret_cast<const char*>(t.data()), t.size() * sizeof(float));
  };
  put(m.weights.token_embedding);
  ForEachLayerTensor(m.weights.layers,
                     [&](const std::vector<float>& t, auto) { put(t); });
  put(m.weights.rms_final);
  out.append(size_t(c.seq_len) * c.HeadDim() * sizeof(float), '\0');
  if (!c.shared_classifier) put(m.weights.classifier);
  return out;
}

}  // namespace kvq::model
