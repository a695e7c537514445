#include "common/paths.h"

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace kvq {
namespace {

namespace fs = std::filesystem;

bool IsSharedDir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p / "models", ec) || fs::is_directory(p / "data", ec);
}

}  // namespace

std::string ResolveUserPath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  const char* wd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (wd == nullptr || *wd == '\0') return path;
  return (fs::path(wd) / path).string();
}

std::string SharedDir() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("KVQ_SHARED_DIR"); env && *env) {
    candidates.emplace_back(env);
  }
  // Inside `bazel test` / `bazel run`: the @shared repository in runfiles.
  for (const char* var : {"TEST_SRCDIR", "RUNFILES_DIR"}) {
    if (const char* env = std::getenv(var); env && *env) {
      candidates.push_back(fs::path(env) / "shared");
      candidates.push_back(fs::path(env) / "kvq" / "external" / "shared");
    }
  }
  std::error_code ec;
  fs::path start = ResolveUserPath(".");
  fs::path dir = fs::absolute(start, ec);
  for (int i = 0; i < 6 && !dir.empty(); ++i) {
    candidates.push_back(dir / "shared");
    candidates.push_back(dir / ".." / "shared");
    if (dir == dir.parent_path()) break;
    dir = dir.parent_path();
  }
  for (const fs::path& c : candidates) {
    if (IsSharedDir(c)) return fs::weakly_canonical(c, ec).string();
  }
  return "";
}

std::string DefaultModelDir() {
  std::string shared = SharedDir();
  if (shared.empty()) return "";
  return shared + "/models/stories260K";
}

}  // namespace kvq
