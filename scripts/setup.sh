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
# The default torch build (with its CUDA libraries) makes .venv about 6 GB; a full disk is the usual
# cause of a failed install, so say how much room there is before and after.
needed_gb=6
free_gb() { df -Pk .venv | awk 'NR == 2 { printf "%.1f", $4 / 1048576 }'; }
if awk -v free="$(free_gb)" -v needed="$needed_gb" 'BEGIN { exit !(free < needed) }'; then
    echo "setup: warning: $(free_gb) GB free on the disk of .venv; the install takes about $needed_gb GB" >&2
fi
echo "setup: installing $TORCH_SPEC and cirlab[serve,dev] into .venv (a few minutes the first time)"
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
# shellcheck disable=SC2086
.venv/bin/python -m pip install --quiet $TORCH_SPEC 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install --quiet -e ".[serve,dev]" 2>&1 | grep -v "is ignored" || true
if ! .venv/bin/python -c "import cirlab, torch, open_clip, faiss"; then
    echo "setup: install failed (pip's messages above; $(free_gb) GB free on the disk of .venv)" >&2
    exit 1
fi
printf '%s' "$wanted_hash" > "$stamp"
echo "setup: done"
