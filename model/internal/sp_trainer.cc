// TrainSentencePiece (sp_processor.h), in its own target so that only what
// trains models links libsentencepiece_train.
#include <string>

#include "model/internal/sp_processor.h"
#include "sentencepiece_trainer.h"

namespace kvq::model_internal {

bool TrainSentencePiece(const std::string& input_file, const std::string& prefix,
                        int vocab_size, std::string* error) {
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + input_file + " --model_prefix=" + prefix +
      " --vocab_size=" + std::to_string(vocab_size) +
      " --model_type=bpe --byte_fallback=true --character_coverage=1.0"
      " --bos_id=1 --eos_id=2 --unk_id=0 --minloglevel=2");
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

}  // namespace kvq::model_internal
