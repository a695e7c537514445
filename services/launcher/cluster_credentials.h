// Credentials for a locked-down local cluster (`kvq demo --tls`, the
// launcher's ClusterOptions::tls, tests): a temporary CA made with the
// `openssl` tool, a certificate per role signed by it (SAN 127.0.0.1 and
// localhost, usable as server and client certificate), and worker and
// operator tokens for the store (docs/security.md).
//
//   KVQ_ASSIGN_OR_RETURN(ClusterCredentials c, MakeClusterCredentials(dir));
//   // c.worker: --tls_cert/--tls_key/--tls_ca of the prefill/decode workers
#ifndef KVQ_SERVICES_LAUNCHER_CLUSTER_CREDENTIALS_H_
#define KVQ_SERVICES_LAUNCHER_CLUSTER_CREDENTIALS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/common/tls_options.h"

namespace kvq::launcher {

struct ClusterCredentials {
  std::string ca_file;  // the CA every certificate below is signed by
  // Certificates (with ca_file and require_client_cert set) and their
  // common names: "kvq-store", "kvq-worker", "kvq-router", "kvq-client".
  services::TlsOptions store, worker, router, client;
  // The common name of `worker`, the store's --writer_identities.
  std::string worker_identity = "kvq-worker";
  // Token files (one token each) for the store's --writer_token_file and
  // --admin_token_file, and the tokens.
  std::string writer_token_file, admin_token_file;
  std::string writer_token, admin_token;

  // The --tls_* flags of a process using `tls`.
  static std::vector<std::string> Flags(const services::TlsOptions& tls);
};

// Writes the CA, the certificates, their keys and the tokens into `dir`
// (which must exist; the caller removes it). UNAVAILABLE naming the command
// and its output when `openssl` is missing or fails.
absl::StatusOr<ClusterCredentials> MakeClusterCredentials(const std::string& dir);

}  // namespace kvq::launcher

#endif  // KVQ_SERVICES_LAUNCHER_CLUSTER_CREDENTIALS_H_
