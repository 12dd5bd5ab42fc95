"""Pub/sub through the official Dapr Python SDK (dapr==1.19.0), on the
embedded `pubsub` component (pubsub.sqlite, shared by the runtimes of one
data directory). harness.py starts two subscriber apps built with the SDK,
each behind its own mecha runtime:
- py-grpc-sub: a `dapr.ext.grpc` App with `@app.subscribe` handlers
  (ListTopicSubscriptions / OnTopicEvent);
- py-http-sub: FastAPI with `dapr.ext.fastapi` DaprApp `@dapr_app.subscribe`
  handlers (GET /dapr/subscribe, CloudEvents POSTed to the routes);
and runs this module against a third runtime, py-publisher. The apps append
each event they get to PUBSUB_RECORDS/{grpc,http}.jsonl, with their answer.
Each test marks its events with a token of its own."""

import base64
import json
import os
import queue
import threading
import time
import unittest
import uuid

import grpc
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._request import BulkPublishEntry
from dapr.clients.grpc._response import TopicEventResponse

PUBSUB = "pubsub"
PUBLISHER = "py-publisher"
RECORDS = os.environ["PUBSUB_RECORDS"]
APPS = ("grpc", "http")
DEADLINE = 15
# How long an event answered with success is watched for a second delivery:
# more than a few redeliveries at the runtime's first back-off (100 ms) plus
# the poll of a runtime in another process (100 ms).
SETTLE = 0.6


def received(app):
    """Every delivery to `app` so far, as (CloudEvent fields, raw bytes,
    answer) in one shape for both apps."""
    with open(os.path.join(RECORDS, f"{app}.jsonl")) as f:
        lines = f.read().split("\n")[:-1]  # a line being written has no newline yet
    out = []
    for line in lines:
        record = json.loads(line)
        if app == "grpc":
            event = dict(record, raw=base64.b64decode(record["raw"]))
        else:
            event = dict(record["event"], answer=record["answer"])
            encoded = event.get("data_base64")
            event["raw"] = base64.b64decode(encoded) if encoded is not None else None
        out.append(event)
    return out


def mentions(event, token):
    return token in json.dumps(event.get("data")) or (event["raw"] is not None and token.encode() in event["raw"])


def reader(subscription):
    """The messages of a streaming subscription, read on a thread until it
    is closed, so the test can wait for them with a deadline."""
    messages = queue.Queue()

    def read():
        try:
            for message in subscription:
                messages.put(message)
        except Exception:  # closed
            pass

    threading.Thread(target=read, daemon=True).start()
    return messages


class PubSubThroughTheSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = DaprClient()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def token(self):
        return uuid.uuid4().hex

    def arrived(self, app, token, count):
        """Waits until `app` got `count` deliveries marked with `token`."""
        deadline = time.time() + DEADLINE
        while True:
            events = [e for e in received(app) if mentions(e, token)]
            if len(events) >= count or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(events), count, f"{app} app got: {events}")
        return events

    def assert_no_more(self, token, counts):
        """No event marked with `token` is delivered again after a success."""
        time.sleep(SETTLE)
        for app in APPS:
            events = [e for e in received(app) if mentions(e, token)]
            self.assertEqual(len(events), counts, f"{app} app got: {events}")

    def assert_envelope(self, event, topic):
        self.assertTrue(event["id"])
        self.assertEqual(event["source"], PUBLISHER)
        self.assertEqual(event["type"], "com.dapr.event.sent")
        self.assertEqual(event["specversion"], "1.0")
        self.assertEqual(event["topic"], topic)
        self.assertEqual(event["pubsubname"], PUBSUB)

    def test_publish_event(self):
        token = self.token()
        order = {"token": token, "item": "book", "qty": 2}
        self.client.publish_event(PUBSUB, "orders", json.dumps(order), data_content_type="application/json")
        # With no content type, the data is text/plain.
        self.client.publish_event(PUBSUB, "orders", f"plain {token}")
        ids = {}
        for app in APPS:
            with self.subTest(app=app):
                events = self.arrived(app, token, 2)
                by_type = {e["datacontenttype"]: e for e in events}
                self.assertEqual(sorted(by_type), ["application/json", "text/plain"])
                self.assertEqual(by_type["application/json"]["data"], order)
                self.assertEqual(by_type["text/plain"]["data"], f"plain {token}")
                for event in events:
                    self.assert_envelope(event, "orders")
                    self.assertEqual(event["answer"], "success")
                ids[app] = {e["id"] for e in events}
                self.assertEqual(len(ids[app]), 2, "each event has its own id")
        # Each runtime is its own consumer group: both apps got the same events.
        self.assertEqual(ids["grpc"], ids["http"])
        self.assert_no_more(token, 2)

    def test_publish_event_with_raw_payload(self):
        token = self.token()
        payload = f"raw {token} ".encode() + bytes([0, 1, 0xFE, 0xFF])
        self.client.publish_event(PUBSUB, "raw", payload, publish_metadata={"rawPayload": "true"})
        # The subscriptions say rawPayload too: the runtime wraps the bytes as
        # they were published in a CloudEvent of its own (data_base64).
        for app in APPS:
            with self.subTest(app=app):
                (event,) = self.arrived(app, token, 1)
                self.assertEqual(event["raw"], payload)
                self.assertEqual(event["datacontenttype"], "application/octet-stream")
                self.assertEqual(event["topic"], "raw")
                self.assertEqual(event["pubsubname"], PUBSUB)
                self.assertTrue(event["id"])
        self.assert_no_more(token, 1)

    def test_publish_events(self):
        token = self.token()
        entries = [json.dumps({"token": token, "n": n}) for n in range(5)]
        entries.append(BulkPublishEntry(f"text {token}", content_type="text/plain"))
        response = self.client.publish_events(PUBSUB, "orders", entries, data_content_type="application/json")
        self.assertEqual(response.failed_entries, [])
        for app in APPS:
            with self.subTest(app=app):
                events = self.arrived(app, token, 6)
                json_events = [e for e in events if e["datacontenttype"] == "application/json"]
                self.assertEqual(sorted(e["data"]["n"] for e in json_events), list(range(5)))
                self.assertEqual([e["data"] for e in events if e["datacontenttype"] == "text/plain"],
                                 [f"text {token}"])
                for event in events:
                    self.assert_envelope(event, "orders")
                self.assertEqual(len({e["id"] for e in events}), 6, "each entry is its own event")
        self.assert_no_more(token, 6)

    def test_retry_answer_redelivers(self):
        token = self.token()
        order = {"token": token, "retry": True}
        self.client.publish_event(PUBSUB, "retry-once", json.dumps(order), data_content_type="application/json")
        for app in APPS:
            with self.subTest(app=app):
                first, second = self.arrived(app, token, 2)
                self.assertEqual([first["answer"], second["answer"]], ["retry", "success"])
                self.assertEqual(first["id"], second["id"], "the same event comes back")
                self.assertEqual(second["data"], order)
                self.assert_envelope(second, "retry-once")
        self.assert_no_more(token, 2)

    def test_streaming_subscription(self):
        token = self.token()
        topic = f"stream-{token}"
        subscription = self.client.subscribe(pubsub_name=PUBSUB, topic=topic)
        try:
            messages = reader(subscription)
            order = {"token": token, "streamed": True}
            self.client.publish_event(PUBSUB, topic, json.dumps(order), data_content_type="application/json")
            first = messages.get(timeout=DEADLINE)
            self.assertEqual(first.data(), order)
            self.assertEqual(first.data_content_type(), "application/json")
            self.assertEqual(first.source(), PUBLISHER)
            self.assertEqual(first.type(), "com.dapr.event.sent")
            self.assertEqual(first.topic(), topic)
            self.assertEqual(first.pubsub_name(), PUBSUB)
            self.assertTrue(first.id())
            subscription.respond_retry(first)
            again = messages.get(timeout=DEADLINE)
            self.assertEqual(again.id(), first.id(), "a retry answer redelivers the event")
            self.assertEqual(again.data(), order)
            subscription.respond_success(again)
            self.client.publish_event(PUBSUB, topic, f"text {token}", data_content_type="text/plain")
            text = messages.get(timeout=DEADLINE)
            self.assertEqual(text.data(), f"text {token}")
            self.assertNotEqual(text.id(), first.id())
            subscription.respond_success(text)
            with self.assertRaises(queue.Empty, msg="nothing is delivered again after success"):
                extra = messages.get(timeout=SETTLE)
                print(f"unexpected message {extra.id()}: {extra.raw_data()!r}")
        finally:
            subscription.close()

    def test_streaming_subscription_with_handler(self):
        token = self.token()
        topic = f"stream-handler-{token}"
        got = queue.Queue()

        def handler(message):
            got.put(message)
            return TopicEventResponse("success")

        close = self.client.subscribe_with_handler(PUBSUB, topic, handler)
        try:
            entries = [json.dumps({"token": token, "n": n}) for n in range(3)]
            response = self.client.publish_events(PUBSUB, topic, entries, data_content_type="application/json")
            self.assertEqual(response.failed_entries, [])
            messages = [got.get(timeout=DEADLINE) for _ in entries]
            self.assertEqual(sorted(m.data()["n"] for m in messages), [0, 1, 2])
            self.assertEqual(len({m.id() for m in messages}), 3)
            for message in messages:
                self.assertEqual(message.source(), PUBLISHER)
                self.assertEqual(message.topic(), topic)
            with self.assertRaises(queue.Empty, msg="nothing is delivered again after success"):
                extra = got.get(timeout=SETTLE)
                print(f"unexpected message {extra.id()}: {extra.raw_data()!r}")
        finally:
            close()

    def test_errors_carry_dapr_codes(self):
        with self.assertRaises(DaprGrpcError) as caught:
            self.client.publish_event("no-such-pubsub", "orders", "x")
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(caught.exception.error_code(), "DAPR_PUBSUB_NOT_FOUND")
        with self.assertRaises(DaprGrpcError) as caught:
            self.client.publish_events("no-such-pubsub", "orders", ["x"])
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)


if __name__ == "__main__":
    unittest.main()
