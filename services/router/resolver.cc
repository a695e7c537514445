#include "services/router/resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kvq::router {
namespace {

// "dns:///NAME:PORT", "dns://AUTH/NAME:PORT", "dns:NAME:PORT" -> "NAME:PORT".
std::string StripDnsScheme(const std::string& target) {
  std::string rest = target.substr(4);  // after "dns:"
  if (absl::StartsWith(rest, "//")) {
    const size_t slash = rest.find('/', 2);
    rest = slash == std::string::npos ? "" : rest.substr(slash + 1);
  }
  return rest;
}

// "NAME:PORT" or "[V6]:PORT" -> NAME / V6 and PORT.
absl::Status SplitHostPort(const std::string& target, const std::string& host_port,
                           std::string* host, std::string* port) {
  size_t colon;
  if (absl::StartsWith(host_port, "[")) {
    const size_t close = host_port.find(']');
    if (close == std::string::npos || close + 1 >= host_port.size() ||
        host_port[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("worker target '", target, "': expected [ADDRESS]:PORT"));
    }
    *host = host_port.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = host_port.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("worker target '", target, "': expected dns:///NAME:PORT"));
    }
    *host = host_port.substr(0, colon);
  }
  *port = host_port.substr(colon + 1);
  if (port->empty() || !std::all_of(port->begin(), port->end(),
                                    [](char c) { return c >= '0' && c <= '9'; })) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker target '", target, "': the port must be a number"));
  }
  return absl::OkStatus();
}

class SystemResolver final : public Resolver {
 public:
  absl::StatusOr<std::vector<std::string>> Resolve(const std::string& target) override {
    if (!IsDnsTarget(target)) return std::vector<std::string>{target};
    std::string host, port;
    if (absl::Status s = SplitHostPort(target, StripDnsScheme(target), &host, &port);
        !s.ok()) {
      return s;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &list);
    if (rc != 0) {
      return absl::UnavailableError(
          absl::StrCat("resolving ", target, ": ", gai_strerror(rc)));
    }
    std::vector<std::string> out;
    for (addrinfo* a = list; a != nullptr; a = a->ai_next) {
      char text[INET6_ADDRSTRLEN] = {};
      if (a->ai_family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(a->ai_addr);
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
        out.push_back(absl::StrCat(text, ":", port));
      } else if (a->ai_family == AF_INET6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(a->ai_addr);
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
        out.push_back(absl::StrCat("[", text, "]:", port));
      }
    }
    freeaddrinfo(list);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    if (out.empty()) {
      return absl::UnavailableError(absl::StrCat("resolving ", target, ": no address"));
    }
    return out;
  }
};

}  // namespace

bool IsDnsTarget(const std::string& target) { return absl::StartsWith(target, "dns:"); }

std::unique_ptr<Resolver> Resolver::System() {
  return std::make_unique<SystemResolver>();
}

}  // namespace kvq::router
