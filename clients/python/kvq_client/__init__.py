"""A Python client for kvq (proto/serving.proto, proto/kvstore.proto).

    from kvq_client import RouterClient
    with RouterClient("127.0.0.1:50050") as client:
        for chunk in client.generate("Once upon a time", steps=32, kv="kivi2"):
            print(chunk.text, end="", flush=True)

Also StoreClient (store stats and prefix lookup over every shard),
PrefillClient/DecodeClient (one worker), check_health/wait_healthy, TLS and
mTLS (every client takes ``tls=Tls(ca_file=..., cert_file=..., key_file=...)``), and a
command line: `python3 -m kvq_client --help`. Failed calls raise KvqError.
The gRPC stubs are generated from proto/ by python3-grpc-tools (_stubs.py).
"""

from kvq_client.errors import KvqError
from kvq_client.health import check_health, wait_healthy
from kvq_client.router import Chunk, Generation, KvStats, RouterClient
from kvq_client.store import LookupResult, StoreClient
from kvq_client.tls import Tls, make_channel
from kvq_client.workers import DecodeClient, PrefillClient, Prefilled

__all__ = [
    "Chunk", "DecodeClient", "Generation", "KvStats", "KvqError", "LookupResult",
    "PrefillClient", "Prefilled", "RouterClient", "StoreClient", "Tls", "check_health",
    "make_channel", "wait_healthy",
]
