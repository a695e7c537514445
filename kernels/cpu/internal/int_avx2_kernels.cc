// Integer decode attention compiled for AVX2 + FMA + F16C (vpmaddubsw + vpmaddwd).
// Reached only after a run-time CPU check (kernels/cpu/cpu_kernels.cc).
#define KVQ_INT_NAMESPACE int_avx2
#define KVQ_INT_ISA 1
#include "kernels/cpu/internal/int_attention_impl.inc"
