#include "services/launcher/cluster_credentials.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kvq::launcher {
namespace {

// Runs `openssl args...` with its output in `log`; UNAVAILABLE with the
// output when it fails.
absl::Status RunOpenssl(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> c_argv;
    for (std::string& a : argv) c_argv.push_back(a.data());
    c_argv.push_back(nullptr);
    execvp("openssl", c_argv.data());
    std::fprintf(stderr, "cannot run openssl (install the openssl package)\n");
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  std::ifstream in(log);
  std::stringstream out;
  out << in.rdbuf();
  return absl::UnavailableError(
      absl::StrCat("`", absl::StrJoin(argv, " "), "` failed: ", out.str()));
}

absl::StatusOr<std::string> RandomToken() {
  std::ifstream in("/dev/urandom", std::ios::binary);
  char bytes[32];
  if (!in.read(bytes, sizeof(bytes))) {
    return absl::InternalError("cannot read /dev/urandom");
  }
  return absl::BytesToHexString(absl::string_view(bytes, sizeof(bytes)));
}

absl::Status WriteSecret(const std::string& path, const std::string& contents) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot write ", path));
  const std::string line = contents + "\n";
  const bool ok =
      write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  close(fd);
  return ok ? absl::OkStatus() : absl::InternalError(absl::StrCat("cannot write ", path));
}

}  // namespace

std::vector<std::string> ClusterCredentials::Flags(const services::TlsOptions& tls) {
  std::vector<std::string> flags = {absl::StrCat("--tls_cert=", tls.cert_file),
                                    absl::StrCat("--tls_key=", tls.key_file),
                                    absl::StrCat("--tls_ca=", tls.ca_file)};
  if (tls.require_client_cert) flags.push_back("--tls_client_auth");
  if (!tls.server_name.empty()) flags.push_back("--tls_server_name=" + tls.server_name);
  return flags;
}

absl::StatusOr<ClusterCredentials> MakeClusterCredentials(const std::string& dir) {
  const std::string log = dir + "/openssl.log";
  ClusterCredentials c;
  c.ca_file = dir + "/ca.pem";
  const std::string ca_key = dir + "/ca.key";
  // EC P-256 keys: fast to make, and every TLS stack speaks them.
  const std::vector<std::string> new_key = {"-newkey", "ec", "-pkeyopt",
                                            "ec_paramgen_curve:prime256v1", "-nodes"};
  std::vector<std::string> args = {"req", "-x509"};
  args.insert(args.end(), new_key.begin(), new_key.end());
  args.insert(args.end(), {"-keyout", ca_key, "-out", c.ca_file, "-days", "7", "-subj",
                           "/CN=kvq-local-ca"});
  if (absl::Status s = RunOpenssl(args, log); !s.ok()) return s;
  const std::string ext = dir + "/cert.ext";
  {
    std::ofstream out(ext);
    out << "basicConstraints=CA:FALSE\n"
           "keyUsage=digitalSignature,keyEncipherment\n"
           "extendedKeyUsage=serverAuth,clientAuth\n"
           "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", ext));
  }
  auto make = [&](const std::string& name, services::TlsOptions* tls) -> absl::Status {
    tls->cert_file = absl::StrCat(dir, "/", name, ".pem");
    tls->key_file = absl::StrCat(dir, "/", name, ".key");
    tls->ca_file = c.ca_file;
    tls->require_client_cert = true;
    const std::string csr = absl::StrCat(dir, "/", name, ".csr");
    std::vector<std::string> req = {"req"};
    req.insert(req.end(), new_key.begin(), new_key.end());
    req.insert(req.end(), {"-keyout", tls->key_file, "-out", csr, "-subj",
                           absl::StrCat("/CN=", name)});
    if (absl::Status s = RunOpenssl(req, log); !s.ok()) return s;
    return RunOpenssl(
        {"x509", "-req", "-in", csr, "-CA", c.ca_file, "-CAkey", ca_key,
         "-CAcreateserial", "-out", tls->cert_file, "-days", "7", "-extfile", ext},
        log);
  };
  for (auto [name, tls] :
       {std::pair{"kvq-store", &c.store}, std::pair{"kvq-worker", &c.worker},
        std::pair{"kvq-router", &c.router}, std::pair{"kvq-client", &c.client}}) {
    if (absl::Status s = make(name, tls); !s.ok()) return s;
  }
  absl::StatusOr<std::string> writer = RandomToken();
  if (!writer.ok()) return writer.status();
  absl::StatusOr<std::string> admin = RandomToken();
  if (!admin.ok()) return admin.status();
  c.writer_token = *writer;
  c.admin_token = *admin;
  c.writer_token_file = dir + "/writer.token";
  c.admin_token_file = dir + "/admin.token";
  if (absl::Status s = WriteSecret(c.writer_token_file, c.writer_token); !s.ok())
    return s;
  if (absl::Status s = WriteSecret(c.admin_token_file, c.admin_token); !s.ok()) return s;
  return c;
}

}  // namespace kvq::launcher
