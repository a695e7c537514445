// Copies for block bytes that are written once and read much later (a block
// landing in the store or in a decode worker's fetch): streaming stores that
// bypass the cache, so the destination's old contents are not read in first
// (a regular copy into a cold 768 KiB block reads it from memory before
// overwriting it) and the cache keeps what is in use.
//
//   std::string bytes = UninitializedString(n);   // no zero-fill
//   StreamCopy(bytes.data() + off, src, len);  ...
//   StreamCopyDone();   // before anyone else may read the bytes
#ifndef KVQ_KVSTORE_INTERNAL_BYTE_COPY_H_
#define KVQ_KVSTORE_INTERNAL_BYTE_COPY_H_

#include <cstddef>
#include <string>

namespace kvq::kvstore::internal {

// A string of `n` bytes whose contents are whatever the allocator returned:
// every byte must be written before it is read.
std::string UninitializedString(size_t n);

// memcpy(dst, src, n) with non-temporal stores where the CPU has them (SSE2
// on x86-64; elsewhere memcpy).
void StreamCopy(char* dst, const char* src, size_t n);

// Orders the streaming stores before later stores (a lock release that
// publishes the bytes to another thread).
void StreamCopyDone();

}  // namespace kvq::kvstore::internal

#endif  // KVQ_KVSTORE_INTERNAL_BYTE_COPY_H_
