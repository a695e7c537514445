// Decode-attention instantiations for caches with 8-bit keys (values at 2,
// 4 or 8 bits; one nvcc job per key bit width keeps rebuilds and compile
// memory small).
#include "kernels/cuda/internal/decode_attention_launch.cuh"

KVQ_INSTANTIATE_DECODE_ATTENTION(8, 2)
KVQ_INSTANTIATE_DECODE_ATTENTION(8, 4)
KVQ_INSTANTIATE_DECODE_ATTENTION(8, 8)
