// Who may do what on a kvq server: maps a call (its `authorization`
// metadata, its peer, the identity of its verified TLS client certificate)
// to a Caller with a Role, and checks a Role against what a method needs
// (docs/security.md).
//
//   KVQ_ASSIGN_OR_RETURN(Authorizer auth,
//                        Authorizer::FromTokenFiles(writer_file, admin_file));
//   // in a handler:
//   absl::StatusOr<Caller> caller = auth.Identify(*context);
//   if (caller.ok()) status = Authorizer::Require(*caller, Role::kWriter, "PutBlocks");
//
// Tokens travel as `authorization: Bearer <token>` metadata (use TLS on
// untrusted networks: a bearer token is only as secret as the channel).
// Over mTLS a client certificate can stand for a token: one whose common
// name or subject alternative name is in `writer_identities` makes a writer
// (services/common/tls.h verifies it against the server's CA first). An
// authorizer without tokens and identities is open: every caller is an
// admin, as before authorization existed (servers print a warning).
#ifndef KVQ_SERVICES_COMMON_AUTHORIZER_H_
#define KVQ_SERVICES_COMMON_AUTHORIZER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "grpcpp/server_context.h"

namespace kvq::services {

// Ordered: each role may do what the ones below it may.
enum class Role {
  kReader = 0,  // anyone who reaches the server: reads
  kWriter = 1,  // workers: writes (the store's PutBlocks, leases)
  kAdmin = 2,   // operators: everything (the store's DeleteBlocks)
};

// "reader", "writer", "admin".
absl::string_view RoleName(Role role);

struct Caller {
  Role role = Role::kReader;
  // Whether a credential was presented and accepted (false in open mode).
  bool authenticated = false;
  // "anonymous" without a credential; "worker" or "operator" for a token or
  // a certificate of a writer or admin identity (workers share one
  // principal, so a decode worker may renew a lease a prefill worker took).
  std::string principal = "anonymous";
  // The verified client certificate's common name (its first subject
  // alternative name without one); "" without a certificate.
  std::string identity;
  // Whether the role comes from `identity` rather than a token.
  bool by_certificate = false;
  // The peer's address without its port ("127.0.0.1", "::1"); "" if unknown.
  std::string peer_host;

  // What per-client limits count against: principal@peer_host. Tokens are
  // shared by all workers, so the host tells workers apart.
  std::string client() const { return principal + "@" + peer_host; }
};

class Authorizer {
 public:
  struct Options {
    std::vector<std::string> writer_tokens;  // callers with one are writers
    std::vector<std::string> admin_tokens;   // callers with one are admins
    // Client certificate identities (a common name or a subject alternative
    // name, exactly) of writers and of admins.
    std::vector<std::string> writer_identities;
    std::vector<std::string> admin_identities;
  };

  // INVALID_ARGUMENT for a token shorter than kMinTokenBytes, with bytes other
  // than printable ASCII, or in both lists; for an empty identity or one in
  // both lists.
  static absl::StatusOr<Authorizer> Create(Options options);
  // The same from token files (ReadTokenFile); an empty path adds no tokens.
  static absl::StatusOr<Authorizer> FromTokenFiles(const std::string& writer_token_file,
                                                   const std::string& admin_token_file);
  // No tokens: every caller is an admin.
  static Authorizer Open() { return Authorizer(Options{}); }
  // A copy that also maps these certificate identities to roles.
  absl::StatusOr<Authorizer> WithIdentities(std::vector<std::string> writers,
                                            std::vector<std::string> admins) const;

  static constexpr size_t kMinTokenBytes = 16;

  bool open() const {
    return options_.writer_tokens.empty() && options_.admin_tokens.empty() &&
           options_.writer_identities.empty() && options_.admin_identities.empty();
  }

  // The caller of a call with these `authorization` metadata values (usually
  // zero or one) from `peer` (gRPC's "ipv4:1.2.3.4:5678" form), whose
  // verified client certificate has these `identities` (common name first,
  // then subject alternative names; empty without a certificate).
  // UNAUTHENTICATED for a value that is not "Bearer <token>", an unknown
  // token, or several values. A token decides the role when one is sent;
  // else a certificate identity in a list; else a reader (an admin when
  // open). Tokens are compared in constant time.
  absl::StatusOr<Caller> Identify(absl::Span<const absl::string_view> authorization,
                                  absl::string_view peer,
                                  absl::Span<const std::string> identities = {}) const;
  // The same for a gRPC server call (identities from its TLS auth context).
  absl::StatusOr<Caller> Identify(const grpc::ServerContextBase& context) const;

  // OK if `caller` may do what needs `needed`; `what` names it in the error:
  // UNAUTHENTICATED when the caller presented no credential, PERMISSION_DENIED
  // when its credential is of a lower role.
  static absl::Status Require(const Caller& caller, Role needed, absl::string_view what);

 private:
  explicit Authorizer(Options options) : options_(std::move(options)) {}

  Options options_;
};

// The tokens in a file: one per line; blank lines and lines starting with
// '#' are skipped; surrounding whitespace is trimmed. Several tokens let a
// deployment rotate them. INVALID_ARGUMENT (naming `path`) if the file cannot
// be read or holds no token.
absl::StatusOr<std::vector<std::string>> ReadTokenFile(const std::string& path);

// The identities of a call's verified TLS client certificate: its common
// name, then its subject alternative names; empty without TLS or a
// certificate.
std::vector<std::string> PeerIdentities(const grpc::ServerContextBase& context);

// "ipv4:127.0.0.1:5000" -> "127.0.0.1", "ipv6:[::1]:5000" -> "::1",
// "unix:/path" -> "unix:/path"; "" for "".
std::string PeerHost(absl::string_view peer);

}  // namespace kvq::services

#endif  // KVQ_SERVICES_COMMON_AUTHORIZER_H_
