// A thin, Abseil-free wrapper of sentencepiece::SentencePieceProcessor. The
// Debian sentencepiece header declares `absl::string_view` as
// std::string_view, which clashes with Abseil's own absl::string_view, so
// only sp_processor.cc (which includes no Abseil header) sees it.
#ifndef KVQ_MODEL_INTERNAL_SP_PROCESSOR_H_
#define KVQ_MODEL_INTERNAL_SP_PROCESSOR_H_

#include <memory>
#include <string>
#include <vector>

namespace kvq::model_internal {

class SpProcessor {
 public:
  // nullptr and *error set when the file cannot be loaded.
  static std::unique_ptr<SpProcessor> Load(const std::string& path, std::string* error);
  ~SpProcessor();

  int size() const;
  int bos_id() const;
  int eos_id() const;
  std::vector<int> Encode(const std::string& text) const;
  std::string IdToPiece(int id) const;
  bool IsControl(int id) const;
  bool IsByte(int id) const;

 private:
  struct Impl;
  explicit SpProcessor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Trains a small BPE model on `input_file` (for tests and tools); writes
// <prefix>.model. False and *error on failure.
bool TrainSentencePiece(const std::string& input_file, const std::string& prefix,
                        int vocab_size, std::string* error);

}  // namespace kvq::model_internal

#endif  // KVQ_MODEL_INTERNAL_SP_PROCESSOR_H_
