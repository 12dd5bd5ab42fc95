"""Starts the real `mecha sidecar` for SDK tests and runs a test module
against it, with the environment the Dapr SDKs read (DAPR_HTTP_PORT,
DAPR_GRPC_PORT, DAPR_API_TOKEN)."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def component(name, type_name, metadata):
    lines = [
        "apiVersion: dapr.io/v1alpha1",
        "kind: Component",
        "metadata:",
        f"  name: {name}",
        "spec:",
        f"  type: {type_name}",
        "  version: v1",
        "  metadata:",
    ]
    for key, value in metadata.items():
        lines += [f"  - name: {key}", f'    value: "{value}"']
    return "\n".join(lines) + "\n"


class Sidecar:
    def __init__(self, mecha, workdir, app_id, token=None):
        self.http_port, self.grpc_port = free_port(), free_port()
        resources = os.path.join(workdir, "resources")
        os.makedirs(resources)
        db = os.path.join(workdir, "state.db")
        with open(os.path.join(resources, "stores.yaml"), "w") as f:
            f.write(component("durable", "state.sqlite", {"connectionString": db}))
            f.write("---\n")
            f.write(component("mem", "state.in-memory", {}))
        env = dict(os.environ)
        env.pop("DAPR_API_TOKEN", None)
        if token:
            env["DAPR_API_TOKEN"] = token
        self.log = open(os.path.join(workdir, "sidecar.log"), "w+")
        self.process = subprocess.Popen(
            [mecha, "sidecar", "--app-id", app_id,
             "--dapr-http-port", str(self.http_port), "--dapr-grpc-port", str(self.grpc_port),
             "--metrics-port", str(free_port()), "--dapr-listen-addresses", "127.0.0.1",
             "--data-dir", os.path.join(workdir, "data"), "--resources-path", resources],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.wait_healthy()

    def logs(self):
        self.log.seek(0)
        return self.log.read()

    def wait_healthy(self):
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("mecha exited early:\n" + self.logs())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/v1.0/healthz") as r:
                    if r.status == 204:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("mecha never became healthy:\n" + self.logs())

    def stop(self):
        """SIGTERM; the runtime must drain and exit 0."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=15)
        if code != 0:
            raise RuntimeError(f"mecha exited with {code}:\n" + self.logs())


def run(mecha, module, token=None):
    """Runs `module` (unittest) against a fresh sidecar; returns its exit code."""
    with tempfile.TemporaryDirectory() as workdir:
        sidecar = Sidecar(mecha, workdir, app_id="sdk-app", token=token)
        env = dict(os.environ)
        env.update(DAPR_HTTP_PORT=str(sidecar.http_port), DAPR_GRPC_PORT=str(sidecar.grpc_port),
                   DAPR_RUNTIME_HOST="127.0.0.1", DAPR_HEALTH_TIMEOUT="20")
        env.pop("DAPR_API_TOKEN", None)
        if token:
            env["DAPR_API_TOKEN"] = token
        label = f"{module}" + (" (with DAPR_API_TOKEN)" if token else "")
        print(f"--- python SDK: {label}", flush=True)
        result = subprocess.run([sys.executable, "-m", "unittest", "-v", module], cwd=HERE, env=env)
        try:
            sidecar.stop()
        except RuntimeError as err:
            print(err, file=sys.stderr)
            return 1
        if result.returncode != 0:
            print(sidecar.logs(), file=sys.stderr)
        return result.returncode


if __name__ == "__main__":
    mecha = sys.argv[1]
    failures = run(mecha, "test_state") + run(mecha, "test_state", token="sdk-token")
    sys.exit(1 if failures else 0)
