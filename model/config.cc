#include "model/config.h"

#include "absl/strings/str_format.h"

namespace kvq::model {

absl::Status ModelConfig::Validate() const {
  constexpr int kMaxDim = 1 << 16;
  constexpr int kMaxVocab = 1 << 22;
  auto in_range = [](int v, int hi) { return v > 0 && v <= hi; };
  if (!in_range(dim, kMaxDim) || !in_range(hidden_dim, 8 * kMaxDim) ||
      !in_range(n_layers, 1024) || !in_range(n_heads, 1024) ||
      !in_range(n_kv_heads, 1024) || !in_range(vocab_size, kMaxVocab) ||
      !in_range(seq_len, 1 << 24) || head_dim < 0 || head_dim > 4096) {
    return absl::InvalidArgumentError("model config out of range: " + DebugString());
  }
  if (n_heads % n_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("n_kv_heads (%d) must divide n_heads (%d)", n_kv_heads, n_heads));
  }
  if (head_dim == 0 && dim % n_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("n_heads (%d) must divide dim (%d)", n_heads, dim));
  }
  if (HeadDim() % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("head dimension must be even for RoPE, got %d", HeadDim()));
  }
  if (!(rope_theta > 0) || !(norm_eps > 0)) {
    return absl::InvalidArgumentError("rope_theta and norm_eps must be positive");
  }
  return absl::OkStatus();
}

std::string ModelConfig::DebugString() const {
  return absl::StrFormat(
      "dim=%d hidden_dim=%d n_layers=%d n_heads=%d n_kv_heads=%d vocab_size=%d "
      "seq_len=%d head_dim=%d rope=%s",
      dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len, HeadDim(),
      rope == RopeStyle::kInterleaved ? "interleaved" : "half-split");
}

}  // namespace kvq::model
