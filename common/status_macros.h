// Early-return helpers for absl::Status, which the installed Abseil (20220623)
// does not provide.
//
//   absl::StatusOr<Block> Load(...) {
//     KVQ_RETURN_IF_ERROR(CheckHeader(h));
//     KVQ_ASSIGN_OR_RETURN(std::string bytes, ReadAll(path));
//     ...
//   }
#ifndef KVQ_COMMON_STATUS_MACROS_H_
#define KVQ_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define KVQ_RETURN_IF_ERROR(expr)              \
  do {                                         \
    const ::absl::Status kvq_status_ = (expr); \
    if (!kvq_status_.ok()) return kvq_status_; \
  } while (0)

#define KVQ_STATUS_CONCAT_INNER_(a, b) a##b
#define KVQ_STATUS_CONCAT_(a, b) KVQ_STATUS_CONCAT_INNER_(a, b)

#define KVQ_ASSIGN_OR_RETURN(lhs, expr) \
  KVQ_ASSIGN_OR_RETURN_IMPL_(KVQ_STATUS_CONCAT_(kvq_statusor_, __LINE__), lhs, expr)

#define KVQ_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  if (!statusor.ok()) return statusor.status();         \
  lhs = std::move(statusor).value()

#endif  // KVQ_COMMON_STATUS_MACROS_H_
