#include "model/llama2c_tokenizer.h"

#include <cstdint>
#include <cstring>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "model/internal/read_file.h"

namespace kvq::model {
namespace {

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> Llama2cTokenizer::Load(
    const std::string& path, int vocab_size) {
  KVQ_ASSIGN_OR_RETURN(std::string bytes, model_internal::ReadFile(path));
  auto tok = Parse(bytes, vocab_size);
  if (!tok.ok()) {
    return absl::Status(tok.status().code(),
                        path + ": " + std::string(tok.status().message()));
  }
  return tok;
}

absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> Llama2cTokenizer::Parse(
    absl::string_view bytes, int vocab_size) {
  if (vocab_size <= 0) return absl::InvalidArgumentError("vocab_size must be positive");
  size_t pos = 0;
  auto read_i32 = [&](int32_t* v) {
    if (bytes.size() - pos < 4) return false;
    std::memcpy(v, bytes.data() + pos, 4);
    pos += 4;
    return true;
  };
  int32_t max_len;
  if (!read_i32(&max_len) || max_len <= 0) {
    return absl::InvalidArgumentError("llama2.c tokenizer: missing or bad header");
  }
  std::unique_ptr<Llama2cTokenizer> tok(new Llama2cTokenizer());
  tok->pieces_.reserve(vocab_size);
  tok->scores_.reserve(vocab_size);
  for (int i = 0; i < vocab_size; ++i) {
    int32_t score_bits, len;
    if (!read_i32(&score_bits) || !read_i32(&len)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "llama2.c tokenizer truncated at token %d of %d", i, vocab_size));
    }
    if (len < 0 || len > max_len || bytes.size() - pos < size_t(len)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "llama2.c tokenizer: token %d has bad length %d (max %d, %d bytes left)", i,
          len, max_len, bytes.size() - pos));
    }
    float score;
    std::memcpy(&score, &score_bits, 4);
    tok->scores_.push_back(score);
    tok->pieces_.emplace_back(bytes.substr(pos, len));
    pos += len;
    tok->ids_.emplace(tok->pieces_.back(), i);  // keeps the first id
  }
  if (pos != bytes.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "llama2.c tokenizer has %d bytes after its %d tokens: it does not match the "
        "model's vocabulary size",
        bytes.size() - pos, vocab_size));
  }
  return tok;
}

int Llama2cTokenizer::Lookup(absl::string_view s) const {
  auto it = ids_.find(std::string(s));
  return it == ids_.end() ? -1 : it->second;
}

std::vector<int> Llama2cTokenizer::Encode(absl::string_view text) const {
  std::vector<int> tokens = {bos_id()};
  if (text.empty()) return tokens;
  // The "dummy prefix" llama2.c (and sentencepiece) add.
  std::vector<int> body;
  if (int space = Lookup(" "); space >= 0) body.push_back(space);

  // Each UTF-8 character (at most 4 bytes) becomes its piece, or one
  // byte-fallback piece per byte.
  std::string buf;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = text[i];
    if (!IsContinuation(c)) buf.clear();
    buf.push_back(static_cast<char>(c));
    if (i + 1 < text.size() && IsContinuation(text[i + 1]) && buf.size() < 4) continue;
    if (int id = Lookup(buf); id >= 0) {
      body.push_back(id);
    } else {
      for (unsigned char b : buf) body.push_back(b + 3);
    }
    buf.clear();
  }

  // Greedy merges: the adjacent pair whose concatenation is the
  // highest-scoring piece (first on ties), until none merges.
  while (body.size() >= 2) {
    float best_score = -1e10f;
    int best_id = -1;
    size_t best_idx = 0;
    for (size_t i = 0; i + 1 < body.size(); ++i) {
      const int id = Lookup(pieces_[body[i]] + pieces_[body[i + 1]]);
      if (id >= 0 && scores_[id] > best_score) {
        best_score = scores_[id];
        best_id = id;
        best_idx = i;
      }
    }
    if (best_id < 0) break;
    body[best_idx] = best_id;
    body.erase(body.begin() + best_idx + 1);
  }
  tokens.insert(tokens.end(), body.begin(), body.end());
  return tokens;
}

std::string Llama2cTokenizer::DecodePiece(int prev, int token) const {
  if (token == bos_id() || token == eos_id()) return "";
  absl::string_view piece = pieces_[token];
  if (prev == bos_id() && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
  if (piece.size() == 6 && piece.substr(0, 3) == "<0x" && piece[5] == '>') {
    const int hi = HexDigit(piece[3]), lo = HexDigit(piece[4]);
    if (hi >= 0 && lo >= 0) return std::string(1, static_cast<char>(hi * 16 + lo));
  }
  return std::string(piece);
}

}  // namespace kvq::model
