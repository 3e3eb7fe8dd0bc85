#!/usr/bin/env bash
# Set up .venv (see setup.sh), then run the main job: `cirlab demo` (arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/cirlab demo "$@"
