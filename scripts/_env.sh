# Shared set-up for the scripts: a pinned uv, then the locked dependencies in .venv.
# Sourced, not executed; leaves the shell in the repository root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

UV_VERSION="0.13.8"
UV_HOME=".cache/uv-tool"
export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1

if [ ! -x "$UV_HOME/bin/uv" ] || [ "$("$UV_HOME/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "==> installing uv $UV_VERSION"
  python3 -m venv "$UV_HOME"
  "$UV_HOME/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
UV="$UV_HOME/bin/uv"
echo "==> syncing .venv with uv.lock"
"$UV" sync --frozen --quiet --python python3.11
PY=".venv/bin/python"
