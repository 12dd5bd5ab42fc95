"""Configuration through the official Dapr Python SDK (dapr==1.19.0):
get_configuration, subscribe_configuration and unsubscribe_configuration on
a `configuration.redis` store (`config`), against a mecha sidecar started
by harness.py. Items are written to Redis directly, as an operator would
(a few lines of RESP, so no Redis client needs installing)."""

import os
import queue
import socket
import time
import unittest
import uuid

from dapr.clients import DaprClient

REDIS = os.environ.get("MECHA_TEST_REDIS_URL", "127.0.0.1:6379")
HAVE_CONFIG = "redis" in os.environ.get("MECHA_SDK_STORES", "").split(",")


def redis(*args):
    """Sends one command to Redis; returns the first line of the answer."""
    host, port = REDIS.rsplit(":", 1)
    command = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(command.encode())
        return s.makefile("rb").readline().decode().strip()


@unittest.skipUnless(HAVE_CONFIG, "Redis is not reachable (harness.py printed SKIP)")
class ConfigurationThroughTheSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = DaprClient()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def key(self, name):
        return f"sdk-{name}-{uuid.uuid4().hex[:8]}"

    def test_get_configuration(self):
        a, b = self.key("a"), self.key("b")
        self.assertEqual(redis("SET", a, "alpha||1"), "+OK")
        self.assertEqual(redis("SET", b, "beta"), "+OK")
        items = self.client.get_configuration("config", [a, b, self.key("missing")]).items
        self.assertEqual(sorted(items), sorted([a, b]))
        self.assertEqual((items[a].value, items[a].version), ("alpha", "1"))
        self.assertEqual((items[b].value, items[b].version), ("beta", ""))
        redis("DEL", a, b)

    def test_subscribe_and_unsubscribe(self):
        key = self.key("watched")
        updates = queue.Queue()
        sub_id = self.client.subscribe_configuration(
            "config", [key], lambda id, response: updates.put((id, dict(response.items))))
        self.assertTrue(sub_id)
        redis("SET", key, "first||1")
        got_id, items = updates.get(timeout=10)
        self.assertEqual(got_id, sub_id)
        self.assertEqual((items[key].value, items[key].version), ("first", "1"))
        self.assertTrue(self.client.unsubscribe_configuration("config", sub_id))
        time.sleep(0.3)
        redis("SET", key, "second||2")
        time.sleep(0.5)
        self.assertTrue(updates.empty(), "nothing arrives after unsubscribing")
        self.assertFalse(self.client.unsubscribe_configuration("config", sub_id))
        redis("DEL", key)


if __name__ == "__main__":
    unittest.main()
