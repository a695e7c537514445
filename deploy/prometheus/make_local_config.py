#!/usr/bin/env python3
"""Writes a Prometheus setup for kvq services running on loopback.

The local launcher starts every service on a free port, so the scrape
targets are only known at run time. This copies prometheus-local.yml and the
alert rules into OUT_DIR and writes OUT_DIR/targets/kvq-local.json with one
target per --target COMPONENT=HOST:PORT (the services' metrics ports):

  deploy/prometheus/make_local_config.py --out /tmp/prom \\
      --target store=127.0.0.1:9101 --target prefill=127.0.0.1:9102 \\
      --target decode=127.0.0.1:9103 --target router=127.0.0.1:9104
  prometheus --config.file=/tmp/prom/prometheus.yml \\
      --storage.tsdb.path=/tmp/prom/data --web.listen-address=127.0.0.1:9190

Run again with other targets to rewrite the targets file; a running
Prometheus picks the change up within the file_sd refresh interval.
"""

import argparse
import json
import pathlib
import re
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent
COMPONENTS = ("store", "prefill", "decode", "router")
TARGET_RE = re.compile(r"(\w+)=([A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})")


def parse_target(text):
    m = TARGET_RE.fullmatch(text)
    if not m:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected COMPONENT=HOST:PORT, e.g. store=127.0.0.1:9101")
    component, host, port = m.group(1), m.group(2), int(m.group(3))
    if component not in COMPONENTS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: component must be one of {', '.join(COMPONENTS)}")
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: port out of range")
    return component, f"{host}:{port}"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=pathlib.Path,
                        help="directory to write prometheus.yml, rules/ and targets/ into")
    parser.add_argument("--target", action="append", type=parse_target, default=[],
                        metavar="COMPONENT=HOST:PORT", help="a service's metrics endpoint")
    args = parser.parse_args()
    if not args.target:
        parser.error("give at least one --target")

    out = args.out
    (out / "rules").mkdir(parents=True, exist_ok=True)
    (out / "targets").mkdir(exist_ok=True)
    shutil.copyfile(HERE / "prometheus-local.yml", out / "prometheus.yml")
    for rule in sorted((HERE / "rules").glob("*.yml")):
        shutil.copyfile(rule, out / "rules" / rule.name)

    groups = {}
    for component, address in args.target:
        groups.setdefault(component, []).append(address)
    targets = [{"targets": addrs, "labels": {"component": c}} for c, addrs in groups.items()]
    # Write then rename, so Prometheus never reads a half-written file.
    tmp = out / "targets" / ".kvq-local.json.tmp"
    tmp.write_text(json.dumps(targets, indent=2) + "\n")
    tmp.replace(out / "targets" / "kvq-local.json")
    print(f"wrote {out / 'prometheus.yml'} with {len(args.target)} targets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
