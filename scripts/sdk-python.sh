#!/usr/bin/env bash
# The official Dapr Python SDK (dapr==1.19.0, from PyPI) against the real
# mecha binary. The SDK is installed into .venv in the repository (ignored
# by git). Uses target/debug/mecha unless MECHA_BIN is set.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
sdk_version="1.19.0"

if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('dapr') == '$sdk_version'" 2>/dev/null; then
  echo "installing dapr==$sdk_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "dapr==$sdk_version"
fi

mecha="${MECHA_BIN:-$root/target/debug/mecha}"
if [ -z "${MECHA_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet -p mecha)
fi
exec "$venv/bin/python" "$root/tests/sdk/python/harness.py" "$mecha"
