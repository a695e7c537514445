"""The standard gRPC health check (grpc.health.v1.Health/Check) of a kvq service.

    check_health("127.0.0.1:50050")            # -> "SERVING"
    wait_healthy("127.0.0.1:50050", timeout=20)

The two messages have one field each and are encoded here by hand, so no
grpcio-health-checking package is needed.
"""

import time

import grpc

from kvq_client.errors import KvqError
from kvq_client.tls import make_channel

_METHOD = "/grpc.health.v1.Health/Check"
_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_request(service):
    """HealthCheckRequest{service}: field 1, length-delimited."""
    data = service.encode()
    return (b"\x0a" + _varint(len(data)) + data) if data else b""


def decode_response(data):
    """HealthCheckResponse -> status name; ValueError when malformed."""
    status, i = 0, 0
    while i < len(data):
        tag = data[i]
        i += 1
        if tag & 7 != 0:  # kvq's servers send only the varint field 1
            raise ValueError(f"unexpected wire type in health response: {data!r}")
        value, shift = 0, 0
        while True:
            if i >= len(data) or shift > 63:
                raise ValueError(f"truncated health response: {data!r}")
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if tag >> 3 == 1:
            status = value
    return _STATUS.get(status, f"UNKNOWN({status})")


def check_health(address, service="", timeout=2.0, tls=None):
    """The serving status of `service` ("" = the whole server) at `address`.

    Returns "SERVING", "NOT_SERVING", ...; raises KvqError when the call fails
    (UNAVAILABLE for nothing listening, DEADLINE_EXCEEDED, ...).
    """
    with make_channel(address, tls) as channel:
        check = channel.unary_unary(_METHOD, request_serializer=None,
                                    response_deserializer=None)
        try:
            reply = check(encode_request(service), timeout=timeout)
        except grpc.RpcError as e:
            raise KvqError.from_rpc_error(e, address) from None
    try:
        return decode_response(reply)
    except ValueError as e:
        raise KvqError("INTERNAL", str(e), address) from None


def wait_healthy(address, timeout=20.0, tls=None):
    """Polls check_health until SERVING; raises the last KvqError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = check_health(address, timeout=min(2.0, timeout), tls=tls)
            if status == "SERVING":
                return
            last = KvqError("UNAVAILABLE", f"health status {status}", address)
        except KvqError as e:
            last = e
        if time.monotonic() >= deadline:
            raise last
        time.sleep(0.05)
