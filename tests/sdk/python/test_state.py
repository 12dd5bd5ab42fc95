"""State scenarios through the official Dapr Python SDK (dapr==1.19.0),
against a mecha sidecar with a SQLite store (`durable`), an in-memory store
(`mem`) and, when harness.py found them, stores on the local databases
(`redis`, `postgres` (v1), `mysql`), named in MECHA_SDK_STORES. Started by
harness.py, which sets DAPR_*_PORT."""

import json
import os
import time
import unittest
import uuid
import warnings

import grpc
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import Concurrency, Consistency, StateItem, StateOptions

DATABASES = tuple(name for name in os.environ.get("MECHA_SDK_STORES", "").split(",") if name)
STORES = ("durable", "mem") + DATABASES
# The stores with the query API among them (Redis has no RediSearch here).
QUERY_STORES = tuple(s for s in STORES if s in ("durable", "mem", "postgres", "mysql"))


class StateThroughTheSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # query_state warns that the API is alpha, on every call (set here:
        # unittest resets the filters when it starts running).
        warnings.filterwarnings("ignore", message="The State Store Query API")
        # The constructor waits for /v1.0/healthz/outbound on the HTTP port.
        cls.client = DaprClient()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def key(self, name):
        return f"{name}-{uuid.uuid4().hex[:8]}"

    def test_save_get_delete(self):
        for store in STORES:
            with self.subTest(store=store):
                key = self.key("crud")
                self.client.save_state(store, key, "hello")
                got = self.client.get_state(store, key)
                self.assertEqual(got.data, b"hello")
                self.assertTrue(got.etag)
                self.client.save_state(store, key, b'{"json": true}')
                self.assertEqual(self.client.get_state(store, key).data, b'{"json": true}')
                self.client.delete_state(store, key)
                got = self.client.get_state(store, key)
                self.assertEqual(got.data, b"")
                self.assertEqual(got.etag, "")

    def test_etags(self):
        for store in STORES:
            with self.subTest(store=store):
                key = self.key("etag")
                self.client.save_state(store, key, "v1")
                first = self.client.get_state(store, key).etag
                self.client.save_state(store, key, "v2", etag=first)
                second = self.client.get_state(store, key).etag
                self.assertNotEqual(first, second)
                with self.assertRaises(DaprGrpcError) as caught:
                    self.client.save_state(store, key, "v3", etag=first)
                self.assertEqual(caught.exception.code(), grpc.StatusCode.ABORTED)
                self.assertEqual(self.client.get_state(store, key).data, b"v2")
                with self.assertRaises(DaprGrpcError) as caught:
                    self.client.delete_state(store, key, etag=first)
                self.assertEqual(caught.exception.code(), grpc.StatusCode.ABORTED)
                self.client.delete_state(store, key, etag=second)
                self.assertEqual(self.client.get_state(store, key).data, b"")

    def test_first_write(self):
        for store in STORES:
            with self.subTest(store=store):
                key = self.key("fw")
                options = StateOptions(concurrency=Concurrency.first_write, consistency=Consistency.strong)
                self.client.save_state(store, key, "first", options=options)
                with self.assertRaises(DaprGrpcError) as caught:
                    self.client.save_state(store, key, "second", options=options)
                self.assertEqual(caught.exception.code(), grpc.StatusCode.ABORTED)
                self.assertEqual(self.client.get_state(store, key).data, b"first")

    def test_bulk(self):
        for store in STORES:
            with self.subTest(store=store):
                keys = [self.key("bulk") for _ in range(3)]
                self.client.save_bulk_state(store, [StateItem(key=k, value=f"value-{i}") for i, k in enumerate(keys)])
                items = self.client.get_bulk_state(store, keys + ["missing-key"], parallelism=2).items
                self.assertEqual([i.key for i in items], keys + ["missing-key"])
                self.assertEqual([i.data for i in items], [b"value-0", b"value-1", b"value-2", b""])
                self.assertTrue(all(i.etag for i in items[:3]))

    def test_transaction(self):
        for store in STORES:
            with self.subTest(store=store):
                a, b, c = self.key("ta"), self.key("tb"), self.key("tc")
                self.client.save_state(store, b, "to delete")
                self.client.execute_state_transaction(store, [
                    TransactionalStateOperation(key=a, data="A"),
                    TransactionalStateOperation(key=b, data="", operation_type=TransactionOperationType.delete),
                ])
                self.assertEqual(self.client.get_state(store, a).data, b"A")
                self.assertEqual(self.client.get_state(store, b).data, b"")
                stale = self.client.get_state(store, a).etag
                self.client.save_state(store, a, "A2")
                # One stale etag fails the whole transaction: nothing sticks.
                # daprd answers any failed transaction with INTERNAL.
                with self.assertRaises(DaprGrpcError) as caught:
                    self.client.execute_state_transaction(store, [
                        TransactionalStateOperation(key=c, data="C"),
                        TransactionalStateOperation(key=a, data="A3", etag=stale),
                    ])
                self.assertEqual(caught.exception.code(), grpc.StatusCode.INTERNAL)
                self.assertEqual(caught.exception.error_code(), "ERR_STATE_TRANSACTION")
                self.assertEqual(self.client.get_state(store, c).data, b"")
                self.assertEqual(self.client.get_state(store, a).data, b"A2")

    def test_ttl(self):
        keys = {store: self.key("ttl") for store in STORES}
        for store, key in keys.items():
            with self.subTest(store=store):
                self.client.save_state(store, key, "short-lived", state_metadata={"ttlInSeconds": "1"})
                self.assertEqual(self.client.get_state(store, key).data, b"short-lived")
        time.sleep(2.2)
        for store, key in keys.items():
            with self.subTest(store=store):
                self.assertEqual(self.client.get_state(store, key).data, b"")

    def test_query(self):
        run = uuid.uuid4().hex
        docs = {f"q-{run}-{i}": {"run": run, "person": {"org": org, "id": i}}
                for i, org in enumerate(["Dev Ops", "Finance", "Dev Ops", "Dev Ops"])}
        for store in QUERY_STORES:
            with self.subTest(store=store):
                self.client.save_bulk_state(store, [StateItem(key=k, value=json.dumps(v)) for k, v in docs.items()])
                query = {"filter": {"AND": [{"EQ": {"run": run}}, {"EQ": {"person.org": "Dev Ops"}}]},
                         "sort": [{"key": "person.id", "order": "DESC"}]}
                found = self.client.query_state(store, json.dumps(query))
                self.assertEqual([r.key for r in found.results], [f"q-{run}-3", f"q-{run}-2", f"q-{run}-0"])
                self.assertEqual(found.results[0].json(), docs[f"q-{run}-3"])
                self.assertTrue(all(r.etag for r in found.results))
                self.assertEqual(found.token, "")
                # Pages of two, walked with the token.
                query["page"] = {"limit": 2}
                first = self.client.query_state(store, json.dumps(query))
                self.assertEqual([r.key for r in first.results], [f"q-{run}-3", f"q-{run}-2"])
                self.assertTrue(first.token)
                query["page"]["token"] = first.token
                rest = self.client.query_state(store, json.dumps(query))
                self.assertEqual([r.key for r in rest.results], [f"q-{run}-0"])
                self.assertEqual(rest.token, "")
                with self.assertRaises(DaprGrpcError) as caught:
                    self.client.query_state(store, '{"filter": {"LIKE": {"run": "x"}}}')
                self.assertEqual(caught.exception.code(), grpc.StatusCode.INTERNAL)
                self.assertEqual(caught.exception.error_code(), "DAPR_STATE_QUERY_FAILED")
        if "redis" in STORES:
            with self.assertRaises(DaprGrpcError) as caught:
                self.client.query_state("redis", "{}")
            self.assertEqual(caught.exception.error_code(), "DAPR_STATE_QUERYING_NOT_SUPPORTED")

    def test_errors_carry_dapr_codes(self):
        with self.assertRaises(DaprGrpcError) as caught:
            self.client.save_state("no-such-store", "k", "v")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(caught.exception.error_code(), "DAPR_STATE_NOT_FOUND")
        with self.assertRaises(DaprGrpcError) as caught:
            self.client.save_state("durable", "bad||key", "v")
        self.assertEqual(caught.exception.error_code(), "DAPR_STATE_ILLEGAL_KEY")

    def test_metadata(self):
        self.client.set_metadata("sdk", "python")
        meta = self.client.get_metadata()
        self.assertEqual(meta.application_id, "sdk-app")
        self.assertEqual(meta.extended_metadata.get("sdk"), "python")
        components = {c.name: c for c in meta.registered_components}
        self.assertEqual(components["durable"].type, "state.sqlite")
        self.assertIn("ETAG", components["durable"].capabilities)
        self.assertEqual(components["mem"].type, "state.in-memory")


if __name__ == "__main__":
    unittest.main()
