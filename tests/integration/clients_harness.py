"""Shared pieces of the Python end-to-end tests (run under Bazel by sh_test).

LocalCluster starts a real kvq cluster on loopback through the
`clients_cluster` helper (the launcher library: store, prefill, decode and
router, each a `kvq serve` process with /metrics on a free port) and stops
it, also when a test fails; every process a test starts dies with it.

    with LocalCluster() as cluster:
        cluster.info["router"], cluster.info["metrics"]["store"], ...
"""

import ctypes
import json
import os
import pathlib
import select
import signal
import socket
import subprocess
import sys
import time

WORKSPACE = "kvq"
_PR_SET_PDEATHSIG = 1


def runfile(path):
    """A file of the test's runfiles, e.g. runfile('kvq/kvq') or 'shared/models/...'."""
    for var in ("TEST_SRCDIR", "RUNFILES_DIR"):
        root = os.environ.get(var)
        if root and (pathlib.Path(root) / path).exists():
            return pathlib.Path(root) / path
    raise FileNotFoundError(f"{path} is not in the runfiles (TEST_SRCDIR unset?)")


def repo_file(path):
    return runfile(f"{WORKSPACE}/{path}")


def python_path():
    """PYTHONPATH entries for kvq_client and its generated stubs."""
    return str(repo_file("clients/python"))


def die_with_parent():
    """preexec_fn: SIGKILL the child when the test process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scratch_dir(name):
    root = pathlib.Path(os.environ.get("TEST_TMPDIR") or "/tmp")
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    return d


class LocalCluster:
    """The cluster of `clients_cluster` (tests/integration/clients_cluster.cc)."""

    def __init__(self, prefill_workers=1, decode_workers=1, start_timeout=60.0):
        self.prefill_workers = prefill_workers
        self.decode_workers = decode_workers
        self.start_timeout = start_timeout
        self.proc = None
        self.info = None

    def start(self):
        argv = [str(repo_file("tests/integration/clients_cluster")),
                f"--model={runfile('shared/models/stories260K')}",
                f"--prefill_workers={self.prefill_workers}",
                f"--decode_workers={self.decode_workers}"]
        env = dict(os.environ, KVQ_BINARY=str(repo_file("kvq")))
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     bufsize=0, env=env, preexec_fn=die_with_parent)
        deadline = time.monotonic() + self.start_timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not ready:
                self.stop()
                raise TimeoutError(f"the cluster did not start in {self.start_timeout} s")
            byte = self.proc.stdout.read(1)
            if not byte:
                code = self.proc.wait()
                raise RuntimeError(f"clients_cluster exited with {code} before starting")
            line += byte
        self.info = json.loads(line)
        return self

    def metrics_urls(self, role=None):
        roles = [role] if role else sorted(self.info["metrics"])
        return [f"http://{a}/metrics" for r in roles for a in self.info["metrics"][r]]

    def stop(self):
        """Stops the cluster (closing the helper's stdin) and checks nothing is left."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            proc.stdin.close()
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        for pid in (self.info or {}).get("pids", []):
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                print(f"clients_harness: service pid {pid} outlived the cluster",
                      file=sys.stderr)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False
