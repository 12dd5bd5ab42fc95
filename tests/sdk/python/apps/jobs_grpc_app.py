"""A gRPC app served by the official SDK's bundled `dapr.ext.grpc` App that
takes job events (`@app.job_event`), as a user would write it. Each event is
appended to <records> as one JSON line. Usage: jobs_grpc_app.py <port> <records>"""

import json
import os
import sys

from dapr.ext.grpc import App, JobEvent

app = App()
records = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT)


def record(event: JobEvent):
    line = {"name": event.name, "data": event.get_data_as_string()}
    os.write(records, (json.dumps(line) + "\n").encode())


@app.job_event("sdk-once")
def once(event: JobEvent) -> None:
    record(event)


@app.job_event("sdk-every")
def every(event: JobEvent) -> None:
    record(event)


app.run(int(sys.argv[1]), listen_address="127.0.0.1")
