"""The one exception kvq_client raises for a failed call."""

import grpc


class KvqError(Exception):
    """A kvq RPC that ended with a non-OK gRPC status.

    ``code`` is the canonical code's name ("INVALID_ARGUMENT", "UNAVAILABLE",
    "DEADLINE_EXCEEDED", ...), ``details`` the server's message and
    ``address`` the server that was called.
    """

    def __init__(self, code, details, address=""):
        self.code = code
        self.details = details
        self.address = address
        where = f" from {address}" if address else ""
        super().__init__(f"{code}{where}: {details}")

    @classmethod
    def from_rpc_error(cls, error, address=""):
        code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        return cls(code.name, details or "", address)
