// Text <-> token ids. Every model API takes and returns token ids; a
// Tokenizer is only needed at the edges (CLI, router).
//
//   std::vector<int> ids = tok.Encode("Once upon a time");  // 1 403 407 261 378
//   KVQ_ASSIGN_OR_RETURN(std::string text, tok.Decode(ids));
#ifndef KVQ_MODEL_TOKENIZER_H_
#define KVQ_MODEL_TOKENIZER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace kvq::model {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;

  // BOS followed by the text's tokens.
  virtual std::vector<int> Encode(absl::string_view text) const = 0;

  // The bytes `token` prints when it follows `prev` (-1: nothing before it).
  // BOS and EOS print nothing. `token` must be in [0, vocab_size).
  virtual std::string DecodePiece(int prev, int token) const = 0;

  // Concatenated pieces; INVALID_ARGUMENT on an id outside [0, vocab_size).
  absl::StatusOr<std::string> Decode(absl::Span<const int> ids) const;
};

// INVALID_ARGUMENT naming the first id outside [0, vocab_size).
absl::Status CheckTokenIds(absl::Span<const int> ids, int vocab_size);

}  // namespace kvq::model

#endif  // KVQ_MODEL_TOKENIZER_H_
