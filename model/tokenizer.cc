#include "model/tokenizer.h"

#include "absl/strings/str_format.h"

namespace kvq::model {

absl::Status CheckTokenIds(absl::Span<const int> ids, int vocab_size) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("token id %d at position %d is outside the vocabulary [0, %d)",
                          ids[i], i, vocab_size));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int> ids) const {
  if (absl::Status s = CheckTokenIds(ids, vocab_size()); !s.ok()) return s;
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    out += DecodePiece(i == 0 ? -1 : ids[i - 1], ids[i]);
  }
  return out;
}

}  // namespace kvq::model
