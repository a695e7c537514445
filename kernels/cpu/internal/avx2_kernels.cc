// The CPU kernels' inner loops for AVX2 + FMA + F16C (compiled with those
// -m flags only; reached only after a run-time CPU check).
#define KVQ_ISA_NAMESPACE avx2
#include "kernels/cpu/internal/simd_kernels_impl.inc"
