"""A gRPC subscriber app served by the official SDK's bundled `dapr.ext.grpc`
App, as a user would write it. Each event it gets is appended to <records>
as one JSON line, with the answer it gave. Usage:
pubsub_grpc_app.py <port> <records>"""

import base64
import json
import os
import sys
import threading

from dapr.ext.grpc import App, SubscriptionMessage, TopicEventResponse

app = App()
records = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
refused = set()
lock = threading.Lock()


def record(event: SubscriptionMessage, answer):
    line = {
        "id": event.id(),
        "source": event.source(),
        "type": event.type(),
        "specversion": event.spec_version(),
        "datacontenttype": event.data_content_type(),
        "topic": event.topic(),
        "pubsubname": event.pubsub_name(),
        "data": event.data(),
        "raw": base64.b64encode(event.raw_data()).decode(),
        "answer": answer,
    }
    os.write(records, (json.dumps(line) + "\n").encode())


@app.subscribe(pubsub_name="pubsub", topic="orders")
def orders(event: SubscriptionMessage) -> None:
    record(event, "success")


@app.subscribe(pubsub_name="pubsub", topic="raw", metadata={"rawPayload": "true"})
def raw(event: SubscriptionMessage) -> None:
    record(event, "success")


@app.subscribe(pubsub_name="pubsub", topic="retry-once")
def retry_once(event: SubscriptionMessage):
    """Refuses the first delivery of each event: the runtime must redeliver."""
    with lock:
        first = event.id() not in refused
        refused.add(event.id())
    record(event, "retry" if first else "success")
    return TopicEventResponse("retry") if first else None


app.run(int(sys.argv[1]), listen_address="127.0.0.1")
