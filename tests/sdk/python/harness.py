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


def reachable(name, address):
    """Whether a test service answers; with MECHA_REQUIRE_SERVICES=1 an
    unreachable one is an error, as in the Rust tests."""
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return True
    except OSError:
        if os.environ.get("MECHA_REQUIRE_SERVICES") == "1":
            raise RuntimeError(f"{name} is unreachable at {address} and MECHA_REQUIRE_SERVICES=1")
        print(f"SKIP: {name} is unreachable at {address}; its SDK state cases do not run", flush=True)
        return False


def database_stores():
    """The state stores on the local databases that answer, as (name,
    component YAML). Fixed tables (keys are unique per test run)."""
    stores = []
    redis = os.environ.get("MECHA_TEST_REDIS_URL", "127.0.0.1:6379")
    if reachable("Redis", redis):
        stores.append(("redis", component("redis", "state.redis", {"redisHost": redis})))
        # Not a state store: the configuration store test_configuration uses.
        stores.append(("config", component("config", "configuration.redis", {"redisHost": redis})))
    pg = os.environ.get("MECHA_TEST_POSTGRES_URL", "127.0.0.1:5432")
    if reachable("PostgreSQL", pg):
        host, port = pg.rsplit(":", 1)
        stores.append(("postgres", component("postgres", "state.postgresql", {
            "connectionString": f"host={host} port={port} user=postgres dbname=test sslmode=disable",
            "tableName": "mecha_sdk_state", "metadataTableName": "mecha_sdk_metadata"})))
    my = os.environ.get("MECHA_TEST_MYSQL_URL", "127.0.0.1:3306")
    if reachable("MySQL", my):
        stores.append(("mysql", component("mysql", "state.mysql", {
            "connectionString": f"root:@tcp({my})/?allowNativePasswords=true", "schemaName": "mecha_sdk"})))
    return stores


class Sidecar:
    """A mecha runtime. Runtimes given the same data_dir find each other
    (the default name resolution registry lives there). With defaults=True
    it gets no --resources-path and loads the embedded components instead
    (`statestore`, and the `pubsub` the runtimes of one data_dir share).
    ports=(http, grpc) fixes its API ports, for an app that must know them
    before the runtime starts."""

    def __init__(self, mecha, workdir, app_id, token=None, data_dir=None, app_args=(),
                 defaults=False, ports=None, extra_stores=(), outbound=False):
        self.http_port, self.grpc_port = ports or (free_port(), free_port())
        resources_args = ()
        if not defaults:
            resources = os.path.join(workdir, f"resources-{app_id}")
            os.makedirs(resources)
            db = os.path.join(workdir, f"state-{app_id}.db")
            with open(os.path.join(resources, "stores.yaml"), "w") as f:
                f.write(component("durable", "state.sqlite", {"connectionString": db}))
                f.write("---\n")
                f.write(component("mem", "state.in-memory", {}))
                # A lock store and secret stores, for test_secrets_lock.
                f.write("---\n")
                f.write(component("lockstore", "lock.sqlite",
                                  {"connectionString": os.path.join(workdir, f"lock-{app_id}.db")}))
                secrets = os.path.join(workdir, f"secrets-{app_id}.json")
                with open(secrets, "w") as s:
                    s.write('{"db": {"user": "admin", "password": "p4ss"}, "token": "t0k3n"}')
                f.write("---\n")
                f.write(component("files", "secretstores.local.file",
                                  {"secretsFile": secrets, "multiValued": "true"}))
                f.write("---\n")
                f.write(component("env", "secretstores.local.env", {"prefix": "MECHA_SDK_SECRET_"}))
                for _, yaml in extra_stores:
                    f.write("---\n")
                    f.write(yaml)
            resources_args = ("--resources-path", resources)
        env = dict(os.environ, MECHA_SDK_SECRET_GREETING="hello from the environment")
        env.pop("DAPR_API_TOKEN", None)
        if token:
            env["DAPR_API_TOKEN"] = token
        self.log = open(os.path.join(workdir, f"sidecar-{app_id}.log"), "w+")
        self.process = subprocess.Popen(
            [mecha, "sidecar", "--app-id", app_id,
             "--dapr-http-port", str(self.http_port), "--dapr-grpc-port", str(self.grpc_port),
             "--metrics-port", str(free_port()), "--dapr-listen-addresses", "127.0.0.1",
             "--data-dir", data_dir or os.path.join(workdir, "data"), *resources_args,
             *app_args],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        # outbound=True: ready for the app's calls, before the app listens
        # (what an SDK app that calls its runtime as it starts waits for).
        self.wait_healthy("/v1.0/healthz/outbound" if outbound else "/v1.0/healthz")

    def logs(self):
        self.log.seek(0)
        return self.log.read()

    def wait_healthy(self, path="/v1.0/healthz"):
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("mecha exited early:\n" + self.logs())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}") as r:
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


def wait_port(port, process, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app on port {port} exited early")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def run_module(module, caller, label, extra_env=None, token=None):
    env = dict(os.environ)
    env.update(DAPR_HTTP_PORT=str(caller.http_port), DAPR_GRPC_PORT=str(caller.grpc_port),
               DAPR_RUNTIME_HOST="127.0.0.1", DAPR_HEALTH_TIMEOUT="20")
    env.pop("DAPR_API_TOKEN", None)
    if token:
        env["DAPR_API_TOKEN"] = token
    env.update(extra_env or {})
    print(f"--- python SDK: {label}", flush=True)
    return subprocess.run([sys.executable, "-m", "unittest", "-v", module], cwd=HERE, env=env).returncode


def stop_all(sidecars, failed):
    code = 0
    for sidecar in sidecars:
        try:
            sidecar.stop()
        except RuntimeError as err:
            print(err, file=sys.stderr)
            code = 1
        if failed:
            print(sidecar.logs(), file=sys.stderr)
    return code


def run(mecha, module, token=None, databases=False):
    """Runs `module` (unittest) against a fresh sidecar; returns its exit
    code. With databases=True the sidecar also has a state store on each
    local database that answers, named in MECHA_SDK_STORES."""
    with tempfile.TemporaryDirectory() as workdir:
        stores = database_stores() if databases else []
        sidecar = Sidecar(mecha, workdir, app_id="sdk-app", token=token, extra_stores=stores)
        label = f"{module}" + (" (with DAPR_API_TOKEN)" if token else "")
        if stores:
            label += " (also on " + ", ".join(name for name, _ in stores) + ")"
        env = {"MECHA_SDK_STORES": ",".join(name for name, _ in stores if name != "config")}
        code = run_module(module, sidecar, label, extra_env=env, token=token)
        return code or stop_all([sidecar], code != 0)


def run_invoke(mecha, protocol):
    """Invocation: an SDK gRPC app and an HTTP app, each behind a runtime,
    called from a third runtime through the SDK."""
    with tempfile.TemporaryDirectory() as workdir:
        data = os.path.join(workdir, "data")
        grpc_port, http_port = free_port(), free_port()
        apps = [
            subprocess.Popen([sys.executable, os.path.join(HERE, "apps", "grpc_app.py"), str(grpc_port)]),
            subprocess.Popen([sys.executable, os.path.join(HERE, "apps", "http_app.py"), str(http_port)]),
        ]
        sidecars = []
        code = 1
        try:
            wait_port(grpc_port, apps[0])
            wait_port(http_port, apps[1])
            sidecars.append(Sidecar(mecha, workdir, "py-grpc-app", data_dir=data,
                                    app_args=("--app-port", str(grpc_port), "--app-protocol", "grpc")))
            sidecars.append(Sidecar(mecha, workdir, "py-http-app", data_dir=data,
                                    app_args=("--app-port", str(http_port))))
            caller = Sidecar(mecha, workdir, "py-caller", data_dir=data)
            sidecars.append(caller)
            code = run_module("test_invoke", caller, f"test_invoke (invocation over {protocol})",
                              {"DAPR_API_METHOD_INVOCATION_PROTOCOL": protocol})
        finally:
            code = stop_all(sidecars, code != 0) or code
            for app in apps:
                app.terminate()
                app.wait(timeout=10)
        return code


def run_pubsub(mecha):
    """Pub/sub: an SDK gRPC subscriber app and a FastAPI one, each behind a
    runtime, get what a third runtime publishes through the SDK. All three
    use the embedded `pubsub` of one data directory."""
    with tempfile.TemporaryDirectory() as workdir:
        data = os.path.join(workdir, "data")
        records = os.path.join(workdir, "records")
        os.makedirs(records)
        grpc_port, http_port = free_port(), free_port()
        apps = [
            subprocess.Popen([sys.executable, os.path.join(HERE, "apps", "pubsub_grpc_app.py"), str(grpc_port),
                              os.path.join(records, "grpc.jsonl")]),
            subprocess.Popen([sys.executable, os.path.join(HERE, "apps", "pubsub_http_app.py"), str(http_port),
                              os.path.join(records, "http.jsonl")]),
        ]
        sidecars = []
        code = 1
        try:
            wait_port(grpc_port, apps[0])
            wait_port(http_port, apps[1])
            sidecars.append(Sidecar(mecha, workdir, "py-grpc-sub", data_dir=data, defaults=True,
                                    app_args=("--app-port", str(grpc_port), "--app-protocol", "grpc")))
            sidecars.append(Sidecar(mecha, workdir, "py-http-sub", data_dir=data, defaults=True,
                                    app_args=("--app-port", str(http_port))))
            publisher = Sidecar(mecha, workdir, "py-publisher", data_dir=data, defaults=True)
            sidecars.append(publisher)
            code = run_module("test_pubsub", publisher, "test_pubsub (publish, subscribe, streaming)",
                              {"PUBSUB_RECORDS": records})
        finally:
            code = stop_all(sidecars, code != 0) or code
            for app in apps:
                app.terminate()
                app.wait(timeout=10)
        return code


def run_bindings(mecha):
    """Bindings: an SDK gRPC app takes the input bindings of its runtime
    (cron, and a RabbitMQ queue when the broker answers); the test calls
    the same runtime's output bindings through the SDK."""
    with tempfile.TemporaryDirectory() as workdir:
        records = os.path.join(workdir, "bindings.jsonl")
        open(records, "w").close()
        files = os.path.join(workdir, "files")
        bindings = [("storage", component("storage", "bindings.localstorage", {"rootPath": files})),
                    ("ticks", component("ticks", "bindings.cron", {"schedule": "@every 1s"}))]
        queue = ""
        rabbit = os.environ.get("MECHA_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
        if reachable("RabbitMQ", rabbit.split("@")[-1].split("/")[0]):
            queue = f"mecha-sdk-{os.getpid()}-{int(time.time())}"
            bindings.append(("orders", component("orders", "bindings.rabbitmq", {
                "host": rabbit, "queueName": queue, "deleteWhenUnused": "true"})))
        grpc_port = free_port()
        app = subprocess.Popen([sys.executable, os.path.join(HERE, "apps", "bindings_grpc_app.py"),
                                str(grpc_port), records])
        sidecars = []
        code = 1
        try:
            wait_port(grpc_port, app)
            sidecar = Sidecar(mecha, workdir, "py-bindings", extra_stores=bindings,
                              app_args=("--app-port", str(grpc_port), "--app-protocol", "grpc"))
            sidecars.append(sidecar)
            code = run_module("test_bindings", sidecar, "test_bindings (invoke_binding, @app.binding)",
                              {"BINDING_RECORDS": records, "BINDING_QUEUE": queue})
        finally:
            code = stop_all(sidecars, code != 0) or code
            app.terminate()
            app.wait(timeout=10)
        return code


def run_jobs(mecha):
    """Jobs: an SDK gRPC app takes the job events of its runtime, whose
    resources path declares no scheduler (the embedded one serves); the
    test schedules through the SDK."""
    with tempfile.TemporaryDirectory() as workdir:
        records = os.path.join(workdir, "jobs.jsonl")
        open(records, "w").close()
        grpc_port = free_port()
        app = subprocess.Popen([sys.executable, os.path.join(HERE, "apps", "jobs_grpc_app.py"),
                                str(grpc_port), records])
        sidecars = []
        code = 1
        try:
            wait_port(grpc_port, app)
            sidecar = Sidecar(mecha, workdir, "py-jobs",
                              app_args=("--app-port", str(grpc_port), "--app-protocol", "grpc"))
            sidecars.append(sidecar)
            code = run_module("test_jobs", sidecar, "test_jobs (schedule_job, get_job, @app.job_event)",
                              {"JOB_RECORDS": records})
        finally:
            code = stop_all(sidecars, code != 0) or code
            app.terminate()
            app.wait(timeout=10)
        return code


def run_actors(mecha):
    """Actors: an SDK actor app (dapr.actor, hosted by dapr.ext.fastapi's
    DaprActor) behind its runtime, called through another runtime with
    ActorProxy. Both runtimes share a data directory: its address book and
    its embedded placement."""
    with tempfile.TemporaryDirectory() as workdir:
        data = os.path.join(workdir, "data")
        records = os.path.join(workdir, "actors.jsonl")
        open(records, "w").close()
        port, api = free_port(), (free_port(), free_port())
        sidecars = []
        app = None
        code = 1
        try:
            # The SDK's actor runtime reaches its runtime as it starts (its
            # state manager, and a health check before it listens), so the
            # runtime comes first, on ports the app is told.
            sidecars.append(Sidecar(mecha, workdir, "py-actors", data_dir=data, defaults=True,
                                    app_args=("--app-port", str(port)), ports=api, outbound=True))
            app = subprocess.Popen([sys.executable, os.path.join(HERE, "apps", "actor_app.py"), str(port), records],
                                   env=dict(os.environ, DAPR_HTTP_PORT=str(api[0]), DAPR_GRPC_PORT=str(api[1]),
                                            DAPR_RUNTIME_HOST="127.0.0.1"))
            wait_port(port, app)
            sidecars[0].wait_healthy()
            caller = Sidecar(mecha, workdir, "py-actor-caller", data_dir=data, defaults=True)
            sidecars.append(caller)
            code = run_module("test_actors", caller, "test_actors (ActorProxy, DaprActor, timers, reminders)",
                              {"ACTOR_RECORDS": records})
        finally:
            code = stop_all(sidecars, code != 0) or code
            if app is not None:
                app.terminate()
                app.wait(timeout=10)
        return code


def run_js(mecha):
    """The official JS SDK's smoke test (tests/sdk/js/invoke.mjs)."""
    js = os.path.join(HERE, "..", "js")
    with tempfile.TemporaryDirectory() as workdir:
        data = os.path.join(workdir, "data")
        port = free_port()
        app = subprocess.Popen([sys.executable, os.path.join(HERE, "apps", "http_app.py"), str(port)])
        sidecars = []
        code = 1
        try:
            wait_port(port, app)
            sidecars.append(Sidecar(mecha, workdir, "js-http-app", data_dir=data, app_args=("--app-port", str(port))))
            caller = Sidecar(mecha, workdir, "js-caller", data_dir=data)
            sidecars.append(caller)
            env = dict(os.environ, DAPR_HTTP_PORT=str(caller.http_port), DAPR_GRPC_PORT=str(caller.grpc_port))
            print("--- JS SDK: invoke.mjs", flush=True)
            code = subprocess.run(["node", "invoke.mjs"], cwd=js, env=env, timeout=120).returncode
        finally:
            code = stop_all(sidecars, code != 0) or code
            app.terminate()
            app.wait(timeout=10)
        return code


def run_js_app(mecha, script, app_id, app_args=(), outbound=False):
    """A JS SDK smoke test that is the app itself (a DaprServer): it learns
    its runtime's ports first, and the runtime starts once the app
    listens."""
    js = os.path.join(HERE, "..", "js")
    with tempfile.TemporaryDirectory() as workdir:
        app_port, http_port, grpc_port = free_port(), free_port(), free_port()
        env = dict(os.environ, APP_PORT=str(app_port), DAPR_HTTP_PORT=str(http_port),
                   DAPR_GRPC_PORT=str(grpc_port))
        print(f"--- JS SDK: {script}", flush=True)
        node = subprocess.Popen(["node", script], cwd=js, env=env)
        sidecars = []
        code = 1
        try:
            wait_port(app_port, node)
            sidecars.append(Sidecar(mecha, workdir, app_id, defaults=True, ports=(http_port, grpc_port),
                                    app_args=("--app-port", str(app_port), *app_args), outbound=outbound))
            code = node.wait(timeout=120)
        finally:
            if node.poll() is None:
                node.kill()
                node.wait()
            code = stop_all(sidecars, code != 0) or code
        return code


def run_js_pubsub(mecha):
    """The JS SDK's pub/sub smoke test (tests/sdk/js/pubsub.mjs): it is the
    app (an HTTP DaprServer) and the publisher."""
    return run_js_app(mecha, "pubsub.mjs", "js-pubsub")


def run_js_actors(mecha):
    return run_js_app(mecha, "actors.mjs", "js-actors", outbound=True)


def run_js_jobs(mecha):
    """The JS SDK's jobs smoke test (tests/sdk/js/jobs.mjs): a gRPC
    DaprServer app whose runtime fires a job to it."""
    return run_js_app(mecha, "jobs.mjs", "js-jobs", ("--app-protocol", "grpc"))


def run_mecha_run(mecha):
    """`mecha run` as a user would: it runs a Python app that uses the SDK,
    `mecha list` shows it, and `mecha stop` stops it."""
    import json
    import queue
    import threading

    print("--- mecha run with a Python SDK app", flush=True)
    with tempfile.TemporaryDirectory() as data:
        run = subprocess.Popen(
            [mecha, "run", "--app-id", "py-run", "--data-dir", data, "--",
             sys.executable, os.path.join(HERE, "apps", "sdk_state_app.py")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in run.stdout], daemon=True).start()
        seen = []

        def expect(text, timeout=30):
            deadline = time.time() + timeout
            while time.time() < deadline:
                try:
                    line = lines.get(timeout=0.2)
                except queue.Empty:
                    continue
                seen.append(line)
                if text in line:
                    return line
            raise AssertionError(f"no line with {text!r} in:\n{''.join(seen)}")

        try:
            expect("== APP == sdk app ready: hello from py-run")
            listed = json.loads(subprocess.run([mecha, "list", "-o", "json", "--data-dir", data],
                                               capture_output=True, text=True, check=True).stdout)
            assert [row["appId"] for row in listed] == ["py-run"], listed
            port = listed[0]["httpPort"]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1.0/state/statestore/greeting") as r:
                assert r.read() == b"hello from py-run", "the app's state is in its runtime"
            stopped = subprocess.run([mecha, "stop", "--app-id", "py-run", "--data-dir", data],
                                     capture_output=True, text=True)
            assert stopped.returncode == 0, stopped.stderr
            expect("== APP == sdk app stopping")
            assert run.wait(timeout=20) == 0
            listed = json.loads(subprocess.run([mecha, "list", "-o", "json", "--data-dir", data],
                                               capture_output=True, text=True, check=True).stdout)
            assert listed == [], listed
            print("ok - mecha run, list and stop", flush=True)
            return 0
        except AssertionError as err:
            print(f"FAIL: {err}", file=sys.stderr)
            return 1
        finally:
            if run.poll() is None:
                run.kill()


if __name__ == "__main__":
    mecha, suites = sys.argv[1], sys.argv[2:] or ["python", "js", "run"]
    failures = 0
    if "python" in suites:
        failures += (run(mecha, "test_state", databases=True) + run(mecha, "test_state", token="sdk-token")
                     + run(mecha, "test_secrets_lock") + run(mecha, "test_configuration", databases=True)
                     + run_invoke(mecha, "http") + run_invoke(mecha, "grpc") + run_pubsub(mecha)
                     + run_bindings(mecha) + run_jobs(mecha) + run_actors(mecha))
    if "js" in suites:
        failures += run_js(mecha) + run_js_pubsub(mecha) + run_js_jobs(mecha) + run_js_actors(mecha)
    if "run" in suites:
        failures += run_mecha_run(mecha)
    sys.exit(1 if failures else 0)
