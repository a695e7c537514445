"""kvq's Python command line: generate through the router, store stats, health.

    python3 -m kvq_client generate --router 127.0.0.1:50050 --prompt "Once upon a time" \\
        --steps 64 --kv kivi2
    python3 -m kvq_client generate --router ADDR --tokens 1,403,407 --steps 8 --json
    python3 -m kvq_client store-stats --store HOST:PORT[,HOST:PORT...] [--json]
    python3 -m kvq_client store-lookup --store HOST:PORT KEY_HEX...
    python3 -m kvq_client health HOST:PORT...

`generate` streams the text to stdout as it arrives and a summary to stderr
(time to first token, KV bytes moved, compression); with --json it prints one
JSON object instead. Exit status: 0 ok, 1 a call failed, 2 bad usage.
"""

import argparse
import json
import sys

from kvq_client.errors import KvqError
from kvq_client.health import check_health
from kvq_client.router import RouterClient
from kvq_client.store import StoreClient
from kvq_client.tls import Tls


def _token_list(text):
    try:
        ids = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated token ids")
    if not ids:
        raise argparse.ArgumentTypeError("no token ids")
    return ids


def _positive_int(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _tls(args):
    """A Tls from --tls_ca/--tls_cert/--tls_key/--tls_server_name; None without."""
    if not (args.tls_ca or args.tls_cert or args.tls_key):
        return None
    return Tls(ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key,
               server_name=args.tls_server_name)


def _add_tls(p):
    p.add_argument("--tls_ca", help="PEM CA to check servers against (speaks TLS)")
    p.add_argument("--tls_cert", help="PEM client certificate (mTLS)")
    p.add_argument("--tls_key", help="PEM key of --tls_cert")
    p.add_argument("--tls_server_name", help="name the server certificate must hold")


def _generate(args, out, err):
    prompt = args.tokens if args.tokens is not None else args.prompt
    with RouterClient(args.router, timeout=args.timeout, tls=_tls(args)) as client:
        gen = client.generate(prompt, steps=args.steps, kv=args.kv,
                              temperature=args.temperature, top_p=args.top_p,
                              seed=args.seed, return_text=True)
        if not args.json and isinstance(prompt, str):
            out.write(prompt)
        for chunk in gen:
            if not args.json:
                out.write(chunk.text)
                out.flush()
    s = gen.stats
    if args.json:
        out.write(json.dumps({
            "text": gen.text, "tokens": gen.tokens, "prompt_tokens": gen.prompt_tokens,
            "finish_reason": gen.finish_reason, "kv": args.kv,
            "time_to_first_token_seconds": gen.time_to_first_token,
            "prefill_worker": gen.prefill_worker, "decode_worker": gen.decode_worker,
            "prefill_attempts": gen.prefill_attempts,
            "kv_stats": dict(vars(s), compression_ratio=s.compression_ratio),
        }) + "\n")
        return 0
    out.write("\n")
    ttft = gen.time_to_first_token
    err.write(f"tokens generated:    {len(gen.tokens)} ({gen.finish_reason})\n")
    if ttft is not None:
        err.write(f"time to first token: {ttft * 1e3:.2f} ms\n")
    err.write(f"workers:             prefill {gen.prefill_worker} "
              f"({gen.prefill_attempts} attempt(s)), decode {gen.decode_worker or '-'}\n")
    err.write(f"KV bytes moved:      prefill -> store {s.bytes_pushed}, "
              f"store -> decode {s.decode_bytes_fetched} "
              f"({s.blocks_reused}/{s.blocks_total} prompt blocks reused)\n")
    if s.stored_bytes:
        err.write(f"compression vs fp16: {s.compression_ratio:.2f}x "
                  f"({s.fp16_equivalent_bytes} -> {s.stored_bytes} bytes)\n")
    return 0


def _store_stats(args, out, err):
    with StoreClient(args.store, timeout=args.timeout, tls=_tls(args)) as store:
        per_shard = store.stats()
    if args.json:
        for address, stats in per_shard.items():
            out.write(json.dumps(dict(stats, address=address)) + "\n")
        return 0
    for address, s in per_shard.items():
        used = 100.0 * s["bytes"] / s["capacity_bytes"] if s["capacity_bytes"] else 0.0
        out.write(f"{address}: {s['bytes']} / {s['capacity_bytes']} bytes ({used:.1f}%), "
                  f"{s['blocks']} blocks, {s['leased_blocks']} leased, "
                  f"puts {s['puts']} (duplicate {s['duplicate_puts']}, rejected "
                  f"{s['rejected_puts']}), hits {s['hits']}, misses {s['misses']}, "
                  f"evictions {s['evictions']}\n")
    return 0


def _store_lookup(args, out, err):
    with StoreClient(args.store, timeout=args.timeout, tls=_tls(args)) as store:
        result = store.lookup(args.keys)
    if args.json:
        out.write(json.dumps(vars(result)) + "\n")
    else:
        out.write(f"{result.present_prefix} of {len(args.keys)} leading blocks present\n")
        for key, present in zip(args.keys, result.present):
            out.write(f"  {key} {'present' if present else 'missing'}\n")
    return 0


def _health(args, out, err):
    bad = 0
    for address in args.addresses:
        try:
            status = check_health(address, timeout=args.timeout, tls=_tls(args))
        except KvqError as e:
            status = f"{e.code}: {e.details}"
        out.write(f"{address}: {status}\n")
        bad += status != "SERVING"
    return 1 if bad else 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python3 -m kvq_client", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="stream a generation from the router")
    g.add_argument("--router", required=True, help="router HOST:PORT")
    p = g.add_mutually_exclusive_group(required=True)
    p.add_argument("--prompt", help="prompt text (the router adds BOS)")
    p.add_argument("--tokens", type=_token_list, help="prompt as comma-separated token ids")
    g.add_argument("--steps", type=_positive_int, default=64, help="new tokens at most")
    g.add_argument("--kv", default="", help="KV cache mode (fp16, kivi2, kivi4,R=32, ...; "
                   "empty: the workers' default)")
    g.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    g.add_argument("--top_p", type=float, default=0.0, help="nucleus sampling; 0 or 1: off")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--timeout", type=float, default=300.0, help="seconds for the call")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    _add_tls(g)
    g.set_defaults(run=_generate)

    s = sub.add_parser("store-stats", help="usage and counters of every store shard")
    s.add_argument("--store", required=True, help="comma-separated shard HOST:PORTs")
    s.add_argument("--timeout", type=float, default=10.0)
    s.add_argument("--json", action="store_true", help="one JSON object per shard")
    _add_tls(s)
    s.set_defaults(run=_store_stats)

    lk = sub.add_parser("store-lookup", help="which block keys the store holds")
    lk.add_argument("--store", required=True, help="comma-separated shard HOST:PORTs")
    lk.add_argument("--timeout", type=float, default=10.0)
    lk.add_argument("--json", action="store_true")
    lk.add_argument("keys", nargs="+", help="block keys, 32 hex digits each, in chain order")
    _add_tls(lk)
    lk.set_defaults(run=_store_lookup)

    h = sub.add_parser("health", help="gRPC health check of kvq services")
    h.add_argument("addresses", nargs="+", metavar="HOST:PORT")
    h.add_argument("--timeout", type=float, default=2.0)
    _add_tls(h)
    h.set_defaults(run=_health)
    return parser


def main(argv=None, out=sys.stdout, err=sys.stderr):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args, out, err)
    except (ValueError, TypeError) as e:
        err.write(f"kvq_client {args.command}: {e}\n")
        return 2
    except KvqError as e:
        err.write(f"kvq_client {args.command}: {e}\n")
        return 1
    except RuntimeError as e:  # no stubs
        err.write(f"kvq_client: {e}\n")
        return 1
