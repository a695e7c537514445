"""The KV store's read-only operator calls (KvStore.Stats and Lookup).

    store = StoreClient("kvq-store-0.kvq-store:50051,kvq-store-1.kvq-store:50051")
    for address, stats in store.stats().items():
        print(address, stats["bytes"], "/", stats["capacity_bytes"])
    print(store.total_stats()["blocks"])
    result = store.lookup(keys)    # keys: 16-byte block keys (design section 4)
    print(result.present_prefix, result.present)

Each block lives on exactly one shard (rendezvous hashing in the workers), so
lookup asks every shard and a key is present when any shard holds it.

A store started with token files (docs/security.md) reads these calls from
anyone; pass ``token=`` (or ``token_file=``) to send a worker or operator
token as ``authorization: Bearer <token>`` metadata on every call.
"""

import dataclasses

import grpc

from kvq_client import _stubs
from kvq_client.errors import KvqError
from kvq_client.tls import make_channel

KEY_BYTES = 16


@dataclasses.dataclass
class LookupResult:
    present_prefix: int  # leading keys present (what a prefill worker can reuse)
    present: list        # per key, in order


def parse_addresses(addresses):
    """'a:1,b:2' or ['a:1', 'b:2'] -> ['a:1', 'b:2']; ValueError when empty or repeated."""
    if isinstance(addresses, str):
        addresses = addresses.split(",")
    out = [a.strip() for a in addresses if a and a.strip()]
    if not out:
        raise ValueError("no store address given")
    if len(set(out)) != len(out):
        raise ValueError(f"store addresses repeat: {out}")
    return out


def _key_bytes(key):
    if isinstance(key, str):
        try:
            key = bytes.fromhex(key)
        except ValueError:
            raise ValueError(f"block key {key!r} is not hex") from None
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        raise ValueError(f"a block key is {KEY_BYTES} bytes (or 32 hex digits), got {key!r}")
    return bytes(key)


def read_token_file(path):
    """The first token in a token file (one per line, '#' comments), as the store reads it."""
    with open(path, encoding="ascii") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                return line
    raise ValueError(f"token file {path} holds no token")


class StoreClient:
    """Connections to the store's shards. ``timeout`` (seconds) bounds each call;
    ``token`` or ``token_file``: a store token sent with every call; ``tls``: a
    kvq_client.Tls for a store serving TLS (with a certificate for mTLS)."""

    def __init__(self, addresses, timeout=10.0, token=None, token_file=None, tls=None):
        self.addresses = parse_addresses(addresses)
        self.timeout = timeout
        if token is None and token_file is not None:
            token = read_token_file(token_file)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._pb = _stubs.load()
        self._channels = [make_channel(a, tls) for a in self.addresses]
        self._stubs = [self._pb.kvstore_pb2_grpc.KvStoreStub(c) for c in self._channels]

    def close(self):
        for c in self._channels:
            c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, shard, method, request):
        try:
            return getattr(self._stubs[shard], method)(request, timeout=self.timeout,
                                                       metadata=self._metadata)
        except grpc.RpcError as e:
            raise KvqError.from_rpc_error(e, self.addresses[shard]) from None

    def stats(self):
        """{address: {field: value}} with every StoreStatsResponse field, per shard."""
        out = {}
        for shard, address in enumerate(self.addresses):
            msg = self._call(shard, "Stats", self._pb.kvstore_pb2.StoreStatsRequest())
            out[address] = {f.name: getattr(msg, f.name) for f in msg.DESCRIPTOR.fields}
        return out

    def total_stats(self):
        """The per-shard stats summed over the shards."""
        total = {}
        for stats in self.stats().values():
            for name, value in stats.items():
                total[name] = total.get(name, 0) + value
        return total

    def lookup(self, keys):
        """Which of `keys` (a chain's block keys, in order) some shard holds."""
        keys = [_key_bytes(k) for k in keys]
        present = [False] * len(keys)
        if keys:
            request = self._pb.kvstore_pb2.LookupRequest(keys=keys)
            for shard in range(len(self.addresses)):
                reply = self._call(shard, "Lookup", request)
                if len(reply.present) != len(keys):
                    raise KvqError("INTERNAL", f"Lookup answered {len(reply.present)} "
                                   f"presence bits for {len(keys)} keys",
                                   self.addresses[shard])
                present = [a or b for a, b in zip(present, reply.present)]
        prefix = 0
        while prefix < len(present) and present[prefix]:
            prefix += 1
        return LookupResult(present_prefix=prefix, present=present)
