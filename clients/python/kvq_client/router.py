"""Generation through kvq's router (Router.Generate, proto/serving.proto).

    client = RouterClient("127.0.0.1:50050")
    gen = client.generate("Once upon a time", steps=32, kv="kivi2")
    for chunk in gen:                  # streams as the decode worker produces
        print(chunk.text, end="", flush=True)
    print(gen.finish_reason, gen.tokens, gen.stats.bytes_pushed)

    gen = client.generate([1, 403, 407], steps=8, return_text=False).wait()
"""

import dataclasses
import time

import grpc

from kvq_client import _stubs
from kvq_client.errors import KvqError
from kvq_client.tls import make_channel


@dataclasses.dataclass
class Chunk:
    """One streamed message: the new token ids and, with return_text, their text."""
    tokens: list
    text: str


@dataclasses.dataclass
class KvStats:
    """Where the request's KV cache went (from the router's last message)."""
    blocks_total: int = 0
    blocks_reused: int = 0          # leading prompt blocks the store already held
    tokens_computed: int = 0        # prompt tokens the prefill worker ran
    bytes_pushed: int = 0           # prefill worker -> store
    bytes_fetched: int = 0          # store -> prefill worker (reused prefix)
    decode_bytes_fetched: int = 0   # store -> decode worker
    fp16_equivalent_bytes: int = 0  # the final cache held as fp16
    stored_bytes: int = 0           # the final cache as held

    @property
    def compression_ratio(self):
        """fp16 bytes over stored bytes (0 when nothing was stored)."""
        return self.fp16_equivalent_bytes / self.stored_bytes if self.stored_bytes else 0.0


def _check_prompt(prompt):
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (bytes, bytearray)):
        raise TypeError("prompt must be str or a sequence of token ids, not bytes")
    try:
        ids = list(prompt)
    except TypeError:
        raise TypeError(f"prompt must be str or a sequence of token ids, got {type(prompt)}")
    if not ids:
        raise ValueError("prompt token ids are empty (send at least BOS)")
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"token ids must be ints, got {i!r}")
        if not 0 <= i < 2**31:
            raise ValueError(f"token id {i} out of range")
    return ids


class Generation:
    """A streaming generation; iterate for Chunks, or wait() for the whole result.

    Attributes filled as the stream arrives: tokens (generated ids), text,
    prompt_tokens (as the router encoded a text prompt), prefill_worker,
    decode_worker, prefill_attempts, time_to_first_token (seconds, client
    side); at the end: finished, finish_reason ("length", "stop"), stats
    (KvStats). A failed call raises KvqError from the iteration or wait().
    """

    def __init__(self, call, address, sent):
        self._call = call
        self._address = address
        self._sent = sent
        self.tokens = []
        self.text = ""
        self.prompt_tokens = []
        self.prefill_worker = ""
        self.decode_worker = ""
        self.prefill_attempts = 0
        self.time_to_first_token = None
        self.finished = False
        self.finish_reason = ""
        self.stats = KvStats()

    def __iter__(self):
        try:
            for msg in self._call:
                yield self._absorb(msg)
        except grpc.RpcError as e:
            raise KvqError.from_rpc_error(e, self._address) from None
        if not self.finished:
            raise KvqError("UNKNOWN", "the router's stream ended without a finished message",
                           self._address)

    def wait(self):
        """Consumes the rest of the stream; returns self."""
        for _ in self:
            pass
        return self

    def cancel(self):
        """Cancels the call; the router cancels the workers' calls too."""
        self._call.cancel()

    def _absorb(self, msg):
        if msg.tokens and self.time_to_first_token is None:
            self.time_to_first_token = time.monotonic() - self._sent
        if msg.prompt_tokens:
            self.prompt_tokens = list(msg.prompt_tokens)
        if msg.prefill_worker:
            self.prefill_worker = msg.prefill_worker
            self.prefill_attempts = msg.prefill_attempts
        if msg.decode_worker:
            self.decode_worker = msg.decode_worker
        self.tokens.extend(msg.tokens)
        self.text += msg.text
        if msg.finished:
            self.finished = True
            self.finish_reason = msg.finish_reason
            p = msg.prefill
            self.stats = KvStats(
                blocks_total=p.blocks_total, blocks_reused=p.blocks_reused,
                tokens_computed=p.tokens_computed, bytes_pushed=p.bytes_pushed,
                bytes_fetched=p.bytes_fetched, decode_bytes_fetched=msg.decode_bytes_fetched,
                fp16_equivalent_bytes=msg.fp16_equivalent_bytes,
                stored_bytes=msg.stored_bytes)
        return Chunk(tokens=list(msg.tokens), text=msg.text)


class RouterClient:
    """A connection to a kvq router. ``timeout`` (seconds) bounds each call;
    ``tls``: a kvq_client.Tls for a router serving TLS."""

    def __init__(self, address, timeout=300.0, channel=None, tls=None):
        if not isinstance(address, str) or not address:
            raise ValueError("router address must be a non-empty 'host:port' string")
        self.address = address
        self.timeout = timeout
        self._pb = _stubs.load()
        self._channel = channel or make_channel(address, tls)
        self._stub = self._pb.serving_pb2_grpc.RouterStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def generate(self, prompt, steps, kv="", temperature=0.0, top_p=0.0, top_k=0, seed=0,
                 stop_token_ids=(), ignore_eos=False, return_text=True, timeout=None):
        """Starts Router.Generate and returns a Generation (nothing is read yet).

        prompt: text (the router encodes it with BOS) or a sequence of token
        ids; steps: new tokens at most (>= 1, the first one included); kv:
        the KV cache mode ("fp16", "kivi2", "kivi4,R=32", ...; "" = the
        workers' default). temperature 0 is greedy. Bad arguments raise
        ValueError/TypeError before anything is sent; the server's own
        checks come back as KvqError("INVALID_ARGUMENT", ...).
        """
        prompt = _check_prompt(prompt)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        if not isinstance(kv, str):
            raise TypeError(f"kv must be a string, got {kv!r}")
        if temperature < 0 or not 0 <= top_p <= 1 or top_k < 0:
            raise ValueError("need temperature >= 0, 0 <= top_p <= 1, top_k >= 0")
        pb = self._pb.serving_pb2
        request = pb.GenerateRequest(
            cache=pb.CacheConfig(kv=kv),
            sampling=pb.SamplingParams(
                temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
                max_tokens=steps, stop_token_ids=list(stop_token_ids), ignore_eos=ignore_eos),
            return_text=return_text)
        if isinstance(prompt, str):
            request.text = prompt
        else:
            request.tokens.ids.extend(prompt)
        sent = time.monotonic()
        call = self._stub.Generate(request, timeout=timeout or self.timeout)
        return Generation(call, self.address, sent)
