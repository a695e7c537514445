// Where a process's TLS certificates are (PEM files), as plain data: the
// store client's and the launcher's options carry it without depending on
// gRPC. services/common/tls.h turns it into gRPC credentials.
//
//   TlsOptions tls{.cert_file = "tls.crt", .key_file = "tls.key",
//                  .ca_file = "ca.crt", .require_client_cert = true};
#ifndef KVQ_SERVICES_COMMON_TLS_OPTIONS_H_
#define KVQ_SERVICES_COMMON_TLS_OPTIONS_H_

#include <string>

#include "absl/time/time.h"

namespace kvq::services {

struct TlsOptions {
  // This process's certificate chain and its private key. A server needs
  // both to serve TLS; a client presents them to a server that asks for a
  // client certificate (mTLS). Either both or neither.
  std::string cert_file;
  std::string key_file;
  // The CA certificates this process trusts: a client checks servers'
  // certificates against them, a server its clients' (mTLS). A client
  // without one uses the system's roots.
  std::string ca_file;
  // Server: refuse clients without a certificate signed by `ca_file` (mTLS).
  // Without it a server still verifies a certificate a client offers.
  bool require_client_cert = false;
  // Client: the name the server's certificate must hold (a SAN), when it is
  // not the host of the address dialled (e.g. a Kubernetes service name
  // behind an IP address).
  std::string server_name;
  // How often the files are read again, so that renewed certificates are
  // used without a restart (new connections get them). Zero: read once.
  absl::Duration refresh_interval = absl::Minutes(1);

  // A server serves TLS when it has a certificate.
  bool server_enabled() const { return !cert_file.empty(); }
  // A client speaks TLS when it has a CA or a certificate of its own.
  bool client_enabled() const { return !ca_file.empty() || !cert_file.empty(); }
};

}  // namespace kvq::services

#endif  // KVQ_SERVICES_COMMON_TLS_OPTIONS_H_
