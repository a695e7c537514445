#include "kernels/cpu/internal/simd_kernels.h"

namespace kvq::kernels::cpu_internal {
namespace {
size_t Round16(size_t n) { return (n + 15) / 16 * 16; }
}  // namespace

ScratchLayout GetScratchLayout(int head_dim, int block_tokens, int n_rep, int n_kv,
                               int groups) {
  const size_t D = head_dim, B = block_tokens, R = n_rep, G = groups < 1 ? 1 : groups;
  const size_t K = n_kv;
  ScratchLayout l{};
  size_t at = 0;
  l.keys = at, at += Round16(B * D);
  l.q_t = at, at += Round16(K * R * D);
  l.q = at, at += Round16(R * D);
  l.q_zero = at, at += Round16(R);
  l.scores = at, at += Round16(R * B);
  l.p = at, at += Round16(R * B * G);
  l.acc_q = at, at += Round16(K * R * D);
  l.z_sum = at, at += Round16(K * R * G);
  l.out_t = at, at += Round16(kOutlierTermArrays * B * R);
  l.p_t = at, at += Round16(B * R);
  l.acc_o = at, at += Round16(K * D * R);
  l.total = at;
  return l;
}

}  // namespace kvq::kernels::cpu_internal
