"""An app a user would run with `mecha run -- python sdk_state_app.py`: it
finds its runtime through the DAPR_* variables mecha run exports, saves and
reads state with the official SDK, then serves until it is stopped."""

import os
import signal
import sys
import time

from dapr.clients import DaprClient

stopping = False


def stop(*_):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)

with DaprClient() as client:
    client.save_state("statestore", "greeting", f"hello from {os.environ['APP_ID']}")
    value = client.get_state("statestore", "greeting").data.decode()
print(f"sdk app ready: {value}", flush=True)
while not stopping:
    time.sleep(0.05)
print("sdk app stopping", flush=True)
sys.exit(0)
