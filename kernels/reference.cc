#include "kernels/reference.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
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

float QuantizeFloat(float x, float scale, float zero, int bits) {
  if (scale == 0.0f) return 0;
  const float q = RoundHalfEven((x - zero) / scale);
  const float max_code = static_cast<float>((1 << bits) - 1);
  return std::min(std::max(q, 0.0f), max_code);
}

void StoreIndex(uint8_t* p, size_t bytes, uint32_t v) {
  for (size_t i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t LoadIndex(const uint8_t* p, size_t bytes) {
  uint32_t v = 0;
  for (size_t i = 0; i < bytes; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}

// The keys (per channel) or values (per token, groups of G) of one head
// section, as the format's groups: group g's member i sits at position
// Pos(g, i) = t*D + c of the [B][D] section, and its code at Code(pos).
struct Tensor {
  bool keys;
  int B, D, bits, G, n_groups, group_size, n_out;
  size_t codes, scale, zero, range, out, out_at;

  Tensor(const BlockEncoding& enc, const HeadLayout& l, int head_dim, bool is_keys)
      : keys(is_keys), B(enc.block_tokens), D(head_dim) {
    bits = keys ? enc.bits : enc.v_bits;
    G = keys ? 0 : enc.group;
    n_groups = keys ? D : B * (D / G);
    group_size = keys ? B : G;
    n_out = keys ? enc.k_outliers : enc.v_outliers;
    codes = keys ? l.k_codes : l.v_codes;
    scale = keys ? l.k_scale : l.v_scale;
    zero = keys ? l.k_zero : l.v_zero;
    range = keys ? l.k_range : l.v_range;
    out = keys ? l.k_out : l.v_out;
    out_at = keys ? l.k_out_at : l.v_out_at;
  }
  int Pos(int g, int i) const {
    if (keys) return i * D + g;
    const int per_token = D / G;
    return (g / per_token) * D + (g % per_token) * G + i;
  }
  int GroupOf(int pos) const {
    return keys ? pos % D : (pos / D) * (D / G) + (pos % D) / G;
  }
  // Linear code index: keys are stored channel-major, values token-major.
  size_t Code(int pos) const {
    return keys ? static_cast<size_t>(pos % D) * B + pos / D : static_cast<size_t>(pos);
  }
};

// Positions of the n entries of x farthest from their group's mean (fp32
// mean, summed in group order), ties to the lower position; ascending.
std::vector<int> PickOutliers(const Tensor& t, const uint16_t* x) {
  std::vector<int> picked;
  if (t.n_out == 0) return picked;
  std::vector<float> dist(static_cast<size_t>(t.B) * t.D);
  for (int g = 0; g < t.n_groups; ++g) {
    float sum = 0.0f;
    for (int i = 0; i < t.group_size; ++i) sum += HalfToFloat(x[t.Pos(g, i)]);
    const float mean = sum / static_cast<float>(t.group_size);
    for (int i = 0; i < t.group_size; ++i) {
      const int p = t.Pos(g, i);
      dist[p] = std::fabs(HalfToFloat(x[p]) - mean);
    }
  }
  std::vector<int> order(dist.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::partial_sort(
      order.begin(), order.begin() + t.n_out, order.end(),
      [&dist](int a, int b) { return dist[a] != dist[b] ? dist[a] > dist[b] : a < b; });
  picked.assign(order.begin(), order.begin() + t.n_out);
  std::sort(picked.begin(), picked.end());
  return picked;
}

// Writes the key outliers' (ascending positions) index bytes `at` by column
// where the format allows it and they fit (block_format.h), and their order
// of storage, column after column, into *stored; false (nothing written) if
// they are to be listed by position.
bool WriteKeyColumns(const Tensor& t, const std::vector<int>& outliers, uint8_t* at,
                     std::vector<int>* stored) {
  if (outliers.empty() || !KeyColumnsAllowed(t.B, t.D)) return false;
  std::vector<uint64_t> masks(t.D, 0);
  for (int p : outliers) masks[p % t.D] |= uint64_t{1} << (p / t.D);
  int n_cols = 0;
  for (uint64_t m : masks) n_cols += m != 0;
  if (n_cols > MaxKeyColumns(t.B, t.n_out)) return false;
  const int mask_bytes = t.B / 8;
  std::fill(at, at + 2 * static_cast<size_t>(t.n_out), 0);
  StoreIndex(at, 2, kKeyColumnsMarker);
  StoreIndex(at + 2, 2, static_cast<uint32_t>(n_cols));
  uint8_t* mask_at = at + 4;
  uint8_t* channel_at = at + 4 + static_cast<size_t>(n_cols) * mask_bytes;
  stored->clear();
  for (int c = 0; c < t.D; ++c) {
    if (masks[c] == 0) continue;
    for (int b = 0; b < mask_bytes; ++b)
      *mask_at++ = static_cast<uint8_t>(masks[c] >> (8 * b));
    *channel_at++ = static_cast<uint8_t>(c);
    for (uint64_t m = masks[c]; m != 0; m &= m - 1)
      stored->push_back(__builtin_ctzll(m) * t.D + c);
  }
  return true;
}

// The fp32 scale and zero of every group of a written head section.
void LoadParams(const Tensor& t, const uint8_t* head, bool u8, std::vector<float>* scale,
                std::vector<float>* zero) {
  scale->resize(t.n_groups);
  zero->resize(t.n_groups);
  if (!u8) {
    for (int g = 0; g < t.n_groups; ++g) {
      (*scale)[g] = HalfToFloat(LoadHalf(head + t.scale + 2 * static_cast<size_t>(g)));
      (*zero)[g] = HalfToFloat(LoadHalf(head + t.zero + 2 * static_cast<size_t>(g)));
    }
    return;
  }
  const float base = HalfToFloat(LoadHalf(head + t.range));
  const float zs = HalfToFloat(LoadHalf(head + t.range + 2));
  const float ss = HalfToFloat(LoadHalf(head + t.range + 4));
  for (int g = 0; g < t.n_groups; ++g) {
    (*zero)[g] = static_cast<float>(head[t.zero + g]) * zs + base;
    (*scale)[g] = static_cast<float>(head[t.scale + g]) * ss;
  }
}

// Quantizes the keys or the values x [B][D] (fp16) of one head section.
void QuantizeTensor(const BlockEncoding& enc, const Tensor& t, const uint16_t* x,
                    uint8_t* head) {
  const HeadLayout l = GetHeadLayout(enc, t.D);
  const std::vector<int> outliers = PickOutliers(t, x);
  std::vector<char> is_out(static_cast<size_t>(t.B) * t.D, 0);
  for (int p : outliers) is_out[p] = 1;
  // Min and max of each group and of the section, outliers left out.
  std::vector<float> mn(t.n_groups, 0.0f), mx(t.n_groups, 0.0f);
  std::vector<char> has(t.n_groups, 0);
  bool any_section = false;
  float lo = 0.0f, hi = 0.0f;
  for (int g = 0; g < t.n_groups; ++g) {
    bool any = false;
    for (int i = 0; i < t.group_size; ++i) {
      const int p = t.Pos(g, i);
      if (is_out[p]) continue;
      const float xi = HalfToFloat(x[p]);
      mn[g] = any ? std::min(mn[g], xi) : xi;
      mx[g] = any ? std::max(mx[g], xi) : xi;
      any = true;
    }
    // -0 -> +0, so that neither the order of the reductions nor the sign of
    // a zero input changes the bytes.
    mn[g] += 0.0f;
    mx[g] += 0.0f;
    has[g] = any;
    if (any) {
      lo = any_section ? std::min(lo, mn[g]) : mn[g];
      hi = any_section ? std::max(hi, mx[g]) : mx[g];
      any_section = true;
    }
  }
  const float levels = static_cast<float>((1 << t.bits) - 1);
  std::vector<float> scale(t.n_groups), zero(t.n_groups);
  if (!enc.u8_scales()) {
    for (int g = 0; g < t.n_groups; ++g) {
      const uint16_t sh = FloatToHalf((mx[g] - mn[g]) / levels), zh = FloatToHalf(mn[g]);
      StoreHalf(head + t.scale + 2 * static_cast<size_t>(g), sh);
      StoreHalf(head + t.zero + 2 * static_cast<size_t>(g), zh);
      scale[g] = HalfToFloat(sh);
      zero[g] = HalfToFloat(zh);
    }
  } else {
    const uint16_t base_h = FloatToHalf(lo);
    const uint16_t zs_h = FloatToHalf((hi - lo) / 255.0f);
    const uint16_t ss_h = FloatToHalf((hi - lo) / (levels * 255.0f));
    StoreHalf(head + t.range, base_h);
    StoreHalf(head + t.range + 2, zs_h);
    StoreHalf(head + t.range + 4, ss_h);
    const float base = HalfToFloat(base_h), zs = HalfToFloat(zs_h),
                ss = HalfToFloat(ss_h);
    for (int g = 0; g < t.n_groups; ++g) {
      float zc = 0.0f, sc = 0.0f;
      const bool empty = !has[g];
      if (!empty && zs != 0.0f) {
        zc = std::min(255.0f, std::max(0.0f, std::floor((mn[g] - base) / zs)));
      }
      zero[g] = zc * zs + base;
      if (!empty && ss != 0.0f) {
        sc = std::min(255.0f, std::max(0.0f, std::ceil((mx[g] - zero[g]) / levels / ss)));
      }
      scale[g] = sc * ss;
      head[t.zero + g] = static_cast<uint8_t>(zc);
      head[t.scale + g] = static_cast<uint8_t>(sc);
    }
  }
  // Codes (outliers get the clamped code of their group), then outliers.
  const int per_byte = 8 / t.bits;
  const size_t code_bytes = static_cast<size_t>(t.B) * t.D / per_byte;
  std::fill(head + t.codes, head + t.codes + code_bytes, 0);
  for (int g = 0; g < t.n_groups; ++g) {
    for (int i = 0; i < t.group_size; ++i) {
      const int p = t.Pos(g, i);
      const int q =
          static_cast<int>(QuantizeFloat(HalfToFloat(x[p]), scale[g], zero[g], t.bits));
      const size_t ci = t.Code(p);
      head[t.codes + ci / per_byte] |= q << (t.bits * (ci % per_byte));
    }
  }
  // Outliers: their corrections to their code's value (block_format.h), by
  // position or (keys, where they fit) by column.
  std::vector<int> stored = outliers;  // positions in storage order
  const bool by_column = t.keys && WriteKeyColumns(t, outliers, head + t.out_at, &stored);
  for (size_t j = 0; j < stored.size(); ++j) {
    const int p = stored[j], g = t.GroupOf(p);
    const float xp = HalfToFloat(x[p]);
    const float code = QuantizeFloat(xp, scale[g], zero[g], t.bits);
    const float delta = xp - (code * scale[g] + zero[g]);
    StoreHalf(head + t.out + 2 * j,
              FloatToHalf(std::min(std::max(delta, -65504.0f), 65504.0f)));
  }
  if (by_column) return;
  for (size_t j = 0; j < outliers.size(); ++j) {
    StoreIndex(head + t.out_at + l.index_bytes * j, l.index_bytes,
               static_cast<uint32_t>(outliers[j]));
  }
}

// Dequantizes the first n_rows tokens of keys or values: y [n_rows][D].
// Outlier positions outside the section (a corrupt part) are ignored.
void DequantizeTensor(const BlockEncoding& enc, const Tensor& t, const uint8_t* head,
                      int n_rows, float* y) {
  const HeadLayout l = GetHeadLayout(enc, t.D);
  std::vector<float> scale, zero;
  LoadParams(t, head, enc.u8_scales(), &scale, &zero);
  const int per_byte = 8 / t.bits, mask = (1 << t.bits) - 1;
  for (int p = 0; p < n_rows * t.D; ++p) {
    const size_t ci = t.Code(p);
    const int code = (head[t.codes + ci / per_byte] >> (t.bits * (ci % per_byte))) & mask;
    const int g = t.GroupOf(p);
    y[p] = static_cast<float>(code) * scale[g] + zero[g];
  }
  const auto add = [&](int j, uint32_t p) {
    if (p < static_cast<uint32_t>(n_rows) * t.D) {  // d + delta
      y[p] += HalfToFloat(LoadHalf(head + t.out + 2 * static_cast<size_t>(j)));
    }
  };
  KeyColumns cols;
  if (t.keys && ReadKeyColumns(head + l.k_out_at, t.B, t.D, t.n_out, &cols)) {
    ForEachKeyColumnOutlier(cols, t.D, t.n_out, [&](int j, int tok, int c) {
      add(j, static_cast<uint32_t>(tok * t.D + c));
    });
    return;
  }
  for (int j = 0; j < t.n_out; ++j) {
    add(j, LoadIndex(head + t.out_at + l.index_bytes * j, l.index_bytes));
  }
}

// One KV head of a quantized part. k, v: [B][head_dim] fp16.
void QuantizeHead(const BlockEncoding& enc, int head_dim, const uint16_t* k,
                  const uint16_t* v, uint8_t* head) {
  const HeadLayout l = GetHeadLayout(enc, head_dim);
  QuantizeTensor(enc, Tensor(enc, l, head_dim, true), k, head);
  QuantizeTensor(enc, Tensor(enc, l, head_dim, false), v, head);
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
  const int D = head_dim;
  if (enc.is_fp16()) {
    for (size_t i = 0; i < static_cast<size_t>(n_rows) * D; ++i) {
      k[i] = HalfToFloat(LoadHalf(head + l.k + 2 * i));
      v[i] = HalfToFloat(LoadHalf(head + l.v + 2 * i));
    }
    return;
  }
  DequantizeTensor(enc, Tensor(enc, l, D, true), head, n_rows, k);
  DequantizeTensor(enc, Tensor(enc, l, D, false), head, n_rows, v);
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

// INVALID_ARGUMENT unless the key outliers by column of KV head h's section
// are as the format writes them (block_format.h): a count that fits,
// channels ascending below head_dim, nonempty masks, nk bits in all, zero
// padding.
absl::Status CheckKeyColumns(const BlockEncoding& enc, int head_dim, const HeadLayout& l,
                             const uint8_t* head, const KeyColumns& cols, int h) {
  const auto bad = [h](const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat("dequantize_layer: KV head ", h, " key outlier columns: ", what));
  };
  const uint8_t* at = head + l.k_out_at;
  const int stored = at[2] | at[3] << 8;
  if (cols.n_cols == 0) {
    return bad(absl::StrCat(stored, " columns (1 to ",
                            MaxKeyColumns(enc.block_tokens, enc.k_outliers), " fit)"));
  }
  int bits = 0;
  for (int i = 0; i < cols.n_cols; ++i) {
    const int c = cols.channels[i];
    if (c >= head_dim || (i > 0 && c <= cols.channels[i - 1])) {
      return bad(absl::StrCat("column ", i, " has channel ", c,
                              " (channels ascend below ", head_dim, ")"));
    }
    const uint64_t m = cols.Mask(i);
    if (m == 0) return bad(absl::StrCat("column ", i, " has no token"));
    bits += __builtin_popcountll(m);
  }
  if (bits != enc.k_outliers) {
    return bad(absl::StrCat(bits, " outliers marked, ", enc.k_outliers, " stored"));
  }
  const uint8_t* end = at + 2 * static_cast<size_t>(enc.k_outliers);
  for (const uint8_t* p = cols.channels + cols.n_cols; p < end; ++p) {
    if (*p != 0) return bad(absl::StrCat("nonzero padding at byte ", p - head));
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
      if (!enc.u8_scales()) {
        KVQ_RETURN_IF_ERROR(CheckHalfRange(head, l.k_scale, l.v_codes, h));
        KVQ_RETURN_IF_ERROR(CheckHalfRange(head, l.v_scale, l.k_range, h));
      }
      // Ranges and outlier values; outlier positions inside the section,
      // key columns exactly as the format says.
      KVQ_RETURN_IF_ERROR(CheckHalfRange(head, l.k_range, l.k_out_at, h));
      KeyColumns cols;
      const bool by_column = ReadKeyColumns(head + l.k_out_at, enc.block_tokens, head_dim,
                                            enc.k_outliers, &cols);
      if (by_column)
        KVQ_RETURN_IF_ERROR(CheckKeyColumns(enc, head_dim, l, head, cols, h));
      const uint32_t section = static_cast<uint32_t>(enc.block_tokens) * head_dim;
      for (size_t at = by_column ? l.v_out_at : l.k_out_at; at < l.head_bytes;
           at += l.index_bytes) {
        if (LoadIndex(head + at, l.index_bytes) >= section) {
          return absl::InvalidArgumentError(
              absl::StrCat("dequantize_layer: KV head ", h, " byte ", at,
                           " holds an outlier position outside the block"));
        }
      }
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
  if (enc.edge_layers != 0) {
    return absl::InvalidArgumentError(
        "dequantize_layer: a block encoding with edge layers; pass enc.ForLayer()");
  }
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
