#include "model/internal/read_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace kvq::model_internal {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(path + " is a directory, expected a file");
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::NotFoundError("cannot open " + path + ": " + std::strerror(errno));
  }
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) data.append(buf, n);
  const bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) return absl::DataLossError("error reading " + path);
  return data;
}

}  // namespace kvq::model_internal
