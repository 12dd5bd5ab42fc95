"""Service invocation through the official Dapr Python SDK (dapr==1.19.0):
`DaprClient().invoke_method(...)` from a caller runtime to an app served by
the SDK's own `dapr.ext.grpc` App and to a plain HTTP app, each behind its
own mecha runtime. harness.py starts the apps and runtimes, and runs this
module once per invocation protocol (DAPR_API_METHOD_INVOCATION_PROTOCOL
http, the SDK's default, and grpc, which uses InvokeService)."""

import json
import os

import grpc
import unittest

from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprInternalError

PROTOCOL = os.environ.get("DAPR_API_METHOD_INVOCATION_PROTOCOL", "http")


class InvokeThroughTheSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = DaprClient()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def test_invoke_an_sdk_grpc_app(self):
        response = self.client.invoke_method(
            "py-grpc-app", "say-hello", data="mecha", content_type="text/plain", http_verb="POST"
        )
        answer = response.json()
        self.assertEqual(answer["greeting"], "hello, mecha")
        self.assertEqual(answer["contentType"], "text/plain")
        self.assertEqual(answer["caller"], "py-caller")
        self.assertEqual(self.client.invoke_method("py-grpc-app", "plain", http_verb="POST").text(), "plain text answer")

    def test_invoke_an_http_app(self):
        response = self.client.invoke_method(
            "py-http-app",
            "orders/42",
            data='{"qty": 3}',
            content_type="application/json",
            http_verb="PUT",
            http_querystring=(("rush", "true"),),
        )
        answer = response.json()
        self.assertEqual(answer["method"], "PUT")
        self.assertEqual(answer["path"], "/orders/42")
        self.assertEqual(answer["query"], "rush=true")
        self.assertEqual(answer["body"], '{"qty": 3}')
        self.assertEqual(answer["caller"], "py-caller")
        if PROTOCOL == "http":
            self.assertEqual(response.status_code, 200)

    def test_errors(self):
        with self.assertRaises((DaprInternalError, Exception)) as caught:
            self.client.invoke_method("py-nobody", "x", http_verb="GET")
        self.assertIn("couldn't find service", str(caught.exception))
        with self.assertRaises(Exception):
            self.client.invoke_method("py-http-app", "orders/missing", http_verb="GET")

    def test_grpc_app_errors_pass_through(self):
        # dapr.ext.grpc answers a method it has no handler for with
        # UNIMPLEMENTED and this message; the caller gets both, as from daprd.
        with self.assertRaises(Exception) as caught:
            self.client.invoke_method("py-grpc-app", "no-such-method", data="x", http_verb="POST")
        error = caught.exception
        if isinstance(error, grpc.RpcError):
            # InvokeService: the app's status as it sent it (grpcio words
            # the message of a handler's exception this way).
            self.assertEqual(error.code(), grpc.StatusCode.UNIMPLEMENTED)
            self.assertEqual(error.details(), "Exception calling application: no-such-method method not implemented!")
        else:
            # HTTP: the HTTP status of the code, the status as JSON.
            self.assertIsInstance(error, DaprInternalError)
            self.assertIn("501", str(error))
            status = json.loads(error.as_dict()["raw_response_bytes"])
            self.assertEqual(status["code"], 12)
            self.assertIn("no-such-method method not implemented!", status["message"])


if __name__ == "__main__":
    unittest.main()
