#include "model/kv_mode.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kvq::model {
namespace {

constexpr char kForms[] =
    "expected fp32, fp16, kivi2, kivi4, kivi8 or kivi:KEY=VALUE,... with keys "
    "bits, kbits, vbits (2, 4, 8), block, group, residual, outliers, koutliers, "
    "voutliers (fractions in [0, 0.5]), scales (fp16 or u8), sinks, edge_layers "
    "with edge_bits (e.g. "
    "kivi:bits=2,block=32,group=8,residual=32 or "
    "kivi:kbits=4,vbits=2,outliers=0.02,sinks=32,scales=u8)";

constexpr double kMaxOutliers = 0.5;

absl::Status Bad(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrFormat("bad --kv mode \"%s\": %s; %s", text, why, kForms));
}

bool ValidBits(int b) { return b == 2 || b == 4 || b == 8; }

int OutlierCount(double fraction, int block, int head_dim) {
  const double n = std::round(fraction * block * head_dim);
  return static_cast<int>(std::min<double>(n, static_cast<double>(block) * head_dim));
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
  int k_bits = 0, v_bits = 0;
  for (absl::string_view field : absl::StrSplit(rest, ',')) {
    std::vector<absl::string_view> kv = absl::StrSplit(field, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return Bad(text, absl::StrFormat("field \"%s\" is not key=value", field));
    }
    const absl::string_view key = kv[0], val = kv[1];
    if (!seen.insert(std::string(key)).second) {
      return Bad(text, absl::StrFormat("%s given twice", key));
    }
    if (key == "scales") {
      if (val == "fp16") {
        m.scales = kernels::ScaleFormat::kFp16;
      } else if (val == "u8") {
        m.scales = kernels::ScaleFormat::kU8;
      } else {
        return Bad(text, absl::StrFormat("scales must be fp16 or u8, got \"%s\"", val));
      }
      continue;
    }
    if (key == "outliers" || key == "koutliers" || key == "voutliers") {
      double f;
      if (!absl::SimpleAtod(val, &f) || !(f >= 0 && f <= kMaxOutliers)) {
        return Bad(text, absl::StrFormat("%s must be a fraction in [0, %g], got \"%s\"",
                                         key, kMaxOutliers, val));
      }
      if (key != "voutliers") {
        if (key == "koutliers" && seen.count("outliers")) {
          return Bad(text, "koutliers given with outliers");
        }
        m.k_outliers = f;
      }
      if (key != "koutliers") {
        if (key == "voutliers" && seen.count("outliers")) {
          return Bad(text, "voutliers given with outliers");
        }
        m.v_outliers = f;
      }
      if (key == "outliers" && (seen.count("koutliers") || seen.count("voutliers"))) {
        return Bad(text, "outliers given with koutliers or voutliers");
      }
      continue;
    }
    int value;
    if (!absl::SimpleAtoi(val, &value)) {
      return Bad(
          text,
          absl::StrFormat("value of %s is not an integer (or is out of int range)", key));
    }
    if (key == "bits") {
      m.bits = value;
    } else if (key == "kbits") {
      k_bits = value;
    } else if (key == "vbits") {
      v_bits = value;
    } else if (key == "block") {
      m.block = value;
    } else if (key == "group") {
      m.group = value;
    } else if (key == "residual") {
      m.residual = value;
    } else if (key == "sinks") {
      m.sinks = value;
    } else if (key == "edge_layers") {
      m.edge_layers = value;
    } else if (key == "edge_bits") {
      m.edge_bits = value;
    } else {
      return Bad(text, absl::StrFormat("unknown key \"%s\"", key));
    }
  }
  const int base_bits = m.bits;
  if (k_bits != 0 || seen.count("kbits")) m.bits = k_bits;
  if (v_bits != 0 || seen.count("vbits")) {
    m.v_bits = v_bits;
  } else if (seen.count("kbits")) {
    m.v_bits = base_bits;  // bits (or its default) still names the values'
  }
  if (!ValidBits(m.bits)) {
    return Bad(text, absl::StrFormat("key bits must be 2, 4 or 8, got %d", m.bits));
  }
  if (m.v_bits != 0 && !ValidBits(m.v_bits)) {
    return Bad(text, absl::StrFormat("value bits must be 2, 4 or 8, got %d", m.v_bits));
  }
  if (m.v_bits == m.bits) m.v_bits = 0;
  if (m.block < 1 || m.block > kernels::kMaxBlockTokens) {
    return Bad(text, absl::StrFormat("block must be in [1, %d], got %d",
                                     kernels::kMaxBlockTokens, m.block));
  }
  if (m.group < 0) return Bad(text, "group must be positive");
  if (m.residual < 0 || m.residual % m.block != 0) {
    return Bad(text, absl::StrFormat("residual (%d) must be a non-negative multiple of "
                                     "block (%d)",
                                     m.residual, m.block));
  }
  if (m.sinks < 0)
    return Bad(text, absl::StrFormat("sinks must be >= 0, got %d", m.sinks));
  if ((m.edge_layers == 0) != (m.edge_bits == 0) || m.edge_layers < 0 ||
      m.edge_layers > kernels::kMaxLayers) {
    return Bad(text, absl::StrFormat("edge_layers (%d) and edge_bits (%d) go together, "
                                     "edge_layers in [1, %d]",
                                     m.edge_layers, m.edge_bits, kernels::kMaxLayers));
  }
  if (m.edge_layers > 0 && !ValidBits(m.edge_bits)) {
    return Bad(text, absl::StrFormat("edge_bits must be 2, 4 or 8, got %d", m.edge_bits));
  }
  m.sinks = (m.sinks + m.block - 1) / m.block * m.block;  // whole blocks
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
  if (head_dim < 1 || head_dim % m.group != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("kv mode %s: group %d does not divide head_dim %d", ToString(),
                        m.group, head_dim));
  }
  m.k_outlier_count = OutlierCount(m.k_outliers, m.block, head_dim);
  m.v_outlier_count = OutlierCount(m.v_outliers, m.block, head_dim);
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
  std::string s = value_bits() == bits
                      ? absl::StrFormat("kivi:bits=%d", bits)
                      : absl::StrFormat("kivi:kbits=%d,vbits=%d", bits, value_bits());
  absl::StrAppendFormat(&s, ",block=%d,group=%d,residual=%d", block, group, residual);
  if (k_outliers == v_outliers) {
    if (k_outliers != 0) absl::StrAppendFormat(&s, ",outliers=%g", k_outliers);
  } else {
    if (k_outliers != 0) absl::StrAppendFormat(&s, ",koutliers=%g", k_outliers);
    if (v_outliers != 0) absl::StrAppendFormat(&s, ",voutliers=%g", v_outliers);
  }
  if (scales == kernels::ScaleFormat::kU8) s += ",scales=u8";
  if (sinks != 0) absl::StrAppendFormat(&s, ",sinks=%d", sinks);
  if (edge_layers != 0) {
    absl::StrAppendFormat(&s, ",edge_layers=%d,edge_bits=%d", edge_layers, edge_bits);
  }
  return s;
}

double EffectiveBits(const KvMode& mode, const kernels::CacheShape& shape,
                     absl::Span<const int> n_tokens) {
  double bits = 0, elements = 0;
  for (int n : n_tokens) {
    if (n <= 0) continue;
    bits += EffectiveBits(mode, shape, n) * n;
    elements += n;
  }
  return elements == 0 ? 0.0 : bits / elements;
}

double EffectiveBits(const KvMode& mode, const kernels::CacheShape& shape, int n_tokens) {
  if (n_tokens <= 0) return 0.0;
  if (mode.kind == KvMode::Kind::kFp32) return 32.0;
  if (mode.kind == KvMode::Kind::kFp16) return 16.0;
  const int B = mode.block;
  // Quantized blocks: b >= sink blocks with n >= (b + 1) * B + R (design 3.3).
  int quantized = 0;
  for (int b = mode.sink_blocks(); (b + 1) * B + mode.residual <= n_tokens; ++b) {
    ++quantized;
  }
  const double per_token = 2.0 * shape.head_dim;  // per KV head and layer
  // Bits of one quantized head section, averaged over the layers.
  const kernels::CacheShape one_head{std::max(1, shape.n_layers), 1, shape.head_dim};
  const double head_bits =
      8.0 * kernels::BlockBytes(mode.QuantizedEncoding(), one_head) / one_head.n_layers;
  const double fp16_tokens = n_tokens - static_cast<double>(quantized) * B;
  return (quantized * head_bits + 16.0 * per_token * fp16_tokens) /
         (per_token * n_tokens);
}

}  // namespace kvq::model
