// A plain HTTP GET to a service on this machine, for tests of /metrics
// endpoints (no HTTP client library is needed for that).
//
//   const std::string body = LoopbackHttpGet(port, "/metrics");
#ifndef KVQ_TESTS_COMMON_HTTP_GET_H_
#define KVQ_TESTS_COMMON_HTTP_GET_H_

#include <string>

namespace kvq::testing {

// GET `path` from 127.0.0.1:`port` (HTTP/1.1, Connection: close): the body,
// de-chunked if the server used chunked transfer encoding; "" if it could not
// connect or the answer has no header end. `status_line`, if given, receives
// the response's first line (e.g. "HTTP/1.1 200 OK").
std::string LoopbackHttpGet(int port, const std::string& path,
                            std::string* status_line = nullptr);

}  // namespace kvq::testing

#endif  // KVQ_TESTS_COMMON_HTTP_GET_H_
