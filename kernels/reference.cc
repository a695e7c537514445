#include "kernels/reference.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/checks.h"
#include "kernels/fp16.h"

namespace kvq::kernels::reference {
namespace {

// fp16 values are stored little-endian whatever the host's byte order.
void StoreHalf(uint8_t* p, uint16_t h) {
  p[0] = static_cast<uint8_t>(h & 0xff);
  p[1] = static_cast<uint8_t>(h >> 8);
}

uint16_t LoadHalf(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (static_cast<uint16_t>(p[1]) << 8));
}

// Code j of a byte sits at bits [b*j, b*j + b).
int CodeAt(const uint8_t* bytes, int i, int bits) {
  const int per_byte = 8 / bits;
  return (bytes[i / per_byte] >> (bits * (i % per_byte))) & ((1 << bits) - 1);
}

// One KV head of a quantized part. k, v: [B][head_dim] fp16.
void QuantizeHead(const BlockEncoding& enc, int head_dim, const uint16_t* k,
                  const uint16_t* v, uint8_t* head) {
  const HeadLayout l = GetHeadLayout(enc, head_dim);
  const int B = enc.block_tokens, D = head_dim, b = enc.bits, G = enc.group;
  const int per_byte = 8 / b;
  // Keys per channel: channel c's group is the B tokens' values in channel c.
  const int k_row = B / per_byte;  // bytes of codes per channel
  for (int c = 0; c < D; ++c) {
    const GroupParams gp = ComputeGroupParams(k + c, B, D, b);
    StoreHalf(head + l.k_scale + 2 * c, gp.scale);
    StoreHalf(head + l.k_zero + 2 * c, gp.zero);
    uint8_t* codes = head + l.k_codes + static_cast<size_t>(c) * k_row;
    std::fill(codes, codes + k_row, 0);
    for (int t = 0; t < B; ++t) {
      codes[t / per_byte] |= QuantizeValue(k[t * D + c], gp, b) << (b * (t % per_byte));
    }
  }
  // Values per token, in groups of G consecutive channels.
  const int v_row = D / per_byte;  // bytes of codes per token
  const int groups = D / G;
  for (int t = 0; t < B; ++t) {
    uint8_t* codes = head + l.v_codes + static_cast<size_t>(t) * v_row;
    std::fill(codes, codes + v_row, 0);
    for (int g = 0; g < groups; ++g) {
      const uint16_t* x = v + t * D + g * G;
      const GroupParams gp = ComputeGroupParams(x, G, 1, b);
      StoreHalf(head + l.v_scale + 2 * (static_cast<size_t>(t) * groups + g), gp.scale);
      StoreHalf(head + l.v_zero + 2 * (static_cast<size_t>(t) * groups + g), gp.zero);
      for (int i = 0; i < G; ++i) {
        const int c = g * G + i;
        codes[c / per_byte] |= QuantizeValue(x[i], gp, b) << (b * (c % per_byte));
      }
    }
  }
}

// One KV head of an fp16 part: the values, row by row.
void CopyHeadFp16(const BlockEncoding& enc, int head_dim, const uint16_t* k,
                  const uint16_t* v, uint8_t* head) {
  const HeadLayout l = GetHeadLayout(enc, head_dim);
  const size_t n = static_cast<size_t>(enc.block_tokens) * head_dim;
  for (size_t i = 0; i < n; ++i) {
    StoreHalf(head + l.k + 2 * i, k[i]);
    StoreHalf(head + l.v + 2 * i, v[i]);
  }
}

// Writes a validated layer from fp16 inputs [n_kv_heads][B][head_dim].
void WriteLayer(const BlockEncoding& enc, int n_kv_heads, int head_dim, const uint16_t* k,
                const uint16_t* v, uint8_t* out) {
  const size_t head_values = static_cast<size_t>(enc.block_tokens) * head_dim;
  const size_t head_bytes = GetHeadLayout(enc, head_dim).head_bytes;
  for (int h = 0; h < n_kv_heads; ++h) {
    const uint16_t* kh = k + h * head_values;
    const uint16_t* vh = v + h * head_values;
    uint8_t* head = out + h * head_bytes;
    if (enc.is_fp16()) {
      CopyHeadFp16(enc, head_dim, kh, vh, head);
    } else {
      QuantizeHead(enc, head_dim, kh, vh, head);
    }
  }
}

std::vector<uint16_t> ToHalves(const float* x, size_t n) {
  std::vector<uint16_t> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = FloatToHalf(x[i]);
  return h;
}

// Dequantizes the first n_rows tokens of one KV head. k, v: [n_rows][head_dim].
void DequantizeHead(const BlockEncoding& enc, int head_dim, const uint8_t* head,
                    int n_rows, float* k, float* v) {
  const HeadLayout l = GetHeadLayout(enc, head_dim);
  const int B = enc.block_tokens, D = head_dim, b = enc.bits;
  if (enc.is_fp16()) {
    for (size_t i = 0; i < static_cast<size_t>(n_rows) * D; ++i) {
      k[i] = HalfToFloat(LoadHalf(head + l.k + 2 * i));
      v[i] = HalfToFloat(LoadHalf(head + l.v + 2 * i));
    }
    return;
  }
  const int per_byte = 8 / b;
  const int k_row = B / per_byte, v_row = D / per_byte, groups = D / enc.group;
  for (int c = 0; c < D; ++c) {
    const GroupParams gp{LoadHalf(head + l.k_scale + 2 * c),
                         LoadHalf(head + l.k_zero + 2 * c)};
    const uint8_t* codes = head + l.k_codes + static_cast<size_t>(c) * k_row;
    for (int t = 0; t < n_rows; ++t)
      k[t * D + c] = DequantizeValue(CodeAt(codes, t, b), gp);
  }
  for (int t = 0; t < n_rows; ++t) {
    const uint8_t* codes = head + l.v_codes + static_cast<size_t>(t) * v_row;
    for (int c = 0; c < D; ++c) {
      const size_t gi = static_cast<size_t>(t) * groups + c / enc.group;
      const GroupParams gp{LoadHalf(head + l.v_scale + 2 * gi),
                           LoadHalf(head + l.v_zero + 2 * gi)};
      v[t * D + c] = DequantizeValue(CodeAt(codes, c, b), gp);
    }
  }
}

// INVALID_ARGUMENT unless the fp16 numbers of bytes [begin, end) are finite.
absl::Status CheckHalfRange(const uint8_t* head, size_t begin, size_t end, int h) {
  for (size_t i = begin; i < end; i += 2) {
    if (!HalfIsFinite(LoadHalf(head + i))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dequantize_layer: KV head ", h, " byte ", i, " holds a non-finite fp16"));
    }
  }
  return absl::OkStatus();
}

// A part's scales and zeros (quantized) or values (fp16) must be finite.
absl::Status CheckPartFinite(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                             const uint8_t* part) {
  const HeadLayout l = GetHeadLayout(enc, head_dim);
  for (int h = 0; h < n_kv_heads; ++h) {
    const uint8_t* head = part + h * l.head_bytes;
    if (enc.is_fp16()) {
      KVQ_RETURN_IF_ERROR(CheckHalfRange(head, 0, l.head_bytes, h));
    } else {
      KVQ_RETURN_IF_ERROR(CheckHalfRange(head, l.k_scale, l.v_codes, h));
      KVQ_RETURN_IF_ERROR(CheckHalfRange(head, l.v_scale, l.head_bytes, h));
    }
  }
  return absl::OkStatus();
}

// Attention of one task; arguments already checked.
void AttendOne(const AttentionParams& p, const AttentionTask& task) {
  const SequenceCache& cache = *task.cache;
  const int D = p.head_dim, B = p.block_tokens, n = cache.n_tokens;
  const int group = p.n_heads / p.n_kv_heads;
  const BlockEncoding fp16 = BlockEncoding::Fp16(B);
  const float inv_sqrt_d = 1.0f / std::sqrt(static_cast<float>(D));
  std::vector<float> keys(static_cast<size_t>(n) * D), vals(keys.size()), scores(n);
  for (int kvh = 0; kvh < p.n_kv_heads; ++kvh) {
    // Gather this KV head's n tokens, oldest first.
    size_t t0 = 0;
    const size_t qbytes = GetHeadLayout(p.quantized_encoding, D).head_bytes;
    for (const uint8_t* part : cache.quantized) {
      DequantizeHead(p.quantized_encoding, D, part + kvh * qbytes, B, &keys[t0 * D],
                     &vals[t0 * D]);
      t0 += B;
    }
    const size_t fbytes = GetHeadLayout(fp16, D).head_bytes;
    for (const uint8_t* part : cache.fp16) {
      const int rows = std::min<int>(B, n - static_cast<int>(t0));
      DequantizeHead(fp16, D, part + kvh * fbytes, rows, &keys[t0 * D], &vals[t0 * D]);
      t0 += rows;
    }
    for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
      const float* q = task.q + static_cast<size_t>(h) * D;
      float max_score = -INFINITY;
      for (int t = 0; t < n; ++t) {
        float dot = 0.0f;
        const float* key = &keys[static_cast<size_t>(t) * D];
        for (int c = 0; c < D; ++c) dot += q[c] * key[c];
        scores[t] = dot * inv_sqrt_d;
        max_score = std::max(max_score, scores[t]);
      }
      float sum = 0.0f;
      for (int t = 0; t < n; ++t) {
        scores[t] = std::exp(scores[t] - max_score);
        sum += scores[t];
      }
      float* out = task.out + static_cast<size_t>(h) * D;
      std::fill(out, out + D, 0.0f);
      for (int t = 0; t < n; ++t) {
        const float* val = &vals[static_cast<size_t>(t) * D];
        for (int c = 0; c < D; ++c) out[c] += scores[t] * val[c];
      }
      for (int c = 0; c < D; ++c) out[c] /= sum;
    }
  }
}

}  // namespace

float RoundHalfEven(float v) {
  const float f = std::floor(v);
  const float frac = v - f;  // Exact.
  if (frac > 0.5f) return f + 1.0f;
  if (frac < 0.5f) return f;
  return std::fmod(f, 2.0f) == 0.0f ? f : f + 1.0f;
}

GroupParams ComputeGroupParams(const uint16_t* x, int n, int stride, int bits) {
  float mn = HalfToFloat(x[0]), mx = mn;
  for (int i = 1; i < n; ++i) {
    const float xi = HalfToFloat(x[static_cast<size_t>(i) * stride]);
    mn = std::min(mn, xi);
    mx = std::max(mx, xi);
  }
  // -0 -> +0, so that neither the order of the reductions nor the sign of a
  // zero input changes the bytes (x + 0.0f is the identity otherwise).
  mn += 0.0f;
  mx += 0.0f;
  const float levels = static_cast<float>((1 << bits) - 1);
  const float range = mx - mn;
  return GroupParams{FloatToHalf(range / levels), FloatToHalf(mn)};
}

uint8_t QuantizeValue(uint16_t x, GroupParams params, int bits) {
  const float scale = HalfToFloat(params.scale);
  if (scale == 0.0f) return 0;
  const float q = RoundHalfEven((HalfToFloat(x) - HalfToFloat(params.zero)) / scale);
  const float max_code = static_cast<float>((1 << bits) - 1);
  return static_cast<uint8_t>(std::min(std::max(q, 0.0f), max_code));
}

float DequantizeValue(int code, GroupParams params) {
  const float scaled = static_cast<float>(code) * HalfToFloat(params.scale);
  return scaled + HalfToFloat(params.zero);
}

absl::Status QuantizeLayerFp16(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                               const uint16_t* k, const uint16_t* v, uint8_t* out) {
  KVQ_RETURN_IF_ERROR(CheckQuantizeArgs(enc, n_kv_heads, head_dim, k, v, out));
  const size_t n = LayerValues(enc, n_kv_heads, head_dim);
  KVQ_RETURN_IF_ERROR(CheckHalvesFinite(k, n, "quantize_layer: k"));
  KVQ_RETURN_IF_ERROR(CheckHalvesFinite(v, n, "quantize_layer: v"));
  WriteLayer(enc, n_kv_heads, head_dim, k, v, out);
  return absl::OkStatus();
}

absl::Status QuantizeLayer(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                           const float* k, const float* v, uint8_t* out) {
  KVQ_RETURN_IF_ERROR(CheckQuantizeArgs(enc, n_kv_heads, head_dim, k, v, out));
  const size_t n = LayerValues(enc, n_kv_heads, head_dim);
  KVQ_RETURN_IF_ERROR(CheckFloatsFitHalf(k, n, "quantize_layer: k"));
  KVQ_RETURN_IF_ERROR(CheckFloatsFitHalf(v, n, "quantize_layer: v"));
  const std::vector<uint16_t> kh = ToHalves(k, n), vh = ToHalves(v, n);
  WriteLayer(enc, n_kv_heads, head_dim, kh.data(), vh.data(), out);
  return absl::OkStatus();
}

absl::Status DequantizeLayer(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                             const uint8_t* part, float* k, float* v) {
  KVQ_RETURN_IF_ERROR(Validate(enc, CacheShape{0, n_kv_heads, head_dim}));
  if (part == nullptr || k == nullptr || v == nullptr) {
    return absl::InvalidArgumentError("dequantize_layer: null part, k or v");
  }
  KVQ_RETURN_IF_ERROR(CheckPartFinite(enc, n_kv_heads, head_dim, part));
  const size_t head_values = static_cast<size_t>(enc.block_tokens) * head_dim;
  const size_t head_bytes = GetHeadLayout(enc, head_dim).head_bytes;
  for (int h = 0; h < n_kv_heads; ++h) {
    DequantizeHead(enc, head_dim, part + h * head_bytes, enc.block_tokens,
                   k + h * head_values, v + h * head_values);
  }
  return absl::OkStatus();
}

absl::Status DecodeAttention(const AttentionParams& params,
                             absl::Span<const AttentionTask> batch) {
  KVQ_RETURN_IF_ERROR(CheckAttentionArgs(params, batch));
  for (const AttentionTask& task : batch) AttendOne(params, task);
  return absl::OkStatus();
}

absl::Status DecodeAttentionFp16(const AttentionParams& params,
                                 absl::Span<const AttentionTask> batch) {
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].cache != nullptr && !batch[i].cache->quantized.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("decode_attention_fp16: batch[", i, "] has quantized blocks"));
    }
  }
  return DecodeAttention(params, batch);
}

absl::Status WriteFp16Tokens(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                             int first_token, int n_tokens, const float* k,
                             const float* v, uint8_t* part) {
  KVQ_RETURN_IF_ERROR(CheckQuantizeArgs(enc, n_kv_heads, head_dim, k, v, part));
  if (!enc.is_fp16()) {
    return absl::InvalidArgumentError("write_fp16_tokens: encoding is not fp16");
  }
  if (first_token < 0 || n_tokens < 1 || first_token + n_tokens > enc.block_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "write_fp16_tokens: tokens [", first_token, ", ", first_token + n_tokens,
        ") are not inside [0, ", enc.block_tokens, ")"));
  }
  const size_t n = static_cast<size_t>(n_kv_heads) * n_tokens * head_dim;
  KVQ_RETURN_IF_ERROR(CheckFloatsFitHalf(k, n, "write_fp16_tokens: k"));
  KVQ_RETURN_IF_ERROR(CheckFloatsFitHalf(v, n, "write_fp16_tokens: v"));
  const HeadLayout l = GetHeadLayout(enc, head_dim);
  const size_t row_values = static_cast<size_t>(n_tokens) * head_dim;
  for (int h = 0; h < n_kv_heads; ++h) {
    uint8_t* head = part + h * l.head_bytes;
    const size_t first = static_cast<size_t>(first_token) * head_dim;
    for (size_t i = 0; i < row_values; ++i) {
      StoreHalf(head + l.k + 2 * (first + i), FloatToHalf(k[h * row_values + i]));
      StoreHalf(head + l.v + 2 * (first + i), FloatToHalf(v[h * row_values + i]));
    }
  }
  return absl::OkStatus();
}

const KernelSet& Kernels() {
  static const KernelSet* const kSet =
      new KernelSet{"reference", &QuantizeLayer, &QuantizeLayerFp16, &DecodeAttention};
  return *kSet;
}

}  // namespace kvq::kernels::reference
