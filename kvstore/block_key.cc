#include "kvstore/block_key.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kvq::kvstore {
namespace {

void AppendLe(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string BlockKey::ToHex() const {
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  return std::string(buf, 32);
}

absl::StatusOr<BlockKey> BlockKey::FromHex(absl::string_view hex) {
  if (hex.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("a block key is 32 hex digits, got ", hex.size(), " characters"));
  }
  BlockKey key;
  for (int i = 0; i < 32; ++i) {
    const int v = HexValue(hex[i]);
    if (v < 0) return absl::InvalidArgumentError(absl::StrCat("not hex: ", hex));
    uint64_t& half = i < 16 ? key.hi : key.lo;
    half = (half << 4) | static_cast<uint64_t>(v);
  }
  return key;
}

std::string BlockKey::ToBytes() const {
  std::string out(16, '\0');
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<char>(hi >> (56 - 8 * i));
    out[8 + i] = static_cast<char>(lo >> (56 - 8 * i));
  }
  return out;
}

absl::StatusOr<BlockKey> BlockKey::FromBytes(absl::string_view bytes) {
  if (bytes.size() != 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("a block key is 16 bytes, got ", bytes.size()));
  }
  BlockKey key;
  for (int i = 0; i < 8; ++i) {
    key.hi = (key.hi << 8) | static_cast<uint8_t>(bytes[i]);
    key.lo = (key.lo << 8) | static_cast<uint8_t>(bytes[8 + i]);
  }
  return key;
}

BlockKey ChainSeed() {
  static const BlockKey seed = [] {
    constexpr char kSeed[] = "kvq.block_key.v1";
    const XXH128_hash_t h = XXH3_128bits(kSeed, sizeof(kSeed) - 1);
    return BlockKey{h.high64, h.low64};
  }();
  return seed;
}

BlockKey NextBlockKey(const BlockKey& prev, absl::Span<const int32_t> tokens,
                      uint64_t model_id, const kernels::BlockEncoding& encoding) {
  // The byte encoding of kvstore/README.md ("Block keys"), all little-endian.
  std::string bytes;
  bytes.reserve(16 + 8 + 20 + 4 + 4 * tokens.size());
  AppendLe(bytes, prev.hi, 8);
  AppendLe(bytes, prev.lo, 8);
  AppendLe(bytes, model_id, 8);
  AppendLe(bytes, encoding.version, 2);
  AppendLe(bytes, encoding.block_tokens, 2);
  AppendLe(bytes, encoding.bits, 2);
  AppendLe(bytes, encoding.is_fp16() ? 0 : encoding.group, 2);
  AppendLe(bytes, encoding.v_bits, 2);
  AppendLe(bytes, encoding.k_outliers, 2);
  AppendLe(bytes, encoding.v_outliers, 2);
  AppendLe(bytes, encoding.scales, 2);
  AppendLe(bytes, encoding.edge_layers, 2);
  AppendLe(bytes, encoding.edge_bits, 2);
  AppendLe(bytes, static_cast<uint32_t>(tokens.size()), 4);
  for (int32_t t : tokens) AppendLe(bytes, static_cast<uint32_t>(t), 4);
  const XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
  return BlockKey{h.high64, h.low64};
}

std::vector<BlockKey> BlockKeyChain(absl::Span<const int32_t> tokens, uint64_t model_id,
                                    const kernels::BlockEncoding& encoding) {
  std::vector<BlockKey> keys;
  const size_t b = encoding.block_tokens;
  if (b == 0) return keys;
  BlockKey prev = ChainSeed();
  for (size_t start = 0; start < tokens.size(); start += b) {
    const size_t n = std::min(b, tokens.size() - start);
    prev = NextBlockKey(prev, tokens.subspan(start, n), model_id, encoding);
    keys.push_back(prev);
  }
  return keys;
}

}  // namespace kvq::kvstore
