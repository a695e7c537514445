#include "kernels/bench/kernels_bench.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "kernels/block_format.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"

namespace kvq::kernels::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// A 64-byte aligned, page-touched byte buffer.
struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<uint8_t[], FreeDeleter>;

absl::StatusOr<Buffer> Allocate(size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (p == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", bytes, " bytes"));
  }
  return Buffer(static_cast<uint8_t*>(p));
}

// Sums the buffer as 64-bit words so the loads cannot be elided.
__attribute__((target("avx2"))) uint64_t ReadAvx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(
        a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(
        a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(
        a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(
      reinterpret_cast<__m256i*>(lanes),
      _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  uint64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) sum += p[i];
  return sum;
}

__attribute__((target("avx2,fma"))) float FmaLoop(long n) {
  __m256 a[10];
  for (int i = 0; i < 10; ++i) a[i] = _mm256_set1_ps(1.0f + i * 1e-7f);
  const __m256 m = _mm256_set1_ps(0.9999999f), b = _mm256_set1_ps(1e-7f);
  for (long i = 0; i < n; ++i) {
#pragma GCC unroll 10
    for (int j = 0; j < 10; ++j) a[j] = _mm256_fmadd_ps(a[j], m, b);
  }
  float sum = 0.0f;
  for (int i = 0; i < 10; ++i) sum += _mm256_cvtss_f32(a[i]);
  return sum;
}

uint64_t ReadScalar(const uint8_t* p, size_t n) {
  uint64_t sum = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    sum += w;
  }
  for (; i < n; ++i) sum += p[i];
  return sum;
}

// Layer parts of `n_pool` distinct blocks in encoding `enc`, quantized from
// model-like data (keys with outlier channels, as tests/kernels/test_util).
absl::StatusOr<std::vector<std::vector<uint8_t>>> MakeBlockPool(const KernelSet& ks,
                                                                const BlockEncoding& enc,
                                                                int n_kv_heads,
                                                                int head_dim, int n_pool,
                                                                std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const size_t n = static_cast<size_t>(n_kv_heads) * enc.block_tokens * head_dim;
  std::vector<float> k(n), v(n);
  std::vector<std::vector<uint8_t>> pool;
  for (int i = 0; i < n_pool; ++i) {
    for (size_t j = 0; j < n; ++j) {
      const int c = static_cast<int>(j % head_dim);
      k[j] = normal(rng);
      if (c % 16 == 0 || c == 1) k[j] = 12.0f * k[j] + 3.0f;
      v[j] = normal(rng);
    }
    std::vector<uint8_t> part(LayerBytes(enc, n_kv_heads, head_dim));
    KVQ_RETURN_IF_ERROR(
        ks.quantize_layer(enc, n_kv_heads, head_dim, k.data(), v.data(), part.data()));
    pool.push_back(std::move(part));
  }
  return pool;
}

// Several sequences' caches for one layer, laid out block after block in one
// buffer, at least `working_set` bytes in all.
struct Workload {
  Buffer bytes;
  size_t seq_bytes = 0;
  std::vector<SequenceCache> caches;
  std::vector<float> q, out;  // [sequences][n_heads][head_dim]
};

// The 2%-outlier variant of the benchmarked KIVI encoding (format 2): the
// same codes and fp16 scales plus round(0.02 * B * head_dim) exact keys and
// values per head section.
BlockEncoding OutlierEncoding(const KernelsBenchOptions& o) {
  const int n = static_cast<int>(std::lround(0.02 * o.block_tokens * o.head_dim));
  return BlockEncoding::Mixed(o.bits, o.bits, o.block_tokens, o.group, n, n,
                              ScaleFormat::kFp16);
}

// `qenc`: the quantized blocks' encoding; nullptr: fp16 blocks only.
absl::StatusOr<Workload> BuildWorkload(const KernelsBenchOptions& o, const KernelSet& ks,
                                       int ctx, const BlockEncoding* quantized_enc,
                                       std::mt19937& rng) {
  const int B = o.block_tokens;
  const bool quantized = quantized_enc != nullptr;
  const BlockEncoding qenc =
      quantized ? *quantized_enc : BlockEncoding::Quantized(o.bits, B, o.group);
  const BlockEncoding fenc = BlockEncoding::Fp16(B);
  // Design 3.3: block b is quantized once the cache holds (b+1)*B + R tokens.
  const int nq = quantized ? std::max(0, (ctx - o.residual) / B) : 0;
  const int nf = (ctx - nq * B + B - 1) / B;
  const size_t q_part = LayerBytes(qenc, o.n_kv_heads, o.head_dim);
  const size_t f_part = LayerBytes(fenc, o.n_kv_heads, o.head_dim);
  Workload w;
  w.seq_bytes = nq * q_part + nf * f_part;
  const int n_seq = static_cast<int>(
      std::max<size_t>(1, (o.working_set_bytes + w.seq_bytes - 1) / w.seq_bytes));
  KVQ_ASSIGN_OR_RETURN(w.bytes, Allocate(w.seq_bytes * n_seq));
  constexpr int kPool = 16;
  std::vector<std::vector<uint8_t>> q_pool, f_pool;
  if (nq > 0) {
    KVQ_ASSIGN_OR_RETURN(q_pool,
                         MakeBlockPool(ks, qenc, o.n_kv_heads, o.head_dim, kPool, rng));
  }
  KVQ_ASSIGN_OR_RETURN(f_pool,
                       MakeBlockPool(ks, fenc, o.n_kv_heads, o.head_dim, kPool, rng));
  const int last_rows = ctx - nq * B - (nf - 1) * B;
  const size_t row_bytes = static_cast<size_t>(o.head_dim) * 2;
  w.caches.resize(n_seq);
  size_t at = 0;
  int next = 0;
  for (int s = 0; s < n_seq; ++s) {
    SequenceCache& c = w.caches[s];
    c.n_tokens = ctx;
    for (int b = 0; b < nq; ++b, at += q_part) {
      std::memcpy(w.bytes.get() + at, q_pool[next++ % kPool].data(), q_part);
      c.quantized.push_back(w.bytes.get() + at);
    }
    for (int b = 0; b < nf; ++b, at += f_part) {
      uint8_t* part = w.bytes.get() + at;
      std::memcpy(part, f_pool[next++ % kPool].data(), f_part);
      if (b == nf - 1 && last_rows < B) {  // Rows past the token count are zero.
        const HeadLayout l = GetHeadLayout(fenc, o.head_dim);
        for (int h = 0; h < o.n_kv_heads; ++h) {
          uint8_t* head = part + h * l.head_bytes;
          const size_t tail = (B - last_rows) * row_bytes;
          std::memset(head + l.k + last_rows * row_bytes, 0, tail);
          std::memset(head + l.v + last_rows * row_bytes, 0, tail);
        }
      }
      c.fp16.push_back(part);
    }
  }
  std::normal_distribution<float> normal(0.0f, 1.0f);
  w.q.resize(static_cast<size_t>(n_seq) * o.n_heads * o.head_dim);
  for (float& x : w.q) x = normal(rng);
  w.out.resize(w.q.size());
  return w;
}

// Seconds per call of decode attention over one pass: one sequence per
// call, the sequences visited in turn.
absl::StatusOr<double> AttentionPass(const KernelsBenchOptions& o, const KernelSet& ks,
                                     const BlockEncoding& qenc, Workload& w,
                                     int threads) {
  AttentionParams p;
  p.quantized_encoding = qenc;
  p.block_tokens = o.block_tokens;
  p.n_heads = o.n_heads;
  p.n_kv_heads = o.n_kv_heads;
  p.head_dim = o.head_dim;
  p.n_threads = threads;
  const size_t per_seq = static_cast<size_t>(o.n_heads) * o.head_dim;
  const int n_seq = static_cast<int>(w.caches.size());
  const Clock::time_point t0 = Clock::now();
  for (int s = 0; s < n_seq; ++s) {
    const AttentionTask task{&w.q[s * per_seq], &w.caches[s], &w.out[s * per_seq]};
    KVQ_RETURN_IF_ERROR(ks.decode_attention(p, absl::MakeConstSpan(&task, 1)));
  }
  return Seconds(t0, Clock::now()) / n_seq;
}

// A page-touched buffer that `threads` threads read through, each its own
// contiguous slice, released together.
class ReadLoop {
 public:
  static absl::StatusOr<ReadLoop> Make(size_t bytes) {
    KVQ_ASSIGN_OR_RETURN(Buffer buf, Allocate(bytes));
    std::memset(buf.get(), 1, bytes);
    return ReadLoop(std::move(buf), bytes);
  }
  // 1e9 bytes per second of one pass.
  absl::StatusOr<double> Pass(int threads) {
    const size_t slice = bytes_ / threads / 128 * 128;
    const bool avx2 = __builtin_cpu_supports("avx2");
    std::vector<uint64_t> sums(threads);
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        ready.fetch_add(1);
        while (!go.load()) std::this_thread::yield();
        const uint8_t* p = buf_.get() + t * slice;
        sums[t] = avx2 ? ReadAvx2(p, slice) : ReadScalar(p, slice);
      });
    }
    while (ready.load() < threads) std::this_thread::yield();
    const Clock::time_point t0 = Clock::now();
    go.store(true);
    for (std::thread& th : pool) th.join();
    const double secs = Seconds(t0, Clock::now());
    uint64_t total = 0;
    for (uint64_t s : sums) total += s;
    if (total == 0) return absl::InternalError("read bandwidth: buffer read as zeros");
    return static_cast<double>(slice) * threads / secs / 1e9;
  }

 private:
  ReadLoop(Buffer buf, size_t bytes) : buf_(std::move(buf)), bytes_(bytes) {}
  Buffer buf_;
  size_t bytes_;
};

absl::StatusOr<QuantizeRow> TimeQuantize(const KernelsBenchOptions& o,
                                         const KernelSet& ks, std::mt19937& rng) {
  const BlockEncoding enc = BlockEncoding::Quantized(o.bits, o.block_tokens, o.group);
  const size_t n = static_cast<size_t>(o.n_kv_heads) * o.block_tokens * o.head_dim;
  constexpr int kLayers = 64;  // distinct inputs cycled through
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> k(n * kLayers), v(n * kLayers);
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = normal(rng);
    v[i] = normal(rng);
  }
  std::vector<uint8_t> out(LayerBytes(enc, o.n_kv_heads, o.head_dim) * kLayers);
  const size_t part = out.size() / kLayers;
  auto time = [&](const KernelSet& set, int calls) -> absl::StatusOr<double> {
    std::vector<double> secs;
    for (int rep = 0; rep < std::max(3, o.reps); ++rep) {
      const Clock::time_point t0 = Clock::now();
      for (int i = 0; i < calls; ++i) {
        const int l = i % kLayers;
        KVQ_RETURN_IF_ERROR(set.quantize_layer(enc, o.n_kv_heads, o.head_dim, &k[l * n],
                                               &v[l * n], &out[l * part]));
      }
      secs.push_back(Seconds(t0, Clock::now()) / calls);
    }
    return Median(secs);
  };
  KVQ_ASSIGN_OR_RETURN(const double fast, time(ks, 4 * kLayers));
  KVQ_ASSIGN_OR_RETURN(const double slow, time(Reference(), kLayers / 4));
  QuantizeRow row;
  row.bits = o.bits;
  row.gbps = 2.0 * n * sizeof(float) / fast / 1e9;
  row.mvalues_per_s = 2.0 * n / fast / 1e6;
  row.speedup_vs_reference = slow / fast;
  return row;
}

}  // namespace

KernelsBenchOptions KernelsBenchOptions::Quick() {
  KernelsBenchOptions o;
  o.contexts = {1024, 4096};
  o.working_set_bytes = size_t{64} << 20;
  o.reps = 2;
  return o;
}

double MeasureFmaRate(int threads, int reps) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0.0;
  constexpr long kIters = 10'000'000;  // x 10 FMAs per thread
  std::vector<double> rates;
  for (int rep = -1; rep < reps; ++rep) {
    std::vector<double> secs(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&secs, t] {
        const Clock::time_point t0 = Clock::now();
        volatile float sink = FmaLoop(kIters);
        (void)sink;
        secs[t] = Seconds(t0, Clock::now());
      });
    }
    for (std::thread& th : pool) th.join();
    double rate = 0.0;
    for (double s : secs) rate += 10.0 * kIters / s;
    if (rep >= 0) rates.push_back(rate);
  }
  return Median(rates);
}

absl::StatusOr<double> MeasureReadBandwidth(int threads, size_t bytes, int reps) {
  if (threads < 1 || bytes < 4096 || reps < 1) {
    return absl::InvalidArgumentError("read bandwidth: need threads >= 1, bytes >= 4096");
  }
  KVQ_ASSIGN_OR_RETURN(ReadLoop loop, ReadLoop::Make(bytes));
  std::vector<double> gbps;
  for (int rep = -1; rep < reps; ++rep) {
    KVQ_ASSIGN_OR_RETURN(const double g, loop.Pass(threads));
    if (rep >= 0) gbps.push_back(g);
  }
  return Median(gbps);
}

absl::StatusOr<KernelsBenchResult> RunKernelsBench(
    const KernelsBenchOptions& o,
    const std::function<void(const std::string&)>& progress) {
  auto say = [&](const std::string& line) {
    if (progress) progress(line);
  };
  if (o.contexts.empty() || o.threads.empty() || o.reps < 1) {
    return absl::InvalidArgumentError("bench kernels: no contexts, threads or reps");
  }
  for (int ctx : o.contexts) {
    if (ctx < 1) return absl::InvalidArgumentError(absl::StrCat("bad context ", ctx));
  }
  for (int t : o.threads) {
    if (t < 1) return absl::InvalidArgumentError(absl::StrCat("bad thread count ", t));
  }
  const KernelSet& ks = o.kernels != nullptr ? *o.kernels : Best();
  KernelsBenchResult r;
  r.variant = ks.name;
  r.cpu = CpuModelName();
  r.options = o;
  std::mt19937 rng(42);
  for (int t : o.threads) {
    ComputeRow c;
    c.threads = t;
    c.fma_per_s = MeasureFmaRate(t, std::max(3, o.reps));
    const double macs = 2.0 * (o.n_heads / o.n_kv_heads) * o.block_tokens *
                        static_cast<double>(o.head_dim);
    auto ceiling = [&](const BlockEncoding& e) {
      return c.fma_per_s * 8.0 * GetHeadLayout(e, o.head_dim).head_bytes / macs / 1e9;
    };
    c.fp16_ceiling_gbps = ceiling(BlockEncoding::Fp16(o.block_tokens));
    c.quant_ceiling_gbps =
        ceiling(BlockEncoding::Quantized(o.bits, o.block_tokens, o.group));
    r.compute.push_back(c);
    say(absl::StrFormat("fp32 FMA rate, %d thread(s): %.2f G/s", t, c.fma_per_s / 1e9));
  }
  // Each measured round reads the bandwidth buffer, then runs one pass over
  // the fp16 caches and one over the quantized caches, so that every ratio
  // compares figures taken moments apart on a machine whose load may vary.
  KVQ_ASSIGN_OR_RETURN(ReadLoop loop, ReadLoop::Make(o.working_set_bytes));
  std::vector<std::vector<double>> all_bw(o.threads.size());
  const std::string qname = absl::StrCat("kivi", o.bits);
  const std::string oname = qname + "+outliers0.02";
  const BlockEncoding qenc = BlockEncoding::Quantized(o.bits, o.block_tokens, o.group);
  const BlockEncoding oenc = OutlierEncoding(o);
  for (int ctx : o.contexts) {
    KVQ_ASSIGN_OR_RETURN(Workload fp16, BuildWorkload(o, ks, ctx, nullptr, rng));
    KVQ_ASSIGN_OR_RETURN(Workload quant, BuildWorkload(o, ks, ctx, &qenc, rng));
    KVQ_ASSIGN_OR_RETURN(Workload outl, BuildWorkload(o, ks, ctx, &oenc, rng));
    for (size_t ti = 0; ti < o.threads.size(); ++ti) {
      const int t = o.threads[ti];
      std::vector<double> bw, f_secs, q_secs, o_secs;
      for (int rep = -1; rep < o.reps; ++rep) {  // round -1 warms up
        KVQ_ASSIGN_OR_RETURN(const double g, loop.Pass(t));
        KVQ_ASSIGN_OR_RETURN(const double f, AttentionPass(o, ks, qenc, fp16, t));
        KVQ_ASSIGN_OR_RETURN(const double q, AttentionPass(o, ks, qenc, quant, t));
        KVQ_ASSIGN_OR_RETURN(const double x, AttentionPass(o, ks, oenc, outl, t));
        if (rep < 0) continue;
        bw.push_back(g);
        f_secs.push_back(f);
        q_secs.push_back(q);
        o_secs.push_back(x);
      }
      const double bw_gbps = Median(bw);
      all_bw[ti].insert(all_bw[ti].end(), bw.begin(), bw.end());
      AttentionRow f_row, q_row, o_row;
      for (auto [row, w, secs, kv] :
           {std::tuple{&f_row, &fp16, Median(f_secs), std::string("fp16")},
            std::tuple{&q_row, &quant, Median(q_secs), qname},
            std::tuple{&o_row, &outl, Median(o_secs), oname}}) {
        row->ctx = ctx;
        row->threads = t;
        row->kv = kv;
        row->us_per_call = secs * 1e6;
        row->bytes_read = w->seq_bytes;
        row->gbps = w->seq_bytes / secs / 1e9;
        row->bw_gbps = bw_gbps;
        row->bw_fraction = row->gbps / bw_gbps;
        row->sequences = static_cast<int>(w->caches.size());
      }
      q_row.speedup_vs_fp16 = f_row.us_per_call / q_row.us_per_call;
      o_row.speedup_vs_fp16 = f_row.us_per_call / o_row.us_per_call;
      o_row.slowdown_vs_no_outliers = o_row.us_per_call / q_row.us_per_call;
      r.attention.push_back(f_row);
      r.attention.push_back(q_row);
      r.attention.push_back(o_row);
      say(absl::StrFormat(
          "ctx %d, %d thread(s): fp16 %.1f us, %s %.1f us, %s %.1f us (%.2fx) per call "
          "(%.1f GB/s read)",
          ctx, t, f_row.us_per_call, qname, q_row.us_per_call, oname, o_row.us_per_call,
          o_row.slowdown_vs_no_outliers, bw_gbps));
    }
  }
  for (size_t ti = 0; ti < o.threads.size(); ++ti) {
    r.bandwidth.push_back({o.threads[ti], o.working_set_bytes, Median(all_bw[ti])});
  }
  // Rows grouped by thread count, then context, fp16 before kivi.
  std::stable_sort(r.attention.begin(), r.attention.end(),
                   [](const AttentionRow& a, const AttentionRow& b) {
                     return a.threads != b.threads ? a.threads < b.threads
                                                   : a.ctx < b.ctx;
                   });
  KVQ_ASSIGN_OR_RETURN(QuantizeRow qrow, TimeQuantize(o, ks, rng));
  r.quantize.push_back(qrow);
  say(absl::StrFormat("quantize: %.2f GB/s", qrow.gbps));
  return r;
}

absl::StatusOr<KernelsBenchResult> MedianOfRounds(
    const std::vector<KernelsBenchResult>& runs) {
  if (runs.empty()) return absl::InvalidArgumentError("MedianOfRounds: no runs");
  const KernelsBenchResult& first = runs.front();
  for (const KernelsBenchResult& r : runs) {
    bool same = r.variant == first.variant &&
                r.attention.size() == first.attention.size() &&
                r.bandwidth.size() == first.bandwidth.size() &&
                r.compute.size() == first.compute.size() &&
                r.quantize.size() == first.quantize.size();
    for (size_t i = 0; same && i < r.attention.size(); ++i) {
      const AttentionRow &a = r.attention[i], &b = first.attention[i];
      same = a.ctx == b.ctx && a.threads == b.threads && a.kv == b.kv;
    }
    for (size_t i = 0; same && i < r.bandwidth.size(); ++i) {
      same = r.bandwidth[i].threads == first.bandwidth[i].threads;
    }
    for (size_t i = 0; same && i < r.compute.size(); ++i) {
      same = r.compute[i].threads == first.compute[i].threads;
    }
    if (!same) {
      return absl::InvalidArgumentError(
          "MedianOfRounds: the runs measured different variants or rows");
    }
  }
  // The median of one field over the runs, element `i` of vector `rows`.
  const auto median = [&runs](auto rows, size_t i, auto field) {
    std::vector<double> v;
    for (const KernelsBenchResult& r : runs) v.push_back((r.*rows)[i].*field);
    return Median(v);
  };
  KernelsBenchResult out = first;
  out.rounds = static_cast<int>(runs.size());
  for (size_t i = 0; i < out.bandwidth.size(); ++i) {
    out.bandwidth[i].gbps =
        median(&KernelsBenchResult::bandwidth, i, &BandwidthRow::gbps);
  }
  for (size_t i = 0; i < out.compute.size(); ++i) {
    ComputeRow& c = out.compute[i];
    c.fma_per_s = median(&KernelsBenchResult::compute, i, &ComputeRow::fma_per_s);
    c.fp16_ceiling_gbps =
        median(&KernelsBenchResult::compute, i, &ComputeRow::fp16_ceiling_gbps);
    c.quant_ceiling_gbps =
        median(&KernelsBenchResult::compute, i, &ComputeRow::quant_ceiling_gbps);
  }
  for (size_t i = 0; i < out.attention.size(); ++i) {
    AttentionRow& a = out.attention[i];
    for (const KernelsBenchResult& r : runs) {
      const AttentionRow& x = r.attention[i];
      a.us_per_call_runs.push_back(x.us_per_call);
      a.bw_fraction_runs.push_back(x.bw_fraction);
      a.speedup_vs_fp16_runs.push_back(x.speedup_vs_fp16);
      a.slowdown_vs_no_outliers_runs.push_back(x.slowdown_vs_no_outliers);
    }
    a.us_per_call = Median(a.us_per_call_runs);
    a.gbps = median(&KernelsBenchResult::attention, i, &AttentionRow::gbps);
    a.bw_gbps = median(&KernelsBenchResult::attention, i, &AttentionRow::bw_gbps);
    a.bw_fraction = Median(a.bw_fraction_runs);
    a.speedup_vs_fp16 = Median(a.speedup_vs_fp16_runs);
    a.slowdown_vs_no_outliers = Median(a.slowdown_vs_no_outliers_runs);
  }
  for (size_t i = 0; i < out.quantize.size(); ++i) {
    QuantizeRow& q = out.quantize[i];
    q.gbps = median(&KernelsBenchResult::quantize, i, &QuantizeRow::gbps);
    q.mvalues_per_s =
        median(&KernelsBenchResult::quantize, i, &QuantizeRow::mvalues_per_s);
    q.speedup_vs_reference =
        median(&KernelsBenchResult::quantize, i, &QuantizeRow::speedup_vs_reference);
  }
  return out;
}

}  // namespace kvq::kernels::bench
