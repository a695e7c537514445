"""Direct calls to prefill and decode workers, for tests and operators.

Clients normally go through the router (router.py). These call one worker:

    prefill = PrefillClient("127.0.0.1:50052")
    result = prefill.prefill([1, 403, 407, 262], kv="kivi2")
    result.keys            # the 16-byte keys of the blocks it committed
    prefill.stats()["blocks_pushed_total"]
    DecodeClient("127.0.0.1:50053").stats()["kv_budget_bytes"]
"""

import dataclasses

import grpc

from kvq_client import _stubs
from kvq_client.errors import KvqError
from kvq_client.tls import make_channel


@dataclasses.dataclass
class Prefilled:
    keys: list         # block keys of the handle, in order
    first_token: int
    model_id: str      # 16 hex digits
    response: object   # the whole kvq.v1.PrefillResponse


def _model_hex(model):
    """A kvq.v1.ModelId as its 16 hex digits."""
    return f"{model.fingerprint:016x}"


def _fields(msg):
    return {f.name: getattr(msg, f.name) for f in msg.DESCRIPTOR.fields}


class _Worker:
    _stub_name = ""

    def __init__(self, address, timeout=60.0, tls=None):
        if not isinstance(address, str) or not address:
            raise ValueError("worker address must be a non-empty 'host:port' string")
        self.address = address
        self.timeout = timeout
        self._pb = _stubs.load()
        self._channel = make_channel(address, tls)
        self._stub = getattr(self._pb.serving_pb2_grpc, self._stub_name)(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request):
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise KvqError.from_rpc_error(e, self.address) from None

    def stats(self):
        """The worker's WorkerStats as {field: value}."""
        stats = self._call("GetStats", self._pb.serving_pb2.StatsRequest())
        fields = _fields(stats)
        del fields["model"]
        fields["model_id"] = _model_hex(stats.model)
        return fields


class PrefillClient(_Worker):
    _stub_name = "PrefillStub"

    def prefill(self, tokens, kv="", model_id=""):
        """Prefills `tokens` (ids, BOS first) and commits their blocks to the store."""
        pb = self._pb.serving_pb2
        request = pb.PrefillRequest(tokens=list(tokens), cache=pb.CacheConfig(kv=kv),
                                    sampling=pb.SamplingParams(max_tokens=1))
        if model_id:
            try:
                request.model.fingerprint = int(model_id, 16)
            except ValueError:
                raise KvqError("INVALID_ARGUMENT",
                               f"model_id must be 16 hex digits, got {model_id!r}") from None
        reply = self._call("Prefill", request)
        return Prefilled(keys=[b.key for b in reply.handle.blocks],
                         first_token=reply.first_token,
                         model_id=_model_hex(reply.handle.model),
                         response=reply)


class DecodeClient(_Worker):
    _stub_name = "DecodeStub"
