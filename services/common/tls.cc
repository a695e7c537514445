#include "services/common/tls.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace kvq::services {
namespace {

namespace exp = grpc::experimental;

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", what, " file ", path, ": ", std::strerror(errno)));
  }
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;
using Cert = std::unique_ptr<X509, X509Deleter>;
using Key = std::unique_ptr<EVP_PKEY, KeyDeleter>;

Bio MemBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The certificates in `pem`, in order; INVALID_ARGUMENT without one.
absl::StatusOr<std::vector<Cert>> ParseCerts(const std::string& pem,
                                             const std::string& path, const char* what) {
  std::vector<Cert> certs;
  Bio bio = MemBio(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(x);
  }
  if (certs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " file ", path, " holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
  }
  return certs;
}

absl::Status CheckNotExpired(const Cert& cert, const std::string& path,
                             const char* what) {
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " in ", path, " has expired"));
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " in ", path, " is not valid yet"));
  }
  return absl::OkStatus();
}

struct Pems {
  std::string cert, key, ca;
};

// Reads and checks the files; empty strings for files not given.
absl::StatusOr<Pems> LoadPems(const TlsOptions& tls) {
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        tls.cert_file.empty()
            ? "a TLS private key was given without its certificate (--tls_cert)"
            : "a TLS certificate was given without its private key (--tls_key)");
  }
  Pems pems;
  if (!tls.cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadPem(tls.cert_file, "TLS certificate");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem(tls.key_file, "TLS private key");
    if (!key.ok()) return key.status();
    absl::StatusOr<std::vector<Cert>> chain =
        ParseCerts(*cert, tls.cert_file, "TLS certificate");
    if (!chain.ok()) return chain.status();
    if (absl::Status s = CheckNotExpired((*chain)[0], tls.cert_file, "the certificate");
        !s.ok()) {
      return s;
    }
    Bio bio = MemBio(*key);
    Key pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (pkey == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("TLS private key file ", tls.key_file,
                       " holds no unencrypted PEM private key"));
    }
    if (X509_check_private_key((*chain)[0].get(), pkey.get()) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("the private key in ", tls.key_file,
                       " does not belong to the certificate in ", tls.cert_file));
    }
    pems.cert = std::move(*cert);
    pems.key = std::move(*key);
  }
  if (!tls.ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(tls.ca_file, "TLS CA");
    if (!ca.ok()) return ca.status();
    absl::StatusOr<std::vector<Cert>> roots = ParseCerts(*ca, tls.ca_file, "TLS CA");
    if (!roots.ok()) return roots.status();
    pems.ca = std::move(*ca);
  }
  return pems;
}

// Watches the files (or serves what was read once, without a refresh).
std::shared_ptr<exp::CertificateProviderInterface> Provider(const TlsOptions& tls,
                                                            const Pems& pems) {
  const int64_t seconds = absl::ToInt64Seconds(tls.refresh_interval);
  if (seconds > 0) {
    return std::make_shared<exp::FileWatcherCertificateProvider>(
        tls.key_file, tls.cert_file, tls.ca_file, static_cast<unsigned>(seconds));
  }
  std::vector<exp::IdentityKeyCertPair> identity;
  if (!pems.cert.empty()) {
    identity.push_back({.private_key = pems.key, .certificate_chain = pems.cert});
  }
  return std::make_shared<exp::StaticDataCertificateProvider>(pems.ca, identity);
}

}  // namespace

absl::Status CheckTlsFiles(const TlsOptions& tls, bool server) {
  if (server) {
    if (tls.require_client_cert && (tls.cert_file.empty() || tls.ca_file.empty())) {
      return absl::InvalidArgumentError(
          "requiring client certificates (--tls_client_auth) needs a server "
          "certificate (--tls_cert, --tls_key) and the clients' CA (--tls_ca)");
    }
    if (!tls.server_enabled()) return absl::OkStatus();
  } else if (!tls.client_enabled()) {
    return absl::OkStatus();
  }
  return LoadPems(tls).status();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const TlsOptions& tls) {
  if (absl::Status s = CheckTlsFiles(tls, /*server=*/true); !s.ok()) return s;
  if (!tls.server_enabled()) return std::shared_ptr<grpc::ServerCredentials>();
  absl::StatusOr<Pems> pems = LoadPems(tls);
  if (!pems.ok()) return pems.status();
  exp::TlsServerCredentialsOptions options(Provider(tls, *pems));
  options.watch_identity_key_cert_pairs();
  if (!tls.ca_file.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(
        tls.require_client_cert
            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  std::shared_ptr<grpc::ServerCredentials> creds = exp::TlsServerCredentials(options);
  if (creds == nullptr) {
    return absl::InvalidArgumentError("gRPC refused the TLS server options");
  }
  return creds;
}

ChannelSecurity::ChannelSecurity() : credentials_(grpc::InsecureChannelCredentials()) {}

absl::StatusOr<ChannelSecurity> ChannelSecurity::Create(const TlsOptions& tls) {
  ChannelSecurity security;
  if (!tls.client_enabled()) return security;
  absl::StatusOr<Pems> pems = LoadPems(tls);
  if (!pems.ok()) return pems.status();
  exp::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(Provider(tls, *pems));
  if (!tls.ca_file.empty()) options.watch_root_certs();
  if (!tls.cert_file.empty()) options.watch_identity_key_cert_pairs();
  security.credentials_ = exp::TlsCredentials(options);
  if (security.credentials_ == nullptr) {
    return absl::InvalidArgumentError("gRPC refused the TLS client options");
  }
  security.tls_ = true;
  security.server_name_ = tls.server_name;
  return security;
}

void ChannelSecurity::Apply(grpc::ChannelArguments* args) const {
  if (tls_ && !server_name_.empty()) args->SetSslTargetNameOverride(server_name_);
}

std::shared_ptr<grpc::Channel> ChannelSecurity::CreateChannel(
    const std::string& address, grpc::ChannelArguments args) const {
  Apply(&args);
  return grpc::CreateCustomChannel(address, credentials_, args);
}

}  // namespace kvq::services
