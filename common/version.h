// kvq's release version: `kvq version`, the kvq_build_info metric and every
// benchmark's JSON name it.
#ifndef KVQ_COMMON_VERSION_H_
#define KVQ_COMMON_VERSION_H_

namespace kvq {

inline constexpr char kVersion[] = "0.1.0";

}  // namespace kvq

#endif  // KVQ_COMMON_VERSION_H_
