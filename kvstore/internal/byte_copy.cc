// Built as C++23 (BUILD) for std::string::resize_and_overwrite; the library's
// std::string layout is the same in every language mode.
#include "kvstore/internal/byte_copy.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace kvq::kvstore::internal {

std::string UninitializedString(size_t n) {
  std::string s;
  s.resize_and_overwrite(n, [](char*, size_t size) { return size; });
  return s;
}

void StreamCopy(char* dst, const char* src, size_t n) {
#if defined(__x86_64__)
  // Up to 16-byte alignment of dst with a plain copy, then 64 bytes per step.
  const size_t head = std::min(n, (16 - (reinterpret_cast<uintptr_t>(dst) & 15)) & 15);
  std::memcpy(dst, src, head);
  dst += head;
  src += head;
  n -= head;
  for (; n >= 64; n -= 64, dst += 64, src += 64) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 32));
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 48), d);
  }
#endif
  std::memcpy(dst, src, n);
}

void StreamCopyDone() {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

}  // namespace kvq::kvstore::internal
