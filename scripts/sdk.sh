#!/usr/bin/env bash
# The official Dapr SDKs against the real mecha binary:
# - Python: dapr[grpc,fastapi]==1.19.0 (with fastapi and uvicorn) from PyPI,
#   installed into .venv;
# - JS: @dapr/dapr@3.18.0 from npm, installed into tests/sdk/js/node_modules
#   from the committed lockfile.
# Both folders are ignored by git. Uses target/debug/mecha unless MECHA_BIN
# is set. Pass `python` or `js` to run one suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
sdk_version="1.19.0"

# The Python SDK with its `grpc` extra (dapr.ext.grpc, for SDK-served apps)
# and its `fastapi` extra (dapr.ext.fastapi; since 1.19 the extensions are
# extras of the core package, not dapr-ext-* packages), with FastAPI and
# uvicorn pinned.
fastapi_version="0.165.0"
uvicorn_version="0.54.0"
if ! "$venv/bin/python" -c "
import importlib.metadata as m, cloudevents
assert m.version('dapr') == '$sdk_version'
assert m.version('fastapi') == '$fastapi_version'
assert m.version('uvicorn') == '$uvicorn_version'" 2>/dev/null; then
  echo "installing dapr[grpc,fastapi]==$sdk_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "dapr[grpc,fastapi]==$sdk_version" \
    "fastapi==$fastapi_version" "uvicorn==$uvicorn_version"
fi

js="$root/tests/sdk/js"
if [ ! -f "$js/node_modules/@dapr/dapr/package.json" ]; then
  echo "installing @dapr/dapr into $js/node_modules"
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi

mecha="${MECHA_BIN:-$root/target/debug/mecha}"
if [ -z "${MECHA_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet -p mecha)
fi
exec "$venv/bin/python" "$root/tests/sdk/python/harness.py" "$mecha" "$@"
