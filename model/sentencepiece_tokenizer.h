// A sentencepiece tokenizer.model (what Hugging Face Llama checkpoints ship),
// behind the Tokenizer interface: Encode adds BOS; DecodePiece prints "▁" as
// a space, byte pieces as their byte, and drops the leading space after BOS.
//
//   KVQ_ASSIGN_OR_RETURN(auto tok, SentencePieceTokenizer::Load(dir +
//   "/tokenizer.model"));
#ifndef KVQ_MODEL_SENTENCEPIECE_TOKENIZER_H_
#define KVQ_MODEL_SENTENCEPIECE_TOKENIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/internal/sp_processor.h"
#include "model/tokenizer.h"

namespace kvq::model {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // INVALID_ARGUMENT (NOT_FOUND for a missing file) when sentencepiece
  // cannot load `path`.
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> Load(
      const std::string& path);

  int vocab_size() const override { return sp_->size(); }
  int bos_id() const override { return bos_; }
  int eos_id() const override { return eos_; }
  std::vector<int> Encode(absl::string_view text) const override;
  std::string DecodePiece(int prev, int token) const override;

 private:
  explicit SentencePieceTokenizer(std::unique_ptr<model_internal::SpProcessor> sp);

  std::unique_ptr<model_internal::SpProcessor> sp_;
  int bos_, eos_;
};

}  // namespace kvq::model

#endif  // KVQ_MODEL_SENTENCEPIECE_TOKENIZER_H_
