// Integer decode attention compiled for no ISA flags: the specification of the integer
// algorithm. Reached only after a run-time CPU check (kernels/cpu/cpu_kernels.cc).
#define KVQ_INT_NAMESPACE int_portable
#define KVQ_INT_ISA 0
#include "kernels/cpu/internal/int_attention_impl.inc"
