#include "kernels/cpu/cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/status_macros.h"
#include "kernels/block_format.h"
#include "kernels/checks.h"
#include "kernels/cpu/internal/simd_kernels.h"
#include "kernels/cpu/internal/worker_pool.h"
#include "kernels/reference.h"

namespace kvq::kernels::cpu {
namespace {

using cpu_internal::IsaKernels;
using cpu_internal::RangeArgs;

// Contexts are cut into chunks of this many blocks (the last chunk takes the
// remainder), whatever the batch and the threads, so that a sequence's
// result does not depend on what else is computed with it (batch
// invariance); threads share out the chunks.
constexpr int kChunkBlocks = 64;
constexpr int kItemsPerThread = 4;

// fp16 input [n_kv_heads][B][D], already checked finite, into a layer part.
void WriteLayer(const IsaKernels& isa, const BlockEncoding& enc, int n_kv_heads,
                int head_dim, const uint16_t* k, const uint16_t* v, uint8_t* out) {
  const size_t head_values = static_cast<size_t>(enc.block_tokens) * head_dim;
  const size_t head_bytes = GetHeadLayout(enc, head_dim).head_bytes;
  for (int h = 0; h < n_kv_heads; ++h) {
    const uint16_t* kh = k + h * head_values;
    const uint16_t* vh = v + h * head_values;
    uint8_t* head = out + h * head_bytes;
    if (enc.is_fp16()) {
      isa.copy_head_fp16(enc.block_tokens, head_dim, kh, vh, head);
    } else {
      isa.quantize_head(enc.block_tokens, enc.bits, enc.group, head_dim, kh, vh, head);
    }
  }
}

absl::Status QuantizeLayerFp16(const IsaKernels& isa, const BlockEncoding& enc,
                               int n_kv_heads, int head_dim, const uint16_t* k,
                               const uint16_t* v, uint8_t* out) {
  KVQ_RETURN_IF_ERROR(CheckQuantizeArgs(enc, n_kv_heads, head_dim, k, v, out));
  if (!enc.is_fp16() &&
      (!enc.is_kivi() || !cpu_internal::QuantizeSupported(head_dim, enc.group))) {
    return reference::QuantizeLayerFp16(enc, n_kv_heads, head_dim, k, v, out);
  }
  const size_t n = LayerValues(enc, n_kv_heads, head_dim);
  KVQ_RETURN_IF_ERROR(CheckHalvesFinite(k, n, "quantize_layer: k"));
  KVQ_RETURN_IF_ERROR(CheckHalvesFinite(v, n, "quantize_layer: v"));
  WriteLayer(isa, enc, n_kv_heads, head_dim, k, v, out);
  return absl::OkStatus();
}

absl::Status QuantizeLayer(const IsaKernels& isa, const BlockEncoding& enc,
                           int n_kv_heads, int head_dim, const float* k, const float* v,
                           uint8_t* out) {
  KVQ_RETURN_IF_ERROR(CheckQuantizeArgs(enc, n_kv_heads, head_dim, k, v, out));
  if (!enc.is_fp16() &&
      (!enc.is_kivi() || !cpu_internal::QuantizeSupported(head_dim, enc.group))) {
    return reference::QuantizeLayer(enc, n_kv_heads, head_dim, k, v, out);
  }
  const size_t n = LayerValues(enc, n_kv_heads, head_dim);
  thread_local std::vector<uint16_t> kh, vh;
  kh.resize(n);
  vh.resize(n);
  // The SIMD conversion flags any non-finite result; the shared check then
  // names the offending value exactly as the reference does.
  if (!isa.floats_to_halves(k, n, kh.data())) {
    KVQ_RETURN_IF_ERROR(CheckFloatsFitHalf(k, n, "quantize_layer: k"));
    return absl::InternalError(
        "quantize_layer: fp16 conversion disagrees with the check");
  }
  if (!isa.floats_to_halves(v, n, vh.data())) {
    KVQ_RETURN_IF_ERROR(CheckFloatsFitHalf(v, n, "quantize_layer: v"));
    return absl::InternalError(
        "quantize_layer: fp16 conversion disagrees with the check");
  }
  WriteLayer(isa, enc, n_kv_heads, head_dim, kh.data(), vh.data(), out);
  return absl::OkStatus();
}

// One unit of attention work: KV heads [head_begin, head_end) of one
// sequence over blocks [begin, end) of its block list (quantized, then fp16).
struct Item {
  int task;
  int head_begin, head_end;
  int begin, end;
  size_t state;  // offset of its partial states in the call's state buffer
};

// How one sequence is cut into items: `chunks` context ranges (a function of
// its length only: kChunkBlocks) times `head_groups` KV head ranges (when the
// batch's chunks are too few to keep the threads busy; heads are computed
// independently, so this changes no result). Each chunk leaves a partial
// state; the chunks are merged in order (flash-decoding).
struct Split {
  int chunks = 1, head_groups = 1;
};

Split SplitFor(int batch, int n_threads, int n_blocks, int n_kv_heads) {
  Split s;
  s.chunks = std::max(1, n_blocks / kChunkBlocks);
  const int items = batch * s.chunks;
  if (n_threads > 1 && items < kItemsPerThread * n_threads) {
    s.head_groups =
        std::min(n_kv_heads, (kItemsPerThread * n_threads + items - 1) / items);
  }
  return s;
}

void RunItem(const IsaKernels& isa, const AttentionParams& p, const AttentionTask& task,
             const Item& item, float* state, std::vector<float>& scratch,
             std::vector<const uint8_t*>& pointers) {
  const SequenceCache& cache = *task.cache;
  const int D = p.head_dim, B = p.block_tokens;
  const int R = p.n_heads / p.n_kv_heads;
  const int nq = static_cast<int>(cache.quantized.size());
  const int nf = static_cast<int>(cache.fp16.size());
  const size_t q_bytes = nq > 0 ? GetHeadLayout(p.quantized_encoding, D).head_bytes : 0;
  const size_t f_bytes = GetHeadLayout(BlockEncoding::Fp16(B), D).head_bytes;
  RangeArgs a;
  a.head_dim = D;
  a.block_tokens = B;
  a.bits = p.quantized_encoding.bits;
  a.v_bits = p.quantized_encoding.v_bits;
  a.group = p.quantized_encoding.group;
  if (nq > 0) {
    const HeadLayout ql = GetHeadLayout(p.quantized_encoding, D);
    a.quantized_head_bytes = ql.head_bytes;
    a.k_scale = ql.k_scale;
    a.k_zero = ql.k_zero;
    a.v_codes = ql.v_codes;
    a.v_scale = ql.v_scale;
    a.v_zero = ql.v_zero;
    a.u8_scales = p.quantized_encoding.u8_scales();
    a.k_range = ql.k_range;
    a.v_range = ql.v_range;
    a.k_outliers = p.quantized_encoding.k_outliers;
    a.v_outliers = p.quantized_encoding.v_outliers;
    a.index_bytes = ql.index_bytes;
    a.k_out = ql.k_out;
    a.v_out = ql.v_out;
    a.k_out_at = ql.k_out_at;
    a.v_out_at = ql.v_out_at;
  }
  a.n_rep = R;
  a.n_kv = item.head_end - item.head_begin;
  a.score_scale = 1.0f / std::sqrt(static_cast<float>(D));
  a.q = task.q + static_cast<size_t>(item.head_begin) * R * D;
  const int q_begin = std::min(item.begin, nq), q_end = std::min(item.end, nq);
  const int f_begin = std::max(item.begin, nq) - nq, f_end = std::max(item.end, nq) - nq;
  pointers.clear();
  for (int b = q_begin; b < q_end; ++b) {
    pointers.push_back(cache.quantized[b] + item.head_begin * q_bytes);
  }
  for (int b = f_begin; b < f_end; ++b) {
    pointers.push_back(cache.fp16[b] + item.head_begin * f_bytes);
  }
  a.quantized = pointers.data();
  a.n_quantized = q_end - q_begin;
  a.fp16 = pointers.data() + a.n_quantized;
  a.n_fp16 = f_end - f_begin;
  a.last_rows = (f_end == nf && nf > 0) ? cache.n_tokens - (nq + nf - 1) * B : B;
  const int groups = a.n_quantized > 0 ? D / a.group : 1;
  const size_t need = isa.scratch_floats != nullptr
                          ? isa.scratch_floats(D, B, R, a.n_kv, groups)
                          : cpu_internal::GetScratchLayout(D, B, R, a.n_kv, groups).total;
  if (scratch.size() < need) scratch.resize(need);
  isa.attend_range(a, state, scratch.data());
}

// out = the softmax-weighted value sum from the partial states of a head's
// chunks (each [2 + D]: max, sum of exponentials, unnormalized sums).
void MergeStates(const float* const* states, int n, int D, float* out) {
  float m = -INFINITY;
  for (int i = 0; i < n; ++i) m = std::max(m, states[i][0]);
  float l = 0.0f;
  std::fill(out, out + D, 0.0f);
  for (int i = 0; i < n; ++i) {
    const float w = std::exp(states[i][0] - m);
    l += states[i][1] * w;
    const float* acc = states[i] + cpu_internal::kStateHeader;
    for (int d = 0; d < D; ++d) out[d] += acc[d] * w;
  }
  const float inv = 1.0f / l;
  for (int d = 0; d < D; ++d) out[d] *= inv;
}

absl::Status DecodeAttention(const IsaKernels& isa, const AttentionParams& p,
                             absl::Span<const AttentionTask> batch) {
  KVQ_RETURN_IF_ERROR(CheckAttentionArgs(p, batch));
  // Each sequence goes to the same implementation whatever else is in the
  // batch: these kernels where its blocks' shapes allow, else the reference.
  // Every format 2 encoding (outliers, key/value bits apart, u8 scales) is
  // the fp32 SIMD variants' too (isa.format2; kernels/cpu/README.md,
  // "Format 2").
  const auto supported = [&p, &isa](const AttentionTask& t) {
    if (!t.cache->quantized.empty() && !p.quantized_encoding.is_kivi() && !isa.format2) {
      return false;
    }
    if (isa.all_shapes) return true;
    const int group = t.cache->quantized.empty() ? 0 : p.quantized_encoding.group;
    return cpu_internal::AttentionSupported(p.head_dim, p.block_tokens, group);
  };
  if (!std::all_of(batch.begin(), batch.end(), supported)) {
    std::vector<AttentionTask> fast, slow;
    for (const AttentionTask& t : batch) (supported(t) ? fast : slow).push_back(t);
    KVQ_RETURN_IF_ERROR(reference::DecodeAttention(p, slow));
    if (fast.empty()) return absl::OkStatus();
    return DecodeAttention(isa, p, fast);
  }
  const int D = p.head_dim, R = p.n_heads / p.n_kv_heads, H = p.n_kv_heads;
  const int n_tasks = static_cast<int>(batch.size());
  const size_t head_state = static_cast<size_t>(R) * cpu_internal::StateFloats(D);
  std::vector<Item> items;
  std::vector<int> first_item(n_tasks + 1);
  size_t state_size = 0;
  for (int i = 0; i < n_tasks; ++i) {
    first_item[i] = static_cast<int>(items.size());
    const SequenceCache& c = *batch[i].cache;
    const int n_blocks = static_cast<int>(c.quantized.size() + c.fp16.size());
    const Split s = SplitFor(n_tasks, p.n_threads, n_blocks, H);
    for (int k = 0; k < s.chunks; ++k) {
      for (int g = 0; g < s.head_groups; ++g) {
        Item item{i,
                  H * g / s.head_groups,
                  H * (g + 1) / s.head_groups,
                  n_blocks * k / s.chunks,
                  n_blocks * (k + 1) / s.chunks,
                  state_size};
        state_size += (item.head_end - item.head_begin) * head_state;
        items.push_back(item);
      }
    }
  }
  first_item[n_tasks] = static_cast<int>(items.size());
  std::vector<float> states(state_size);
  const int n_items = static_cast<int>(items.size());
  const int n_threads = std::min(p.n_threads, n_items);
  const std::function<void(int)> run = [&](int i) {
    thread_local std::vector<float> scratch;
    thread_local std::vector<const uint8_t*> pointers;
    RunItem(isa, p, batch[items[i].task], items[i], &states[items[i].state], scratch,
            pointers);
  };
  if (p.parallel_for != nullptr && n_threads > 1) {
    p.parallel_for(n_items, n_threads, run);
  } else {
    cpu_internal::WorkerPool::Get().ParallelFor(n_items, n_threads, run);
  }
  std::vector<const float*> parts;
  for (int t = 0; t < n_tasks; ++t) {
    for (int h = 0; h < H; ++h) {
      for (int r = 0; r < R; ++r) {
        parts.clear();
        for (int i = first_item[t]; i < first_item[t + 1]; ++i) {
          const Item& item = items[i];
          if (h < item.head_begin || h >= item.head_end) continue;
          parts.push_back(&states[item.state + (h - item.head_begin) * head_state +
                                  r * cpu_internal::StateFloats(D)]);
        }
        MergeStates(parts.data(), static_cast<int>(parts.size()), D,
                    batch[t].out + (static_cast<size_t>(h) * R + r) * D);
      }
    }
  }
  return absl::OkStatus();
}

// The integer variants: sequences with quantized blocks go to the integer
// attention of `kIsa`; fp16-only sequences (nothing to take integer dot
// products of) to the fp32 variant `kFp`, which also quantizes. Each
// sequence's route depends on its own cache only (batch invariance).
template <const IsaKernels& (*kIsa)(), const KernelSet& (*kFp)()>
struct IntEntry {
  static absl::Status Quantize(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                               const float* k, const float* v, uint8_t* out) {
    return kFp().quantize_layer(enc, n_kv_heads, head_dim, k, v, out);
  }
  static absl::Status QuantizeFp16(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                                   const uint16_t* k, const uint16_t* v, uint8_t* out) {
    return kFp().quantize_layer_fp16(enc, n_kv_heads, head_dim, k, v, out);
  }
  static absl::Status Attention(const AttentionParams& params,
                                absl::Span<const AttentionTask> batch) {
    KVQ_RETURN_IF_ERROR(CheckAttentionArgs(params, batch));
    // Format 2 encodings (outliers, K/V bits apart, u8 scales) go to the fp32
    // variant, which attends over them itself (or the reference, for
    // int_portable).
    if (!params.quantized_encoding.is_fp16() && !params.quantized_encoding.is_kivi()) {
      return kFp().decode_attention(params, batch);
    }
    std::vector<AttentionTask> quantized, fp16;
    for (const AttentionTask& t : batch) {
      (t.cache->quantized.empty() ? fp16 : quantized).push_back(t);
    }
    if (!fp16.empty()) KVQ_RETURN_IF_ERROR(kFp().decode_attention(params, fp16));
    if (quantized.empty()) return absl::OkStatus();
    return DecodeAttention(kIsa(), params, quantized);
  }
  static const KernelSet* Make(const char* name) {
    KernelSet* set = new KernelSet{name, &Quantize, &QuantizeFp16, &Attention};
    set->integer_attention = true;
    set->fp32 = &kFp();
    return set;
  }
};

// The KernelSet entry points of one ISA.
template <const IsaKernels& (*kIsa)()>
struct Entry {
  static absl::Status Quantize(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                               const float* k, const float* v, uint8_t* out) {
    return QuantizeLayer(kIsa(), enc, n_kv_heads, head_dim, k, v, out);
  }
  static absl::Status QuantizeFp16(const BlockEncoding& enc, int n_kv_heads, int head_dim,
                                   const uint16_t* k, const uint16_t* v, uint8_t* out) {
    return QuantizeLayerFp16(kIsa(), enc, n_kv_heads, head_dim, k, v, out);
  }
  static absl::Status Attention(const AttentionParams& params,
                                absl::Span<const AttentionTask> batch) {
    return DecodeAttention(kIsa(), params, batch);
  }
};

}  // namespace

bool Avx2Supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}

const KernelSet& Avx2Kernels() {
  using E = Entry<&cpu_internal::avx2::Kernels>;
  static const KernelSet* const kSet =
      new KernelSet{"avx2", &E::Quantize, &E::QuantizeFp16, &E::Attention};
  return *kSet;
}

bool Avx512Supported() {
  __builtin_cpu_init();
  return Avx2Supported() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
}

const KernelSet& Avx512Kernels() {
  using E = Entry<&cpu_internal::avx512::Kernels>;
  static const KernelSet* const kSet =
      new KernelSet{"avx512", &E::Quantize, &E::QuantizeFp16, &E::Attention};
  return *kSet;
}

bool AvxVnniSupported() {
  __builtin_cpu_init();
  return Avx2Supported() && __builtin_cpu_supports("avxvnni");
}

const KernelSet& IntPortableKernels() {
  static const KernelSet* const kSet =
      IntEntry<&cpu_internal::int_portable::Kernels, &reference::Kernels>::Make(
          "int_portable");
  return *kSet;
}

const KernelSet& IntAvx2Kernels() {
  static const KernelSet* const kSet =
      IntEntry<&cpu_internal::int_avx2::Kernels, &Avx2Kernels>::Make("int_avx2");
  return *kSet;
}

const KernelSet& IntAvxVnniKernels() {
  static const KernelSet* const kSet =
      IntEntry<&cpu_internal::int_avxvnni::Kernels, &Avx2Kernels>::Make("int_avxvnni");
  return *kSet;
}

const KernelSet& IntAvx512VnniKernels() {
  static const KernelSet* const kSet =
      IntEntry<&cpu_internal::int_avx512vnni::Kernels, &Avx512Kernels>::Make(
          "int_avx512vnni");
  return *kSet;
}

}  // namespace kvq::kernels::cpu
