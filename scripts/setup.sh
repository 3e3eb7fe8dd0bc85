#!/usr/bin/env bash
# Create the virtual environment .venv (once) and install cirlab into it with its extras.
#
# torch and torchvision are installed first as TORCH_SPEC (default: the releases this project is
# tested with); set TORCH_SPEC to pick another build, e.g. TORCH_SPEC="torch torchvision".
# The install is skipped when pyproject.toml and TORCH_SPEC are unchanged since the last one.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
export PIP_NO_CACHE_DIR=1  # the wheels are installed once; a cached copy would only take disk space
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
stamp=".venv/.cirlab-install-stamp"
wanted="$(cat pyproject.toml; echo "$TORCH_SPEC")"
wanted_hash="$(printf '%s' "$wanted" | sha256sum | cut -d' ' -f1)"

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted_hash" ]; then
    exit 0
fi
echo "setup: installing $TORCH_SPEC and cirlab[serve,dev] into .venv (a few minutes the first time)"
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
# shellcheck disable=SC2086
.venv/bin/python -m pip install --quiet $TORCH_SPEC 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install --quiet -e ".[serve,dev]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import cirlab, torch, open_clip, faiss" || { echo "setup: install failed" >&2; exit 1; }
printf '%s' "$wanted_hash" > "$stamp"
echo "setup: done"
