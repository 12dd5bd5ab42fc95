"""The Jobs API through the official Dapr Python SDK (dapr==1.19.0):
`schedule_job`, `get_job` and `delete_job` (the stable methods, and the
deprecated `*_alpha1` aliases), with the jobs fired to a `dapr.ext.grpc` app
(`@app.job_event`). The runtime is started by harness.py with a
--resources-path that declares no scheduler: the embedded one serves. The
app's events are in the file JOB_RECORDS."""

import json
import os
import time
import unittest
import warnings

import grpc
from dapr.clients import ConstantFailurePolicy, DaprClient, DropFailurePolicy, Job
from google.protobuf.any_pb2 import Any


def records():
    with open(os.environ["JOB_RECORDS"]) as f:
        return [json.loads(line) for line in f if line.strip()]


def eventually(what, done, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if done():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; the app got {records()}")


def data(payload: bytes) -> Any:
    any_data = Any()
    any_data.value = payload
    return any_data


class JobsThroughTheSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = DaprClient()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def test_a_job_fires_once_with_its_data(self):
        started = time.time()
        self.client.schedule_job(Job(name="sdk-once", due_time="1s", data=data(b'{"message": "hi"}')))
        eventually("the job fires", lambda: any(r["name"] == "sdk-once" for r in records()))
        self.assertGreaterEqual(time.time() - started, 1.0)
        fired = [r for r in records() if r["name"] == "sdk-once"]
        self.assertEqual(fired, [{"name": "sdk-once", "data": '{"message": "hi"}'}])

    def test_schedule_get_and_delete(self):
        job = Job(name="sdk-every", schedule="@every 200ms", repeats=3, data=data(b"tick"),
                  failure_policy=ConstantFailurePolicy(max_retries=2, interval_seconds=1))
        self.client.schedule_job(job)
        got = self.client.get_job("sdk-every")
        self.assertEqual((got.name, got.schedule, got.repeats), ("sdk-every", "@every 200ms", 3))
        self.assertEqual((got.failure_policy.max_retries, got.failure_policy.interval_seconds), (2, 1))
        eventually("three ticks", lambda: sum(r["name"] == "sdk-every" for r in records()) == 3)
        self.assertTrue(all(r["data"] == "tick" for r in records() if r["name"] == "sdk-every"))
        # An existing name needs overwrite.
        later = Job(name="sdk-later", schedule="@every 1h", failure_policy=DropFailurePolicy())
        self.client.schedule_job(later)
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.schedule_job(later)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.ALREADY_EXISTS)
        self.client.schedule_job(later, overwrite=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.assertEqual(self.client.get_job_alpha1("sdk-later").schedule, "@every 1h")
            self.client.delete_job_alpha1("sdk-later")
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.get_job("sdk-later")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INTERNAL)

    def test_bad_schedules_get_daprs_errors(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.client.schedule_job(Job(name="sdk-bad", schedule="every now and then"))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INTERNAL)
        self.assertIn("failed to schedule job due to", caught.exception.details())


if __name__ == "__main__":
    unittest.main()
