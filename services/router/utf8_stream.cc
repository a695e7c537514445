#include "services/router/utf8_stream.h"

namespace kvq::router {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the sequence a lead byte starts (0: not a lead byte).
int SequenceLength(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

// Whether s[i..i+n) is a well-formed sequence (no overlongs, surrogates or
// code points past U+10FFFF), checking only the bytes present.
bool ValidPrefix(const std::string& s, size_t i, int n, size_t avail) {
  const unsigned char c0 = s[i];
  for (size_t k = 1; k < avail && k < static_cast<size_t>(n); ++k) {
    const unsigned char c = s[i + k];
    if ((c & 0xC0) != 0x80) return false;
    if (k == 1) {
      if (c0 == 0xE0 && c < 0xA0) return false;
      if (c0 == 0xED && c > 0x9F) return false;
      if (c0 == 0xF0 && c < 0x90) return false;
      if (c0 == 0xF4 && c > 0x8F) return false;
    }
  }
  return true;
}

}  // namespace

std::string Utf8Stream::Push(absl::string_view bytes) {
  pending_.append(bytes.data(), bytes.size());
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const int n = SequenceLength(static_cast<unsigned char>(pending_[i]));
    const size_t avail = pending_.size() - i;
    if (n == 0 || !ValidPrefix(pending_, i, n, avail)) {
      out += kReplacement;
      ++i;
      continue;
    }
    if (avail < static_cast<size_t>(n)) break;  // wait for the rest
    out.append(pending_, i, n);
    i += n;
  }
  pending_.erase(0, i);
  return out;
}

std::string Utf8Stream::Flush() {
  std::string out = pending_.empty() ? "" : kReplacement;
  pending_.clear();
  return out;
}

}  // namespace kvq::router
