// Decode-attention instantiations for fp16-only caches (one nvcc job per
// bit width keeps rebuilds and compile memory small).
#include "kernels/cuda/internal/decode_attention_launch.cuh"

KVQ_INSTANTIATE_DECODE_ATTENTION(16, 16)
