// TLS and mTLS for kvq's gRPC servers and clients, from PEM files
// (TlsOptions, services/common/tls_options.h). Every server takes its
// credentials from ServerCredentials (ServerOptions::credentials) and every
// client its channels from a ChannelSecurity: one way to set up TLS.
//
//   KVQ_ASSIGN_OR_RETURN(auto creds, ServerCredentials(tls));   // null: plaintext
//   KVQ_ASSIGN_OR_RETURN(ChannelSecurity client, ChannelSecurity::Create(tls));
//   auto stub = v1::Router::NewStub(client.CreateChannel("10.0.0.7:50050"));
//
// The files are checked when the credentials are made (readable, PEM, the
// key matches the certificate, not expired): INVALID_ARGUMENT naming the
// file. They are read again every `refresh_interval` (gRPC's
// FileWatcherCertificateProvider), so renewed certificates serve new
// connections without a restart; a renewal that cannot be read or does not
// match is only logged by gRPC, and new handshakes fail until it is fixed.
#ifndef KVQ_SERVICES_COMMON_TLS_H_
#define KVQ_SERVICES_COMMON_TLS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "services/common/tls_options.h"

namespace kvq::services {

// Credentials for a server: TLS when `tls` has a certificate (asking clients
// for theirs when it has a CA, requiring one with require_client_cert);
// null (plaintext) without one. INVALID_ARGUMENT for a bad file, a
// certificate without a key or the reverse, or require_client_cert without
// a certificate and a CA.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const TlsOptions& tls);

// How a client dials: its credentials (TLS when `tls` has a CA or a
// certificate, else plaintext) and the name servers' certificates must hold.
class ChannelSecurity {
 public:
  // INVALID_ARGUMENT for a bad file or a certificate without a key.
  static absl::StatusOr<ChannelSecurity> Create(const TlsOptions& tls);
  // Plaintext.
  ChannelSecurity();

  bool tls() const { return tls_; }
  const std::shared_ptr<grpc::ChannelCredentials>& credentials() const {
    return credentials_;
  }
  // Adds the server name override (TlsOptions::server_name) to `args`.
  void Apply(grpc::ChannelArguments* args) const;
  // A channel to `address` ("host:port") with these credentials and `args`.
  std::shared_ptr<grpc::Channel> CreateChannel(
      const std::string& address,
      grpc::ChannelArguments args = grpc::ChannelArguments()) const;

 private:
  bool tls_ = false;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::string server_name_;
};

// Checks the files `tls` names as ServerCredentials (`server`) or
// ChannelSecurity would; OK when TLS is off.
absl::Status CheckTlsFiles(const TlsOptions& tls, bool server);

}  // namespace kvq::services

#endif  // KVQ_SERVICES_COMMON_TLS_H_
