// The safetensors format (Hugging Face): an 8-byte little-endian header
// length N, N bytes of JSON naming each tensor's dtype, shape and
// [begin, end) byte range in the data that follows.
//
//   KVQ_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open("model.safetensors"));
//   KVQ_ASSIGN_OR_RETURN(std::vector<float> w,
//                        file->ReadFloat32("model.norm.weight", {dim}));
#ifndef KVQ_MODEL_SAFETENSORS_H_
#define KVQ_MODEL_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace kvq::model {

enum class TensorDtype { kF32, kF16, kBF16 };

struct TensorInfo {
  TensorDtype dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
};

class SafetensorsFile {
 public:
  // Maps the file read-only. NOT_FOUND: missing file. INVALID_ARGUMENT: a
  // truncated or malformed header, a dtype other than F32/F16/BF16, a range
  // outside the file or disagreeing with the shape.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // The same checks over bytes already in memory (kept alive by the caller).
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Parse(absl::string_view bytes,
                                                                std::string name);
  ~SafetensorsFile();

  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  bool Has(const std::string& name) const { return tensors_.count(name) > 0; }

  // The tensor widened to float32. NOT_FOUND when absent; INVALID_ARGUMENT
  // when its shape is not `shape`.
  absl::StatusOr<std::vector<float>> ReadFloat32(const std::string& name,
                                                 absl::Span<const int64_t> shape) const;

 private:
  SafetensorsFile() = default;

  std::string name_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  absl::string_view data_;  // the data section
  std::map<std::string, TensorInfo> tensors_;
};

// A tensor to write: float32 values stored as `dtype` (F16/BF16 round to
// nearest even).
struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  const std::vector<float>* values;
  TensorDtype dtype = TensorDtype::kF32;
};
std::string SerializeSafetensors(absl::Span<const TensorToWrite> tensors);

}  // namespace kvq::model

#endif  // KVQ_MODEL_SAFETENSORS_H_
