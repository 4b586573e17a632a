#!/usr/bin/env bash
# The run command: installs what is missing, then starts the whole product (`dumont dev`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/dumont dev "$@"
