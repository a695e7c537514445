#include "tests/common/http_get.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kvq::testing {

std::string LoopbackHttpGet(int port, const std::string& path, std::string* status_line) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string req = absl::StrCat("GET ", path,
                                         " HTTP/1.1\r\nHost: localhost\r\n"
                                         "Connection: close\r\n\r\n");
    (void)!write(fd, req.data(), req.size());
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  }
  close(fd);
  if (status_line != nullptr) *status_line = out.substr(0, out.find("\r\n"));
  const size_t body_at = out.find("\r\n\r\n");
  if (body_at == std::string::npos) return "";
  const std::string headers = out.substr(0, body_at);
  std::string body = out.substr(body_at + 4);
  if (!absl::StrContains(absl::AsciiStrToLower(headers), "transfer-encoding: chunked")) {
    return body;
  }
  std::string plain;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t eol = body.find("\r\n", pos);
    if (eol == std::string::npos) break;
    size_t n = 0;
    if (!absl::SimpleHexAtoi(body.substr(pos, eol - pos), &n) || n == 0) break;
    plain += body.substr(eol + 2, n);
    pos = eol + 2 + n + 2;
  }
  return plain;
}

}  // namespace kvq::testing
