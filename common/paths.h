// Locating files the user names on the command line or that live in
// ../shared (the test model and quality-run text).
//
//   std::string model = kvq::ResolveUserPath(absl::GetFlag(FLAGS_model));
//   std::string dir = kvq::DefaultModelDir();  // ".../shared/models/stories260K"
#ifndef KVQ_COMMON_PATHS_H_
#define KVQ_COMMON_PATHS_H_

#include <string>

namespace kvq {

// Makes a relative path the user typed relative to the directory they typed it
// in: under `bazel run` the process starts in the runfiles tree and
// BUILD_WORKING_DIRECTORY holds the user's directory.
std::string ResolveUserPath(const std::string& path);

// The shared/ directory beside the checkout, or "" if none is found. Looks at
// $KVQ_SHARED_DIR, then the Bazel runfiles (external/shared), then ../shared
// relative to the user's directory and its parents.
std::string SharedDir();

// SharedDir() + "/models/stories260K", or "" when there is no shared dir.
std::string DefaultModelDir();

}  // namespace kvq

#endif  // KVQ_COMMON_PATHS_H_
