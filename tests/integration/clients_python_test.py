"""kvq_client (clients/python) against a real cluster on loopback.

One cluster from the launcher (store, prefill, decode, router processes)
serves every test; the client library and its command line
(`python3 -m kvq_client`) talk to it over gRPC like a user would.
"""

import json
import os
import subprocess
import sys
import unittest

import clients_harness as h
import unittest_junit

sys.path.insert(0, h.python_path())
import kvq_client  # noqa: E402

LONG_PROMPT = [1] + list(range(200, 500))  # 301 tokens: 9 full blocks + a partial one


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = h.LocalCluster().start()
        cls.info = cls.cluster.info
        cls.router = kvq_client.RouterClient(cls.info["router"], timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.router.close()
        cls.cluster.stop()

    def test_generate_streams_text_and_reports_kv_movement(self):
        gen = self.router.generate("Once upon a time", steps=24, kv="kivi2", ignore_eos=True)
        chunks = list(gen)
        self.assertGreaterEqual(len(chunks), 2)  # the prefill's token comes first
        self.assertEqual(chunks[0].tokens, gen.tokens[:1])
        self.assertEqual(sum(len(c.tokens) for c in chunks), 24)
        self.assertEqual(len(gen.tokens), 24)
        self.assertEqual(gen.text, "".join(c.text for c in chunks))
        self.assertTrue(gen.text.strip())
        self.assertTrue(gen.finished)
        self.assertEqual(gen.finish_reason, "length")
        self.assertEqual(gen.prompt_tokens[0], 1)  # BOS
        self.assertGreater(len(gen.prompt_tokens), 1)
        self.assertIn(gen.prefill_worker, self.info["prefill"])
        self.assertIn(gen.decode_worker, self.info["decode"])
        self.assertEqual(gen.prefill_attempts, 1)
        self.assertGreater(gen.time_to_first_token, 0)
        self.assertGreater(gen.stats.bytes_pushed, 0)
        self.assertEqual(gen.stats.decode_bytes_fetched,
                         gen.stats.bytes_pushed + gen.stats.bytes_fetched)

    def test_token_prompt_gives_the_same_greedy_tokens_as_its_text(self):
        by_text = self.router.generate("The little dog", steps=16, kv="fp16").wait()
        by_ids = self.router.generate(by_text.prompt_tokens, steps=16, kv="fp16").wait()
        self.assertEqual(by_ids.tokens, by_text.tokens)
        self.assertEqual(by_ids.text, by_text.text)
        self.assertEqual(by_ids.prompt_tokens, by_text.prompt_tokens)

    def test_kv_mode_sets_the_compression(self):
        ratio = {}
        for kv in ("fp16", "kivi4", "kivi2"):
            gen = self.router.generate(LONG_PROMPT, steps=4, kv=kv, ignore_eos=True).wait()
            self.assertEqual(len(gen.tokens), 4)
            ratio[kv] = gen.stats.compression_ratio
        self.assertEqual(ratio["fp16"], 1.0)
        self.assertGreater(ratio["kivi4"], 1.2)
        self.assertGreater(ratio["kivi2"], ratio["kivi4"])

    def test_store_stats_and_lookup_see_the_blocks_a_prefill_committed(self):
        store = kvq_client.StoreClient(self.info["store"])
        before = store.total_stats()
        prefill = kvq_client.PrefillClient(self.info["prefill"][0])
        prompt = [1] + list(range(100, 180))  # 81 tokens: 2 full blocks + a partial one
        done = prefill.prefill(prompt, kv="kivi2")
        self.assertEqual(len(done.keys), 3)
        self.assertEqual(len(done.model_id), 16)
        after = store.total_stats()
        self.assertGreater(after["blocks"], before["blocks"])
        self.assertGreater(after["bytes"], before["bytes"])
        self.assertGreater(after["capacity_bytes"], 0)
        # One shard: its own stats are the total (the counts this prefill
        # settled; leases may still come and go with other requests).
        shard = store.stats()[self.info["store"]]
        for key in ("blocks", "bytes", "capacity_bytes", "puts", "duplicate_puts"):
            self.assertEqual(shard[key], after[key], key)

        self.assertEqual(store.lookup(done.keys), kvq_client.LookupResult(3, [True] * 3))
        self.assertEqual(store.lookup([k.hex() for k in done.keys]).present_prefix, 3)
        absent = bytes(range(16))
        self.assertEqual(store.lookup([absent] + done.keys[1:]),
                         kvq_client.LookupResult(0, [False, True, True]))
        self.assertEqual(store.lookup([]), kvq_client.LookupResult(0, []))
        stats = prefill.stats()
        self.assertEqual(stats["role"], "prefill")
        self.assertGreaterEqual(stats["requests_total"], 1)
        self.assertEqual(kvq_client.DecodeClient(self.info["decode"][0]).stats()["role"],
                         "decode")

    def test_health(self):
        for address in [self.info["router"], self.info["store"]] + self.info["prefill"] + \
                self.info["decode"]:
            self.assertEqual(kvq_client.check_health(address), "SERVING")
        with self.assertRaises(kvq_client.KvqError) as e:
            kvq_client.check_health(f"127.0.0.1:{h.free_port()}", timeout=1)
        self.assertEqual(e.exception.code, "UNAVAILABLE")

    def test_server_errors_come_back_as_kvq_errors(self):
        with self.assertRaises(kvq_client.KvqError) as e:
            self.router.generate("x", steps=4, kv="kivi3").wait()
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertEqual(e.exception.address, self.info["router"])
        with self.assertRaises(kvq_client.KvqError) as e:
            self.router.generate([1, 10 ** 6], steps=4).wait()  # past the vocabulary
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        nowhere = kvq_client.RouterClient(f"127.0.0.1:{h.free_port()}", timeout=2)
        with self.assertRaises(kvq_client.KvqError) as e:
            nowhere.generate("x", steps=2).wait()
        self.assertEqual(e.exception.code, "UNAVAILABLE")
        with self.assertRaises(kvq_client.KvqError) as e:
            kvq_client.StoreClient(f"127.0.0.1:{h.free_port()}", timeout=2).stats()
        self.assertEqual(e.exception.code, "UNAVAILABLE")

    # At high temperature the model emits lone byte-fallback pieces
    # (<0xE2> ...); the router must hold a split character's bytes until it is
    # complete, since GenerateResponse.text is a proto3 `string` (valid UTF-8).
    def test_text_of_byte_fallback_pieces_is_valid_utf8(self):
        gen = self.router.generate("Once upon a time", steps=100, temperature=20.0, seed=0,
                                   ignore_eos=True).wait()
        self.assertEqual(len(gen.tokens), 100)

    def test_cancel_stops_the_stream(self):
        gen = self.router.generate("Once upon a time", steps=400, ignore_eos=True)
        it = iter(gen)
        next(it)
        gen.cancel()
        with self.assertRaises(kvq_client.KvqError) as e:
            for _ in it:
                pass
        self.assertEqual(e.exception.code, "CANCELLED")
        self.assertLess(len(gen.tokens), 400)

    def run_cli(self, *args):
        env = dict(os.environ, PYTHONPATH=h.python_path())
        return subprocess.run([sys.executable, "-m", "kvq_client", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    def test_command_line(self):
        r = self.run_cli("generate", "--router", self.info["router"], "--prompt",
                         "Once upon a time", "--steps", "8", "--kv", "kivi2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("Once upon a time"))
        self.assertGreater(len(r.stdout.strip()), len("Once upon a time"))
        self.assertIn("time to first token", r.stderr)
        self.assertIn("KV bytes moved", r.stderr)

        r = self.run_cli("generate", "--router", self.info["router"], "--tokens", "1,403,407",
                         "--steps", "5", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertLessEqual(len(out["tokens"]), 5)
        self.assertIn(out["finish_reason"], ("length", "stop"))

        r = self.run_cli("store-stats", "--store", self.info["store"], "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["address"], self.info["store"])

        r = self.run_cli("health", self.info["router"], self.info["store"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.count("SERVING"), 2)

        r = self.run_cli("health", self.info["router"], f"127.0.0.1:{h.free_port()}")
        self.assertEqual(r.returncode, 1)
        self.assertIn("UNAVAILABLE", r.stdout)

        r = self.run_cli("generate", "--router", self.info["router"], "--prompt", "x",
                         "--kv", "bogus")
        self.assertEqual(r.returncode, 1)
        self.assertIn("INVALID_ARGUMENT", r.stderr)

        r = self.run_cli("generate", "--router", self.info["router"], "--prompt", "x",
                         "--steps", "0")
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest_junit.main()
