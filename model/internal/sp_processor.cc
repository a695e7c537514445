#include "model/internal/sp_processor.h"

#include "sentencepiece_processor.h"

namespace kvq::model_internal {

struct SpProcessor::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

SpProcessor::SpProcessor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SpProcessor::~SpProcessor() = default;

std::unique_ptr<SpProcessor> SpProcessor::Load(const std::string& path,
                                               std::string* error) {
  auto impl = std::make_unique<Impl>();
  const auto status = impl->sp.Load(path);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  return std::unique_ptr<SpProcessor>(new SpProcessor(std::move(impl)));
}

int SpProcessor::size() const { return impl_->sp.GetPieceSize(); }
int SpProcessor::bos_id() const { return impl_->sp.bos_id(); }
int SpProcessor::eos_id() const { return impl_->sp.eos_id(); }
std::vector<int> SpProcessor::Encode(const std::string& text) const {
  return impl_->sp.EncodeAsIds(text);
}
std::string SpProcessor::IdToPiece(int id) const { return impl_->sp.IdToPiece(id); }
bool SpProcessor::IsControl(int id) const { return impl_->sp.IsControl(id); }
bool SpProcessor::IsByte(int id) const { return impl_->sp.IsByte(id); }

}  // namespace kvq::model_internal
