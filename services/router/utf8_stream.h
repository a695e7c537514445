// Turns a stream of token pieces (arbitrary bytes: a byte-fallback token may
// hold half of a UTF-8 character) into valid UTF-8 text chunks, as the
// proto's `string text` requires.
//
//   Utf8Stream s;
//   out.set_text(s.Push(piece));   // complete characters so far
//   last.set_text(s.Flush());      // at the end: leftovers as U+FFFD
#ifndef KVQ_SERVICES_ROUTER_UTF8_STREAM_H_
#define KVQ_SERVICES_ROUTER_UTF8_STREAM_H_

#include <string>

#include "absl/strings/string_view.h"

namespace kvq::router {

class Utf8Stream {
 public:
  // Appends `bytes` and returns the valid UTF-8 now complete; invalid
  // sequences become U+FFFD; an incomplete trailing character is kept.
  std::string Push(absl::string_view bytes);
  // Returns what is held back, as U+FFFD (an unfinished character).
  std::string Flush();

 private:
  std::string pending_;
};

}  // namespace kvq::router

#endif  // KVQ_SERVICES_ROUTER_UTF8_STREAM_H_
