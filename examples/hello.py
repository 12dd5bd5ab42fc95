"""A minimal app for `mecha run` (Python standard library only).

    cargo run --release -- run --app-id hello --app-port 3000 --dapr-http-port 3500 -- python3 examples/hello.py

It counts its visits in the runtime's state store (the embedded SQLite
`statestore`) and answers GET /hello, and 404 to anything else (so the
runtime's own questions, such as GET /dapr/subscribe, find nothing to
subscribe); call it through the runtime:

    curl localhost:3500/v1.0/invoke/hello/method/hello
"""

import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RUNTIME = f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0"
APP_PORT = int(os.environ.get("APP_PORT", "3000"))


def state_get(key):
    with urllib.request.urlopen(f"{RUNTIME}/state/statestore/{key}") as response:
        body = response.read()
    return json.loads(body) if body else None


def state_save(key, value):
    body = json.dumps([{"key": key, "value": value}]).encode()
    request = urllib.request.Request(f"{RUNTIME}/state/statestore", body, {"Content-Type": "application/json"})
    urllib.request.urlopen(request).close()


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] != "/hello":
            self.send_error(404)
            return
        visits = (state_get("visits") or 0) + 1
        state_save("visits", visits)
        caller = self.headers.get("dapr-caller-app-id", "someone")
        body = json.dumps({"hello": caller, "visits": visits}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


print(f"hello app listening on {APP_PORT}, runtime at {RUNTIME}", flush=True)
ThreadingHTTPServer(("127.0.0.1", APP_PORT), Hello).serve_forever()
