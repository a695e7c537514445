#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/fp16.h"
#include "nlohmann/json.hpp"

namespace kvq::model {
namespace {

size_t DtypeBytes(TensorDtype d) { return d == TensorDtype::kF32 ? 4 : 2; }

absl::Status Bad(const std::string& file, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", why));
}

uint16_t FloatToBf16(float f) {
  uint32_t u = kernels::FloatBits(f);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0)
    return absl::NotFoundError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Bad(path, "not a regular file");
  }
  const size_t size = st.st_size;
  void* map = size > 0 ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  ::close(fd);
  if (map == MAP_FAILED) return absl::DataLossError(absl::StrCat("cannot map ", path));
  auto file = Parse(absl::string_view(static_cast<const char*>(map), size), path);
  if (!file.ok()) {
    if (map != nullptr) ::munmap(map, size);
    return file.status();
  }
  (*file)->map_ = map;
  (*file)->map_size_ = size;
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Parse(
    absl::string_view bytes, std::string name) {
  if (bytes.size() < 8) return Bad(name, "truncated safetensors header");
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  if (header_len > bytes.size() - 8) {
    return Bad(name, absl::StrCat("safetensors header of ", header_len,
                                  " bytes runs past the end of the file"));
  }
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, header_len), nullptr,
                                                /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Bad(name, "safetensors header is not a JSON object");
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->name_ = name;
  file->data_ = bytes.substr(8 + header_len);
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const nlohmann::json& t = it.value();
    const std::string where = "tensor " + it.key();
    if (!t.is_object() || !t.contains("dtype") || !t["dtype"].is_string() ||
        !t.contains("shape") || !t["shape"].is_array() || !t.contains("data_offsets") ||
        !t["data_offsets"].is_array() || t["data_offsets"].size() != 2) {
      return Bad(name, where + ": needs dtype, shape and data_offsets");
    }
    TensorInfo info;
    const std::string dtype = t["dtype"];
    if (dtype == "F32") {
      info.dtype = TensorDtype::kF32;
    } else if (dtype == "F16") {
      info.dtype = TensorDtype::kF16;
    } else if (dtype == "BF16") {
      info.dtype = TensorDtype::kBF16;
    } else {
      return Bad(name, where + ": unsupported dtype " + dtype + " (F32, F16, BF16 only)");
    }
    uint64_t numel = 1;
    for (const auto& d : t["shape"]) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 32)) {
        return Bad(name, where + ": bad shape");
      }
      info.shape.push_back(d.get<int64_t>());
      numel *= d.get<uint64_t>();
    }
    const auto& off = t["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
      return Bad(name, where + ": bad data_offsets");
    }
    info.begin = off[0];
    info.end = off[1];
    if (info.begin > info.end || info.end > file->data_.size()) {
      return Bad(name, absl::StrCat(where, ": bytes [", info.begin, ", ", info.end,
                                    ") outside the ", file->data_.size(),
                                    "-byte data section (truncated file?)"));
    }
    if (info.end - info.begin != numel * DtypeBytes(info.dtype)) {
      return Bad(name, absl::StrCat(where, ": ", info.end - info.begin,
                                    " bytes do not match its shape and dtype"));
    }
    file->tensors_.emplace(it.key(), std::move(info));
  }
  return file;
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadFloat32(
    const std::string& name, absl::Span<const int64_t> shape) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(name_, ": no tensor ", name));
  }
  const TensorInfo& info = it->second;
  if (!std::equal(info.shape.begin(), info.shape.end(), shape.begin(), shape.end())) {
    return Bad(name_, absl::StrCat("tensor ", name, " has shape [",
                                   absl::StrJoin(info.shape, ", "), "], expected [",
                                   absl::StrJoin(shape, ", "), "]"));
  }
  const char* p = data_.data() + info.begin;
  const size_t n = (info.end - info.begin) / DtypeBytes(info.dtype);
  std::vector<float> out(n);
  if (info.dtype == TensorDtype::kF32) {
    std::memcpy(out.data(), p, n * 4);
    return out;
  }
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    out[i] = info.dtype == TensorDtype::kF16 ? kernels::HalfToFloat(h)
                                             : kernels::BitsToFloat(uint32_t{h} << 16);
  }
  return out;
}

std::string SerializeSafetensors(absl::Span<const TensorToWrite> tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const TensorToWrite& t : tensors) {
    const size_t begin = data.size();
    for (float f : *t.values) {
      if (t.dtype == TensorDtype::kF32) {
        data.append(reinterpret_cast<const char*>(&f), 4);
        continue;
      }
      const uint16_t h =
          t.dtype == TensorDtype::kF16 ? kernels::FloatToHalf(f) : FloatToBf16(f);
      data.append(reinterpret_cast<const char*>(&h), 2);
    }
    header[t.name] = {{"dtype", t.dtype == TensorDtype::kF32   ? "F32"
                                : t.dtype == TensorDtype::kF16 ? "F16"
                                                               : "BF16"},
                      {"shape", t.shape},
                      {"data_offsets", {begin, data.size()}}};
  }
  const std::string json = header.dump();
  const uint64_t len = json.size();
  std::string out(reinterpret_cast<const char*>(&len), 8);
  return out + json + data;
}

}  // namespace kvq::model
