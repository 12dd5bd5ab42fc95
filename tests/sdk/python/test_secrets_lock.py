"""Secrets and distributed locks through the official Dapr Python SDK
(dapr==1.19.0), against a mecha sidecar started by harness.py with a
multi-valued `secretstores.local.file` store (`files`), a
`secretstores.local.env` store (`env`, prefix MECHA_SDK_SECRET_) and a
`lock.sqlite` store (`lockstore`)."""

import unittest
import uuid
import warnings

import grpc
from dapr.clients import DaprClient
from dapr.clients.grpc._response import UnlockResponseStatus

class SecretsAndLocksThroughTheSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # try_lock and unlock warn that the API is alpha, on every call (set
        # here: unittest resets the filters when it starts running).
        warnings.filterwarnings("ignore", message="The Distributed Lock API")
        cls.client = DaprClient()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def test_get_secret(self):
        self.assertEqual(dict(self.client.get_secret("files", "db").secret),
                         {"user": "admin", "password": "p4ss"})
        self.assertEqual(dict(self.client.get_secret("files", "token").secret), {"token": "t0k3n"})
        self.assertEqual(dict(self.client.get_secret("env", "GREETING").secret),
                         {"GREETING": "hello from the environment"})

    def test_get_bulk_secret(self):
        secrets = self.client.get_bulk_secret("files").secrets
        self.assertEqual(secrets["db"], {"user": "admin", "password": "p4ss"})
        self.assertEqual(secrets["token"], {"token": "t0k3n"})
        self.assertEqual(self.client.get_bulk_secret("env").secrets,
                         {"GREETING": {"GREETING": "hello from the environment"}})

    def test_secret_errors(self):
        # These SDK methods raise gRPC's own error, not DaprGrpcError.
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.get_secret("files", "nope")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INTERNAL)
        self.assertIn("secret nope not found", caught.exception.details())
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.get_secret("no-such-store", "db")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_try_lock_as_a_context_manager(self):
        resource = f"res-{uuid.uuid4().hex[:8]}"
        with self.client.try_lock("lockstore", resource, "owner-a", expiry_in_seconds=30) as lock:
            self.assertTrue(lock.success)
            other = self.client.try_lock("lockstore", resource, "owner-b", expiry_in_seconds=30)
            self.assertFalse(other.success)
            self.assertFalse(bool(other))
        # Leaving the block released the lock.
        with self.client.try_lock("lockstore", resource, "owner-b", expiry_in_seconds=30) as lock:
            self.assertTrue(lock)

    def test_unlock_statuses(self):
        resource = f"res-{uuid.uuid4().hex[:8]}"
        self.assertEqual(self.client.unlock("lockstore", resource, "me").status,
                         UnlockResponseStatus.lock_does_not_exist)
        self.assertTrue(self.client.try_lock("lockstore", resource, "me", expiry_in_seconds=30).success)
        self.assertEqual(self.client.unlock("lockstore", resource, "someone-else").status,
                         UnlockResponseStatus.lock_belongs_to_others)
        self.assertEqual(self.client.unlock("lockstore", resource, "me").status, UnlockResponseStatus.success)

    def test_lock_errors(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.try_lock("no-such-store", "r", "o", expiry_in_seconds=5)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.try_lock("lockstore", "a||b", "o", expiry_in_seconds=5)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INTERNAL)


if __name__ == "__main__":
    unittest.main()
