"""An HTTP subscriber app: FastAPI with the official SDK's `dapr.ext.fastapi`
DaprApp, as a user would write it (its GET /dapr/subscribe lists the
subscriptions). Each CloudEvent it gets is appended to <records> as one JSON
line, with the answer it gave. Usage: pubsub_http_app.py <port> <records>"""

import json
import os
import sys
import threading

import uvicorn
from dapr.ext.fastapi import DaprApp
from fastapi import Body, FastAPI

app = FastAPI()
dapr_app = DaprApp(app)
records = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
refused = set()
lock = threading.Lock()


def record(event, answer):
    os.write(records, (json.dumps({"event": event, "answer": answer}) + "\n").encode())


# Answering nothing (a 200 with `null`) is success.
@dapr_app.subscribe(pubsub="pubsub", topic="orders")
def orders(event: dict = Body()):
    record(event, "success")


@dapr_app.subscribe(pubsub="pubsub", topic="raw", metadata={"rawPayload": "true"}, route="/raw-events")
def raw(event: dict = Body()):
    record(event, "success")


@dapr_app.subscribe(pubsub="pubsub", topic="retry-once")
def retry_once(event: dict = Body()):
    """Refuses the first delivery of each event: the runtime must redeliver."""
    with lock:
        first = event.get("id") not in refused
        refused.add(event.get("id"))
    record(event, "retry" if first else "success")
    return {"status": "RETRY"} if first else {"status": "SUCCESS"}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
