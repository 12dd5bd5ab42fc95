"""Bindings through the official Dapr Python SDK (dapr==1.19.0): output
bindings with `invoke_binding`, and input bindings delivered to a
`dapr.ext.grpc` app (`@app.binding`), behind a mecha sidecar started by
harness.py with `bindings.localstorage` (`storage`), `bindings.cron`
(`ticks`, every second) and, when RabbitMQ answers, `bindings.rabbitmq`
(`orders`, read by the app and written by this test). The app's events are
in the file BINDING_RECORDS."""

import json
import os
import time
import unittest
import uuid

import grpc
from dapr.clients import DaprClient


def records():
    with open(os.environ["BINDING_RECORDS"]) as f:
        return [json.loads(line) for line in f if line.strip()]


def eventually(what, done, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if done():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; the app got {records()}")


class BindingsThroughTheSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = DaprClient()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def test_invoke_binding(self):
        name = f"sdk-{uuid.uuid4().hex[:8]}.json"
        created = self.client.invoke_binding("storage", "create", '{"n": 1}', binding_metadata={"fileName": name})
        self.assertEqual(created.json(), {"fileName": name})
        got = self.client.invoke_binding("storage", "get", "", binding_metadata={"fileName": name})
        self.assertEqual(got.text(), '{"n": 1}')
        # As daprd, `list` names the files by their full paths.
        listed = self.client.invoke_binding("storage", "list", "").json()
        self.assertTrue(any(path.endswith("/" + name) for path in listed), listed)
        self.client.invoke_binding("storage", "delete", "", binding_metadata={"fileName": name})
        listed = self.client.invoke_binding("storage", "list", "").json()
        self.assertFalse(any(path.endswith("/" + name) for path in listed), listed)

    def test_invoke_binding_errors(self):
        # daprd answers every output binding failure with INTERNAL.
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.invoke_binding("no-such-binding", "create", "x")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INTERNAL)
        self.assertIn("couldn't find output binding no-such-binding", caught.exception.details())
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.invoke_binding("storage", "explode", "x")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INTERNAL)
        self.assertIn("does not support operation explode. supported operations:", caught.exception.details())
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.invoke_binding("storage", "get", "", binding_metadata={"fileName": "../../etc/passwd"})
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INTERNAL)
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.invoke_binding("storage", "get", "", binding_metadata={"fileName": "no-such-file.txt"})
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INTERNAL)
        self.assertTrue(caught.exception.details().startswith(
            "error invoking output binding storage: file not found: "), caught.exception.details())
        # `list` of "." lists the root folder, as daprd does.
        self.assertIsInstance(self.client.invoke_binding(
            "storage", "list", "", binding_metadata={"fileName": "."}).json(), list)

    def test_cron_reaches_the_app(self):
        eventually("a tick", lambda: any(r["binding"] == "ticks" for r in records()))

    def test_queue_events_reach_the_app(self):
        if not os.environ.get("BINDING_QUEUE"):
            self.skipTest("RabbitMQ is unreachable")
        taken, refused = f"taken-{uuid.uuid4().hex}", f"refuse-once-{uuid.uuid4().hex}"
        for text in (taken, refused):
            self.client.invoke_binding("orders", "create", text)

        def arrived():
            got = [(r["text"], r["answer"]) for r in records() if r["binding"] == "orders"]
            return (taken, "taken") in got and got.count((refused, "refused")) == 1 \
                and (refused, "taken") in got
        eventually("both events, the refused one again", arrived)


if __name__ == "__main__":
    unittest.main()
