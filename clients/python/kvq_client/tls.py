"""TLS and mTLS for the Python client, as `kvq serve ... --tls_*` sets them up
(docs/security.md).

    from kvq_client import RouterClient, Tls
    tls = Tls(ca_file="ca.pem", cert_file="client.pem", key_file="client.key")
    with RouterClient("kvq-router.kvq.svc:50050", tls=tls) as client: ...

``ca_file``: the CA the servers' certificates are checked against (None: the
system's roots); ``cert_file``/``key_file``: this client's certificate for
servers that require one (mTLS); ``server_name``: the name the server's
certificate must hold when it is not the host dialled.
"""

import dataclasses

import grpc


def _read(path, what):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"cannot read TLS {what} file {path}: {e.strerror}") from None
    if b"-----BEGIN" not in data:
        raise ValueError(f"TLS {what} file {path} holds no PEM data")
    return data


@dataclasses.dataclass(frozen=True)
class Tls:
    ca_file: str = None
    cert_file: str = None
    key_file: str = None
    server_name: str = None

    def credentials(self):
        """grpc.ssl_channel_credentials from the files; ValueError for a bad file
        or a certificate without its key (or the reverse)."""
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("a TLS client certificate needs its key and the reverse "
                             "(cert_file and key_file)")
        root = _read(self.ca_file, "CA") if self.ca_file else None
        cert = _read(self.cert_file, "certificate") if self.cert_file else None
        key = _read(self.key_file, "private key") if self.key_file else None
        return grpc.ssl_channel_credentials(root_certificates=root, private_key=key,
                                            certificate_chain=cert)

    def options(self):
        if self.server_name:
            return [("grpc.ssl_target_name_override", self.server_name)]
        return []


def make_channel(address, tls=None, options=()):
    """A channel to ``address``: plaintext without ``tls`` (a Tls), TLS with it."""
    if tls is None:
        return grpc.insecure_channel(address, options=list(options))
    return grpc.secure_channel(address, tls.credentials(),
                               options=list(options) + tls.options())
