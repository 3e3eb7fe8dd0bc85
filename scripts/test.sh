#!/usr/bin/env bash
# Set up .venv (see setup.sh), then lint and run the whole test suite, offline and on CPU.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" tests/data
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_browser.sh
export HF_HUB_OFFLINE=1 CIRLAB_NO_PROGRESS=1 OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
.venv/bin/ruff check src tests
exec .venv/bin/python -m pytest "$@"
