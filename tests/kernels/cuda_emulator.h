// A CPU emulator for the CUDA kernels' device code, so that their indexing,
// bit packing, rounding and softmax logic is tested against the reference on
// machines without a GPU (tests/kernels/cuda_emulation_test.cc). It is not a
// GPU: the CUDA threads of a CTA are fibers on one host thread, switching at
// barriers and shuffles, CTAs run one after another, and the intrinsics are replaced by
// their IEEE host equivalents
// (__fdiv_rn -> /, __float2int_rn -> nearbyint, ...). Races, shared-memory
// limits and timing are not modelled; the GPU test covers those.
//
// Include this before kernels/cuda/internal/*.cuh, then:
//   cuda_emu::Launch(grid, block, smem_bytes, [&] { SomeKernel<...>(params); });
#ifndef KVQ_TESTS_KERNELS_CUDA_EMULATOR_H_
#define KVQ_TESTS_KERNELS_CUDA_EMULATOR_H_

#include <cuda_fp16.h>  // host-side __half and its conversions
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

namespace cuda_emu {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

// The CUDA threads of one CTA are fibers (ucontext) on the calling thread,
// run round-robin; each runs until it waits at a barrier. Kernels must not
// return early from some threads of a CTA while others wait at a barrier
// (the kernels under test return uniformly).
struct Fiber {
  ucontext_t context;
  std::unique_ptr<char[]> stack;
  Dim3 thread_idx;
  bool done = false;
};

struct Cta {
  Dim3 block_idx, block_dim, grid_dim;
  std::vector<Fiber> fibers;
  ucontext_t scheduler;
  unsigned current = 0;
  const std::function<void()>* kernel = nullptr;
  // Barriers: arrivals and generation, for the CTA and for each warp.
  unsigned cta_arrived = 0, cta_generation = 0;
  std::vector<unsigned> warp_arrived, warp_generation;
  std::vector<float> shuffle;  // one slot per thread
  int vote = 0;
  std::vector<uint8_t> smem;  // dynamic shared memory
};

inline Cta*& CurrentCta() {
  static Cta* cta = nullptr;
  return cta;
}
inline Fiber& CurrentFiber() { return CurrentCta()->fibers[CurrentCta()->current]; }

inline void Yield() {
  Cta& c = *CurrentCta();
  swapcontext(&c.fibers[c.current].context, &c.scheduler);
}

inline void FiberMain() {
  Cta& c = *CurrentCta();
  (*c.kernel)();
  c.fibers[c.current].done = true;
  // Returning resumes uc_link, the scheduler.
}

// Runs `kernel` for every thread of every CTA of `grid` x `block` (block.y
// and block.z must be 1), with smem_bytes of dynamic shared memory per CTA.
inline void Launch(Dim3 grid, Dim3 block, size_t smem_bytes,
                   const std::function<void()>& kernel) {
  constexpr size_t kStack = 256 * 1024;
  const unsigned n = block.x;
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        Cta c;
        c.block_idx = {x, y, z};
        c.block_dim = block;
        c.grid_dim = grid;
        c.kernel = &kernel;
        c.fibers.resize(n);
        c.warp_arrived.assign((n + 31) / 32, 0);
        c.warp_generation.assign((n + 31) / 32, 0);
        c.shuffle.assign(n, 0.0f);
        c.smem.assign(smem_bytes + 16, 0xcd);  // garbage, as on a GPU
        CurrentCta() = &c;
        for (unsigned t = 0; t < n; ++t) {
          Fiber& f = c.fibers[t];
          f.thread_idx = {t, 0, 0};
          f.stack.reset(new char[kStack]);
          getcontext(&f.context);
          f.context.uc_stack.ss_sp = f.stack.get();
          f.context.uc_stack.ss_size = kStack;
          f.context.uc_link = &c.scheduler;
          makecontext(&f.context, &FiberMain, 0);
        }
        for (bool running = true; running;) {
          running = false;
          for (unsigned t = 0; t < n; ++t) {
            if (c.fibers[t].done) continue;
            c.current = t;
            swapcontext(&c.scheduler, &c.fibers[t].context);
            running |= !c.fibers[t].done;
          }
        }
        CurrentCta() = nullptr;
      }
    }
  }
}

inline uint8_t* DynamicSmem() {
  const uintptr_t p = reinterpret_cast<uintptr_t>(CurrentCta()->smem.data());
  return reinterpret_cast<uint8_t*>((p + 15) / 16 * 16);
}

// Like the GPU's barriers, these are compiler memory barriers too, so no
// load or store moves across them (even when no switch happens).
inline void CompilerBarrier() { asm volatile("" ::: "memory"); }

inline void SyncThreads() {
  CompilerBarrier();
  Cta& c = *CurrentCta();
  const unsigned generation = c.cta_generation;
  if (++c.cta_arrived == c.block_dim.x) {
    c.cta_arrived = 0;
    ++c.cta_generation;
  } else {
    while (c.cta_generation == generation) Yield();
  }
  CompilerBarrier();
}

inline void SyncWarp() {
  CompilerBarrier();
  Cta& c = *CurrentCta();
  const unsigned w = c.current / 32;
  const unsigned size = std::min(32u, c.block_dim.x - 32 * w);
  const unsigned generation = c.warp_generation[w];
  if (++c.warp_arrived[w] == size) {
    c.warp_arrived[w] = 0;
    ++c.warp_generation[w];
  } else {
    while (c.warp_generation[w] == generation) Yield();
  }
  CompilerBarrier();
}

inline int SyncThreadsOr(int predicate) {
  Cta& c = *CurrentCta();
  SyncThreads();
  if (c.current == 0) c.vote = 0;
  SyncThreads();
  if (predicate) c.vote = 1;
  SyncThreads();
  const int result = c.vote;
  SyncThreads();
  return result;
}

inline float ShflXor(float v, int offset) {
  Cta& c = *CurrentCta();
  const unsigned t = c.current;
  c.shuffle[t] = v;
  SyncWarp();
  const float r = c.shuffle[(t & ~31u) | ((t & 31u) ^ static_cast<unsigned>(offset))];
  SyncWarp();
  return r;
}

}  // namespace cuda_emu

// The CUDA keywords and built-ins the kernels use, for the host compiler.
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define KVQ_CUDA_DYNAMIC_SMEM(name) uint8_t* name = ::cuda_emu::DynamicSmem()
#define threadIdx (::cuda_emu::CurrentFiber().thread_idx)
#define blockIdx (::cuda_emu::CurrentCta()->block_idx)
#define blockDim (::cuda_emu::CurrentCta()->block_dim)
#define gridDim (::cuda_emu::CurrentCta()->grid_dim)

inline void __syncthreads() { cuda_emu::SyncThreads(); }
inline int __syncthreads_or(int p) { return cuda_emu::SyncThreadsOr(p); }
inline void __syncwarp(unsigned = 0xffffffffu) { cuda_emu::SyncWarp(); }
inline float __shfl_xor_sync(unsigned, float v, int offset) {
  return cuda_emu::ShflXor(v, offset);
}
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
inline int atomicExch(int* p, int v) {
  const int old = *p;  // fibers on one thread: no concurrency
  *p = v;
  return old;
}
inline int atomicAdd(int* p, int v) {
  const int old = *p;
  *p = old + v;
  return old;
}
inline unsigned __float_as_uint(float x) {
  unsigned u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}
inline float atomicAdd(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline int __float2int_rn(float x) {
  const float r = std::nearbyint(x);  // round half to even
  if (!(r < 2147483648.0f)) return 2147483647;
  if (r < -2147483648.0f) return -2147483647 - 1;
  return static_cast<int>(r);
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

#endif  // KVQ_TESTS_KERNELS_CUDA_EMULATOR_H_
