"""A gRPC app served by the official SDK's bundled `dapr.ext.grpc` App, as a
user would write it. Usage: grpc_app.py <port>"""

import json
import sys

from dapr.ext.grpc import App, InvokeMethodRequest, InvokeMethodResponse

app = App()


@app.method(name="say-hello")
def say_hello(request: InvokeMethodRequest) -> InvokeMethodResponse:
    metadata = {key: values[0] for key, values in request.metadata.items()}
    answer = {
        "greeting": f"hello, {request.text()}",
        "contentType": request.content_type,
        "caller": metadata.get("dapr-caller-app-id"),
    }
    return InvokeMethodResponse(json.dumps(answer).encode(), "application/json")


@app.method(name="plain")
def plain(request: InvokeMethodRequest) -> str:
    return "plain text answer"


app.run(int(sys.argv[1]), listen_address="127.0.0.1")
