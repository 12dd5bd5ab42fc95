"""A gRPC app served by the official SDK's bundled `dapr.ext.grpc` App that
takes input bindings, as a user would write it. Each event is appended to
<records> as one JSON line; an event holding `refuse-once` is refused
(the handler raises) at its first delivery. Usage:
bindings_grpc_app.py <port> <records>"""

import json
import os
import sys
import threading

from dapr.ext.grpc import App, BindingRequest

app = App()
records = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
refused = set()
lock = threading.Lock()


def record(name: str, request: BindingRequest, answer: str):
    line = {"binding": name, "text": request.text(), "metadata": dict(request.binding_metadata),
            "answer": answer}
    os.write(records, (json.dumps(line) + "\n").encode())


@app.binding("orders")
def orders(request: BindingRequest) -> None:
    text = request.text()
    with lock:
        first = text not in refused
        refused.add(text)
    if "refuse-once" in text and first:
        record("orders", request, "refused")
        raise RuntimeError("refused once, on purpose")
    record("orders", request, "taken")


@app.binding("ticks")
def ticks(request: BindingRequest) -> None:
    record("ticks", request, "taken")


app.run(int(sys.argv[1]), listen_address="127.0.0.1")
