#include "model/sentencepiece_tokenizer.h"

#include <filesystem>

#include "absl/strings/str_replace.h"

namespace kvq::model {

SentencePieceTokenizer::SentencePieceTokenizer(
    std::unique_ptr<model_internal::SpProcessor> sp)
    : sp_(std::move(sp)), bos_(sp_->bos_id()), eos_(sp_->eos_id()) {}

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Load(
    const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError("no sentencepiece model at " + path);
  }
  std::string error;
  auto sp = model_internal::SpProcessor::Load(path, &error);
  if (sp == nullptr) {
    return absl::InvalidArgumentError(path + ": not a sentencepiece model: " + error);
  }
  return std::unique_ptr<SentencePieceTokenizer>(
      new SentencePieceTokenizer(std::move(sp)));
}

std::vector<int> SentencePieceTokenizer::Encode(absl::string_view text) const {
  std::vector<int> ids;
  if (bos_ >= 0) ids.push_back(bos_);
  std::vector<int> body = sp_->Encode(std::string(text));
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::string SentencePieceTokenizer::DecodePiece(int prev, int token) const {
  if (sp_->IsControl(token)) return "";
  std::string piece = sp_->IdToPiece(token);
  if (sp_->IsByte(token) && piece.size() == 6) {
    return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
  }
  piece = absl::StrReplaceAll(piece, {{"\xe2\x96\x81", " "}});
  if (prev == bos_ && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  return piece;
}

}  // namespace kvq::model
