// Decode-attention instantiations for 2-bit caches (one nvcc job per
// bit width keeps rebuilds and compile memory small).
#include "kernels/cuda/internal/decode_attention_launch.cuh"

KVQ_INSTANTIATE_DECODE_ATTENTION(2)
