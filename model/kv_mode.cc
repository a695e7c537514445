#include "model/kv_mode.h"

#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kvq::model {
namespace {

constexpr char kForms[] =
    "expected fp32, fp16, kivi2, kivi4, kivi8 or "
    "kivi:bits=B,block=N,group=G,residual=R (e.g. kivi:bits=2,block=32,group=8,"
    "residual=32)";

// Total bits of one sequence's cache holding n tokens (EffectiveBits).
double CacheBits(const KvMode& mode, const kernels::CacheShape& shape, long n) {
  const double per_token = 2.0 * shape.n_layers * shape.n_kv_heads * shape.head_dim;
  if (n <= 0) return 0;
  switch (mode.kind) {
    case KvMode::Kind::kFp32:
      return 32 * per_token * n;
    case KvMode::Kind::kFp16:
      return 16 * per_token * n;
    case KvMode::Kind::kKivi:
      break;
  }
  const long quantized = n >= mode.residual ? (n - mode.residual) / mode.block : 0;
  const long fp16_tokens = n - quantized * mode.block;
  return 8.0 * kernels::BlockBytes(mode.QuantizedEncoding(), shape) * quantized +
         16 * per_token * fp16_tokens;
}

absl::Status Bad(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrFormat("bad --kv mode \"%s\": %s; %s", text, why, kForms));
}

}  // namespace

absl::StatusOr<KvMode> ParseKvMode(absl::string_view text) {
  KvMode m;
  if (text == "fp32") {
    m.kind = KvMode::Kind::kFp32;
    m.bits = 32;
    return m;
  }
  if (text == "fp16") {
    m.kind = KvMode::Kind::kFp16;
    m.bits = 16;
    return m;
  }
  m.kind = KvMode::Kind::kKivi;
  m.bits = 2;
  if (text == "kivi2" || text == "kivi4" || text == "kivi8") {
    m.bits = text.back() - '0';
    return m;
  }
  absl::string_view rest = text;
  if (!absl::ConsumePrefix(&rest, "kivi:")) return Bad(text, "unknown mode");
  std::set<std::string> seen;
  for (absl::string_view field : absl::StrSplit(rest, ',')) {
    std::vector<absl::string_view> kv = absl::StrSplit(field, absl::MaxSplits('=', 1));
    int value;
    if (kv.size() != 2 || kv[0].empty()) {
      return Bad(text, absl::StrFormat("field \"%s\" is not key=value", field));
    }
    if (!absl::SimpleAtoi(kv[1], &value)) {
      return Bad(text, absl::StrFormat("value of %s is not an integer", kv[0]));
    }
    if (!seen.insert(std::string(kv[0])).second) {
      return Bad(text, absl::StrFormat("%s given twice", kv[0]));
    }
    if (kv[0] == "bits") {
      m.bits = value;
    } else if (kv[0] == "block") {
      m.block = value;
    } else if (kv[0] == "group") {
      m.group = value;
    } else if (kv[0] == "residual") {
      m.residual = value;
    } else {
      return Bad(text, absl::StrFormat("unknown key \"%s\"", kv[0]));
    }
  }
  if (m.bits != 2 && m.bits != 4 && m.bits != 8) {
    return Bad(text, absl::StrFormat("bits must be 2, 4 or 8, got %d", m.bits));
  }
  if (m.block < 1 || m.block > 4096) {
    return Bad(text, absl::StrFormat("block must be in [1, 4096], got %d", m.block));
  }
  if (m.group < 0) return Bad(text, "group must be positive");
  if (m.residual < 0 || m.residual % m.block != 0) {
    return Bad(text, absl::StrFormat("residual (%d) must be a non-negative multiple of "
                                     "block (%d)",
                                     m.residual, m.block));
  }
  return m;
}

absl::StatusOr<KvMode> KvMode::Resolve(int head_dim) const {
  KvMode m = *this;
  if (m.kind == Kind::kFp32) return m;
  kernels::CacheShape shape{.n_layers = 1, .n_kv_heads = 1, .head_dim = head_dim};
  if (m.kind == Kind::kFp16) {
    m.group = 0;
    if (absl::Status s = kernels::Validate(m.Fp16Encoding(), shape); !s.ok()) return s;
    return m;
  }
  if (m.group == 0) m.group = std::min(32, head_dim);
  if (head_dim % m.group != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("kv mode %s: group %d does not divide head_dim %d", ToString(),
                        m.group, head_dim));
  }
  if (absl::Status s = kernels::Validate(m.QuantizedEncoding(), shape); !s.ok()) {
    return absl::InvalidArgumentError("kv mode " + ToString() + ": " +
                                      std::string(s.message()));
  }
  return m;
}

std::string KvMode::ToString() const {
  switch (kind) {
    case Kind::kFp32:
      return "fp32";
    case Kind::kFp16:
      return "fp16";
    case Kind::kKivi:
      break;
  }
  return absl::StrFormat("kivi:bits=%d,block=%d,group=%d,residual=%d", bits, block, group,
                         residual);
}

double EffectiveBits(const KvMode& mode, const kernels::CacheShape& shape,
                     long n_tokens) {
  return EffectiveBits(mode, shape, absl::Span<const long>(&n_tokens, 1));
}

double EffectiveBits(const KvMode& mode, const kernels::CacheShape& shape,
                     absl::Span<const long> sequence_tokens) {
  double bits = 0, elements = 0;
  for (long n : sequence_tokens) {
    if (n <= 0) continue;
    bits += CacheBits(mode, shape, n);
    elements += 2.0 * n * shape.n_layers * shape.n_kv_heads * shape.head_dim;
  }
  return elements > 0 ? bits / elements : 0;
}

}  // namespace kvq::model
