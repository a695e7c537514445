// The llama2.c tokenizer (tok512.bin and friends), encoding and decoding
// exactly as llama2.c's `encode`/`decode` (design section 2).
//
// File: int32 max_token_length, then per token float32 score, int32 length,
// that many bytes. Token 1 is BOS, 2 is EOS, 3..258 are the byte fallbacks.
//
//   KVQ_ASSIGN_OR_RETURN(auto tok, kvq::model::Llama2cTokenizer::Load(path, 512));
#ifndef KVQ_MODEL_LLAMA2C_TOKENIZER_H_
#define KVQ_MODEL_LLAMA2C_TOKENIZER_H_

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "model/tokenizer.h"

namespace kvq::model {

class Llama2cTokenizer final : public Tokenizer {
 public:
  // Reads exactly `vocab_size` tokens. NOT_FOUND for a missing file,
  // INVALID_ARGUMENT for a truncated file, a bad length, or bytes left over.
  static absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> Load(const std::string& path,
                                                                int vocab_size);
  static absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> Parse(absl::string_view bytes,
                                                                 int vocab_size);

  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return 1; }
  int eos_id() const override { return 2; }
  std::vector<int> Encode(absl::string_view text) const override;
  std::string DecodePiece(int prev, int token) const override;

  const std::string& piece(int id) const { return pieces_[id]; }

 private:
  Llama2cTokenizer() = default;
  int Lookup(absl::string_view s) const;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> ids_;  // first id of each piece
};

}  // namespace kvq::model

#endif  // KVQ_MODEL_LLAMA2C_TOKENIZER_H_
