#include "services/common/authorizer.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kvq::services {
namespace {

constexpr absl::string_view kBearer = "Bearer ";

// Whether `presented` equals `secret`, in time that depends only on the
// lengths (so a caller cannot find a token byte by byte by timing).
bool ConstantTimeEquals(absl::string_view presented, absl::string_view secret) {
  unsigned char diff = presented.size() == secret.size() ? 0 : 1;
  for (size_t i = 0; i < secret.size(); ++i) {
    const unsigned char p =
        i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= p ^ static_cast<unsigned char>(secret[i]);
  }
  return diff == 0;
}

// Whether `token` is one of `tokens`, comparing with every one of them.
bool AnyEquals(absl::string_view token, const std::vector<std::string>& tokens) {
  bool found = false;
  for (const std::string& t : tokens) found |= ConstantTimeEquals(token, t);
  return found;
}

absl::Status CheckToken(const std::string& token, absl::string_view list) {
  if (token.size() < Authorizer::kMinTokenBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a ", list, " token has ", token.size(), " bytes; tokens need at least ",
        Authorizer::kMinTokenBytes, " (e.g. `openssl rand -hex 32`)"));
  }
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a ", list, " token holds a byte that is not printable ASCII (or a space)"));
    }
  }
  return absl::OkStatus();
}

bool Contains(const std::vector<std::string>& list, absl::string_view value) {
  for (const std::string& v : list) {
    if (v == value) return true;
  }
  return false;
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kReader:
      return "reader";
    case Role::kWriter:
      return "writer";
    case Role::kAdmin:
      return "admin";
  }
  return "reader";
}

absl::StatusOr<Authorizer> Authorizer::Create(Options options) {
  for (const std::string& t : options.writer_tokens) {
    if (absl::Status s = CheckToken(t, "writer"); !s.ok()) return s;
    if (AnyEquals(t, options.admin_tokens)) {
      return absl::InvalidArgumentError(
          "a token is both a writer and an admin token; give each role its own");
    }
  }
  for (const std::string& t : options.admin_tokens) {
    if (absl::Status s = CheckToken(t, "admin"); !s.ok()) return s;
  }
  for (const std::string& id : options.writer_identities) {
    if (id.empty()) return absl::InvalidArgumentError("an empty writer identity");
    if (Contains(options.admin_identities, id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "identity ", id,
          " is both a writer and an admin identity; give each role its own"));
    }
  }
  for (const std::string& id : options.admin_identities) {
    if (id.empty()) return absl::InvalidArgumentError("an empty admin identity");
  }
  return Authorizer(std::move(options));
}

absl::StatusOr<Authorizer> Authorizer::WithIdentities(
    std::vector<std::string> writers, std::vector<std::string> admins) const {
  Options options = options_;
  options.writer_identities = std::move(writers);
  options.admin_identities = std::move(admins);
  return Create(std::move(options));
}

absl::StatusOr<Authorizer> Authorizer::FromTokenFiles(
    const std::string& writer_token_file, const std::string& admin_token_file) {
  Options options;
  if (!writer_token_file.empty()) {
    absl::StatusOr<std::vector<std::string>> t = ReadTokenFile(writer_token_file);
    if (!t.ok()) return t.status();
    options.writer_tokens = std::move(*t);
  }
  if (!admin_token_file.empty()) {
    absl::StatusOr<std::vector<std::string>> t = ReadTokenFile(admin_token_file);
    if (!t.ok()) return t.status();
    options.admin_tokens = std::move(*t);
  }
  return Create(std::move(options));
}

absl::StatusOr<Caller> Authorizer::Identify(
    absl::Span<const absl::string_view> authorization, absl::string_view peer,
    absl::Span<const std::string> identities) const {
  Caller caller;
  caller.peer_host = PeerHost(peer);
  if (!identities.empty()) caller.identity = identities[0];
  if (open()) {
    caller.role = Role::kAdmin;  // tokens, if sent, are not looked at
    return caller;
  }
  if (authorization.empty()) {
    if (identities.empty()) return caller;
    // A verified certificate: its identity's role, else a reader.
    caller.authenticated = true;
    caller.by_certificate = true;
    for (const std::string& id : identities) {
      if (Contains(options_.admin_identities, id)) {
        caller.role = Role::kAdmin;
      } else if (Contains(options_.writer_identities, id) &&
                 caller.role < Role::kWriter) {
        caller.role = Role::kWriter;
      }
    }
    if (caller.role == Role::kAdmin) caller.principal = "operator";
    if (caller.role == Role::kWriter) caller.principal = "worker";
    return caller;
  }
  if (authorization.size() > 1) {
    return absl::UnauthenticatedError("more than one authorization metadata value");
  }
  const absl::string_view value = authorization[0];
  if (!absl::StartsWith(value, kBearer)) {
    return absl::UnauthenticatedError(
        "authorization metadata must be \"Bearer <token>\"");
  }
  const absl::string_view token =
      absl::StripAsciiWhitespace(value.substr(kBearer.size()));
  // Both lists are always compared, so the time says nothing about the role.
  const bool admin = AnyEquals(token, options_.admin_tokens);
  const bool writer = AnyEquals(token, options_.writer_tokens);
  if (!admin && !writer) {
    return absl::UnauthenticatedError(
        "the authorization token is not one of this server's");
  }
  caller.authenticated = true;
  caller.role = admin ? Role::kAdmin : Role::kWriter;
  caller.principal = admin ? "operator" : "worker";
  return caller;
}

absl::StatusOr<Caller> Authorizer::Identify(
    const grpc::ServerContextBase& context) const {
  std::vector<absl::string_view> values;
  const auto range = context.client_metadata().equal_range("authorization");
  for (auto it = range.first; it != range.second; ++it) {
    values.emplace_back(it->second.data(), it->second.size());
  }
  return Identify(values, context.peer(), PeerIdentities(context));
}

std::vector<std::string> PeerIdentities(const grpc::ServerContextBase& context) {
  std::vector<std::string> out;
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return out;
  for (const char* property : {"x509_common_name", "x509_subject_alternative_name"}) {
    for (const grpc::string_ref& v : auth->FindPropertyValues(property)) {
      out.emplace_back(v.data(), v.size());
    }
  }
  return out;
}

absl::Status Authorizer::Require(const Caller& caller, Role needed,
                                 absl::string_view what) {
  if (caller.role >= needed) return absl::OkStatus();
  const absl::string_view needs =
      needed == Role::kAdmin ? "an operator (admin) token" : "a worker (writer) token";
  const absl::string_view list = needed == Role::kAdmin ? "admin" : "writer";
  if (!caller.authenticated) {
    return absl::UnauthenticatedError(absl::StrCat(
        what, " needs ", needs,
        ": send metadata \"authorization: Bearer <token>\" with a token from the "
        "server's --",
        list, "_token_file, or connect with a client certificate named in its --", list,
        "_identities"));
  }
  if (caller.by_certificate) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, " needs ", needs, " or certificate; the client certificate ",
                     caller.identity, " is a ", RoleName(caller.role),
                     " (not in the server's --", list, "_identities)"));
  }
  return absl::PermissionDeniedError(absl::StrCat(what, " needs ", needs, "; ",
                                                  caller.principal, " has a ",
                                                  RoleName(caller.role), " token"));
}

absl::StatusOr<std::vector<std::string>> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read token file ", path, ": ", std::strerror(errno)));
  }
  std::stringstream contents;
  contents << in.rdbuf();
  std::vector<std::string> tokens;
  for (absl::string_view line : absl::StrSplit(contents.str(), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    tokens.emplace_back(line);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path, " holds no token"));
  }
  return tokens;
}

std::string PeerHost(absl::string_view peer) {
  absl::string_view rest = peer;
  if (absl::ConsumePrefix(&rest, "ipv4:")) {
    return std::string(rest.substr(0, rest.rfind(':')));
  }
  if (absl::ConsumePrefix(&rest, "ipv6:")) {
    rest = rest.substr(0, rest.rfind(':'));  // "[::1]"
    absl::ConsumePrefix(&rest, "[");
    absl::ConsumeSuffix(&rest, "]");
    return std::string(rest);
  }
  return std::string(peer);
}

}  // namespace kvq::services
