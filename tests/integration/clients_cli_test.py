"""`kvq client generate | store-stats | health` (clients/cli) against a real
cluster on loopback, checked against what kvq_client sees of the same cluster.
"""

import json
import subprocess
import sys
import time
import unittest

import clients_harness as h
import unittest_junit

sys.path.insert(0, h.python_path())
import kvq_client  # noqa: E402


class KvqClientCommandTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = h.LocalCluster().start()
        cls.info = cls.cluster.info
        cls.kvq = str(h.repo_file("kvq"))

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def kvq_client(self, *args):
        return subprocess.run([self.kvq, "client", *args], capture_output=True, text=True,
                              timeout=60)

    def test_generate_prints_the_continuation_and_a_summary(self):
        r = self.kvq_client("generate", f"--router={self.info['router']}",
                            "--prompt=Once upon a time", "--steps=16", "--kv=kivi2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("Once upon a time"), r.stdout)
        with kvq_client.RouterClient(self.info["router"]) as router:
            same = router.generate("Once upon a time", steps=16, kv="kivi2").wait()
        self.assertEqual(r.stdout, "Once upon a time" + same.text + "\n")
        for line in ("tokens generated:", "time to first token:", "KV bytes moved:",
                     "compression vs fp16:"):
            self.assertIn(line, r.stderr)

    def test_generate_json_with_token_ids(self):
        r = self.kvq_client("generate", f"--router={self.info['router']}", "--tokens=1,403,407",
                            "--steps=6", "--kv=fp16", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        with kvq_client.RouterClient(self.info["router"]) as router:
            same = router.generate([1, 403, 407], steps=6, kv="fp16").wait()
        self.assertEqual(out["tokens"], same.tokens)
        self.assertEqual(out["text"], same.text)
        self.assertEqual(out["finish_reason"], same.finish_reason)
        self.assertEqual(out["kv"], "fp16")
        self.assertEqual(out["prefill_worker"], self.info["prefill"][0])
        self.assertEqual(out["stored_bytes"], out["fp16_equivalent_bytes"])  # fp16: ratio 1
        self.assertGreater(out["bytes_pushed"], 0)

    def test_generate_without_kv_uses_the_workers_default(self):
        # kivi2 (services/serving/request.h) compresses a long prompt; fp16,
        # the default of the shared --kv flag, would not.
        prompt = ",".join(str(t) for t in [1] + list(range(200, 500)))
        r = self.kvq_client("generate", f"--router={self.info['router']}", f"--tokens={prompt}",
                            "--steps=2", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["kv"], "")
        self.assertGreater(out["compression_ratio"], 1.2)

    def test_generate_errors(self):
        r = self.kvq_client("generate", f"--router={self.info['router']}", "--prompt=x",
                            "--kv=kivi3")
        self.assertEqual(r.returncode, 1)
        self.assertIn("INVALID_ARGUMENT", r.stderr)
        r = self.kvq_client("generate", f"--router=127.0.0.1:{h.free_port()}", "--prompt=x",
                            "--rpc_timeout=2s")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, "UNAVAILABLE|DEADLINE_EXCEEDED")
        for bad in (["--steps=0"], ["--tokens=1,x"], ["--tokens=1", "--prompt=x"],
                    ["--temperature=-1"], ["--rpc_timeout=0s"], ["extra"]):
            r = self.kvq_client("generate", f"--router={self.info['router']}", *bad)
            self.assertEqual(r.returncode, 2, f"{bad}: {r.stderr}")

    def test_generate_never_waits_for_the_deadline_on_a_broken_stream(self):
        # High-temperature sampling emits lone byte-fallback pieces; whatever
        # the stream holds, the command must end at once, not hang until
        # --rpc_timeout.
        start = time.monotonic()
        r = self.kvq_client("generate", f"--router={self.info['router']}", "--prompt=x",
                            "--steps=100", "--temperature=20", "--seed=0", "--json",
                            "--rpc_timeout=50s")
        self.assertLess(time.monotonic() - start, 20)
        if r.returncode == 0:
            self.assertIn(json.loads(r.stdout)["finish_reason"], ("length", "stop"))
        else:
            self.assertEqual(r.returncode, 1)
            self.assertIn("the stream broke before its last message", r.stderr)

    def test_store_stats(self):
        with kvq_client.RouterClient(self.info["router"]) as router:
            router.generate("Once upon a time", steps=2).wait()  # something in the store
        r = self.kvq_client("store-stats", f"--store={self.info['store']}", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        want = kvq_client.StoreClient(self.info["store"]).stats()[self.info["store"]]
        self.assertEqual(out.pop("address"), self.info["store"])
        # Stats calls themselves count nothing, so both reads agree.
        self.assertEqual(out, want)
        self.assertGreater(out["blocks"], 0)

        r = self.kvq_client("store-stats", f"--store={self.info['store']}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rf"^{self.info['store']}: \d+ / \d+ bytes .* blocks")

        r = self.kvq_client("store-stats", f"--store={self.info['store']},127.0.0.1:"
                            f"{h.free_port()}", "--rpc_timeout=2s")
        self.assertEqual(r.returncode, 1)
        self.assertIn(self.info["store"], r.stdout)  # the reachable shard is still shown
        self.assertIn("UNAVAILABLE", r.stderr)
        self.assertEqual(self.kvq_client("store-stats").returncode, 2)

    def test_health(self):
        addresses = [self.info["router"], self.info["store"]] + self.info["prefill"] + \
            self.info["decode"]
        r = self.kvq_client("health", *addresses)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.splitlines(), [f"{a}: SERVING" for a in addresses])
        r = self.kvq_client("health", "--rpc_timeout=1s", self.info["router"],
                            f"127.0.0.1:{h.free_port()}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("UNAVAILABLE", r.stdout.splitlines()[1])
        self.assertEqual(self.kvq_client("health").returncode, 2)


if __name__ == "__main__":
    unittest_junit.main()
