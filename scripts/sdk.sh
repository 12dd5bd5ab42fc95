#!/usr/bin/env bash
# The official Dapr SDKs against the real mecha binary:
# - Python: dapr[grpc]==1.19.0 from PyPI, installed into .venv;
# - JS: @dapr/dapr@3.18.0 from npm, installed into tests/sdk/js/node_modules
#   from the committed lockfile.
# Both folders are ignored by git. Uses target/debug/mecha unless MECHA_BIN
# is set. Pass `python` or `js` to run one suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
sdk_version="1.19.0"

# The Python SDK with its `grpc` extra (dapr.ext.grpc, for SDK-served apps).
if ! "$venv/bin/python" -c "import importlib.metadata as m, cloudevents; assert m.version('dapr') == '$sdk_version'" 2>/dev/null; then
  echo "installing dapr[grpc]==$sdk_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "dapr[grpc]==$sdk_version"
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
