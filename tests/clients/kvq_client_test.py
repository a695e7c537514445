"""kvq_client without servers: argument checks (nothing is sent for a bad
call), the hand-encoded health messages, the CLI's usage errors, and stub
generation from proto/ outside Bazel (the path a user of a checkout takes).
"""

import io
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import unittest

import kvq_client
from kvq_client import cli, health, store
from kvq_client.router import _check_prompt
import unittest_junit

# Nothing listens here: calls that get as far as the network fail.
NOWHERE = "127.0.0.1:1"


class HealthMessagesTest(unittest.TestCase):
    def test_request(self):
        self.assertEqual(health.encode_request(""), b"")
        self.assertEqual(health.encode_request("kvq.v1.Router"), b"\x0a\x0dkvq.v1.Router")
        long_name = "s" * 200  # a two-byte length varint
        self.assertEqual(health.encode_request(long_name)[:3], b"\x0a\xc8\x01")

    def test_response(self):
        self.assertEqual(health.decode_response(b"\x08\x01"), "SERVING")
        self.assertEqual(health.decode_response(b"\x08\x02"), "NOT_SERVING")
        self.assertEqual(health.decode_response(b"\x08\x03"), "SERVICE_UNKNOWN")
        self.assertEqual(health.decode_response(b""), "UNKNOWN")  # proto3 default
        self.assertEqual(health.decode_response(b"\x08\x09"), "UNKNOWN(9)")
        for bad in (b"\x08", b"\x08\x80", b"\x0a\x01x"):
            with self.assertRaises(ValueError, msg=bad):
                health.decode_response(bad)


class ArgumentChecksTest(unittest.TestCase):
    def test_prompts(self):
        self.assertEqual(_check_prompt("text"), "text")
        self.assertEqual(_check_prompt((1, 2)), [1, 2])
        for bad, error in (([], ValueError), ([1, -1], ValueError), ([1, 2**31], ValueError),
                           ([1, "2"], TypeError), ([True], TypeError), (b"x", TypeError),
                           (7, TypeError)):
            with self.assertRaises(error, msg=repr(bad)):
                _check_prompt(bad)

    def test_generate_checks_before_sending(self):
        client = kvq_client.RouterClient(NOWHERE, timeout=1)
        for kwargs, error in (({"steps": 0}, ValueError), ({"steps": 2.5}, ValueError),
                              ({"steps": True}, ValueError),
                              ({"steps": 4, "kv": 2}, TypeError),
                              ({"steps": 4, "temperature": -1}, ValueError),
                              ({"steps": 4, "top_p": 2}, ValueError)):
            with self.assertRaises(error, msg=kwargs):
                client.generate("x", **kwargs)
        with self.assertRaises(ValueError):
            kvq_client.RouterClient("")

    def test_store_addresses_and_keys(self):
        self.assertEqual(store.parse_addresses("a:1, b:2,"), ["a:1", "b:2"])
        self.assertEqual(store.parse_addresses(["a:1"]), ["a:1"])
        for bad in ("", " , ", "a:1,a:1"):
            with self.assertRaises(ValueError, msg=bad):
                store.parse_addresses(bad)
        s = kvq_client.StoreClient(NOWHERE, timeout=1)
        self.assertEqual(s.lookup([]), kvq_client.LookupResult(0, []))  # no call needed
        for bad in (b"short", "zz" * 16, "ab" * 15, 12):
            with self.assertRaises(ValueError, msg=repr(bad)):
                s.lookup([bad])

    def test_store_token_goes_with_every_call(self):
        token = "worker-token-0123456789abcdef"
        path = os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"), "store_tokens")
        with open(path, "w", encoding="ascii") as f:
            f.write("# workers\n\n" + token + "\n")
        self.assertEqual(store.read_token_file(path), token)
        for s in (kvq_client.StoreClient(NOWHERE, token=token),
                  kvq_client.StoreClient(NOWHERE, token_file=path)):
            seen = []

            class Stub:
                def Stats(self, request, timeout=None, metadata=None):
                    seen.append(metadata)
                    return s._pb.kvstore_pb2.StoreStatsResponse(blocks=3)

            s._stubs = [Stub()]
            self.assertEqual(s.total_stats()["blocks"], 3)
            self.assertEqual(seen, [(("authorization", "Bearer " + token),)])
        self.assertEqual(kvq_client.StoreClient(NOWHERE)._metadata, ())
        with open(path, "w", encoding="ascii") as f:
            f.write("# none\n")
        with self.assertRaises(ValueError):
            kvq_client.StoreClient(NOWHERE, token_file=path)

    def test_unreachable_server_is_unavailable(self):
        with self.assertRaises(kvq_client.KvqError) as e:
            kvq_client.StoreClient(NOWHERE, timeout=2).stats()
        self.assertEqual(e.exception.code, "UNAVAILABLE")
        self.assertEqual(e.exception.address, NOWHERE)


class TlsOptionsTest(unittest.TestCase):
    def test_bad_tls_files_are_value_errors(self):
        with tempfile.TemporaryDirectory() as d:
            junk = os.path.join(d, "junk.pem")
            pathlib.Path(junk).write_text("not a certificate\n")
            with self.assertRaisesRegex(ValueError, "holds no PEM data"):
                kvq_client.Tls(ca_file=junk).credentials()
            with self.assertRaisesRegex(ValueError, "cannot read TLS CA file"):
                kvq_client.Tls(ca_file=os.path.join(d, "missing.pem")).credentials()
            with self.assertRaisesRegex(ValueError, "needs its key"):
                kvq_client.Tls(cert_file=junk).credentials()
            # Every client checks its files before connecting.
            with self.assertRaises(ValueError):
                kvq_client.StoreClient(NOWHERE, tls=kvq_client.Tls(ca_file=junk))
            # The command line says so and exits 2.
            err = io.StringIO()
            code = cli.main(["health", NOWHERE, "--tls_ca", junk], out=io.StringIO(),
                            err=err)
            self.assertEqual(code, 2, err.getvalue())

    def test_plaintext_without_tls(self):
        self.assertIsNone(cli._tls(cli.build_parser().parse_args(["health", NOWHERE])))
        self.assertEqual(kvq_client.Tls(server_name="kvq-store").options(),
                         [("grpc.ssl_target_name_override", "kvq-store")])


class CommandLineTest(unittest.TestCase):
    def run_main(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        try:
            code = cli.main(list(argv), out=out, err=err)
        except SystemExit as e:  # argparse's usage errors
            code = e.code
        return code, out.getvalue(), err.getvalue()

    def test_usage_errors_exit_2(self):
        devnull = open(os.devnull, "w")
        self.addCleanup(devnull.close)
        saved, sys.stderr = sys.stderr, devnull  # argparse prints its usage there
        self.addCleanup(setattr, sys, "stderr", saved)
        for argv in (["generate", "--router", NOWHERE, "--prompt", "x", "--steps", "0"],
                     ["generate", "--router", NOWHERE, "--tokens", "1,a"],
                     ["generate", "--router", NOWHERE, "--prompt", "x", "--tokens", "1"],
                     ["generate", "--prompt", "x"], ["store-stats"], ["health"], []):
            self.assertEqual(self.run_main(*argv)[0], 2, argv)

    def test_bad_values_exit_2_and_failed_calls_exit_1(self):
        code, _, err = self.run_main("store-lookup", "--store", NOWHERE, "zz")
        self.assertEqual(code, 2)
        self.assertIn("not hex", err)
        code, _, err = self.run_main("store-stats", "--store", NOWHERE, "--timeout", "2")
        self.assertEqual(code, 1)
        self.assertIn("UNAVAILABLE", err)
        code, out, _ = self.run_main("health", NOWHERE, "--timeout", "2")
        self.assertEqual(code, 1)
        self.assertTrue(out.startswith(f"{NOWHERE}: UNAVAILABLE"), out)


class StubGenerationTest(unittest.TestCase):
    def test_generates_stubs_from_proto_when_none_are_installed(self):
        package = pathlib.Path(kvq_client.__file__).parent
        proto = pathlib.Path(os.environ["TEST_SRCDIR"]) / "kvq" / "proto"
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            shutil.copytree(package, tmp / "src" / "kvq_client")  # without kvq_client_pb
            env = dict(os.environ, PYTHONPATH=str(tmp / "src"), KVQ_PROTO_DIR=str(proto),
                       KVQ_CLIENT_STUBS_DIR=str(tmp / "stubs"))
            code = ("import kvq_client\n"
                    "from kvq_client import _stubs\n"
                    "pb = _stubs.load()\n"
                    "print(pb.__file__)\n"
                    "print(pb.serving_pb2.GenerateRequest(text='hi').SerializeToString().hex())\n"
                    "print(pb.kvstore_pb2_grpc.KvStoreStub.__name__)\n")
            r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = r.stdout.splitlines()
            self.assertTrue(lines[0].startswith(str(tmp / "stubs" / "kvq_client_pb")), lines)
            self.assertEqual(lines[1], "0a026869")  # field 1 (text), length 2, "hi"
            self.assertEqual(lines[2], "KvStoreStub")

            env["KVQ_PROTO_DIR"] = str(tmp / "nowhere")
            env["KVQ_CLIENT_STUBS_DIR"] = str(tmp / "other")
            r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                               text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("set KVQ_PROTO_DIR", r.stderr)


if __name__ == "__main__":
    unittest_junit.main()
