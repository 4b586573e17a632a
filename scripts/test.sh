#!/usr/bin/env bash
# The test command: installs what is missing, then lint, types and the default test tier.
# --slow runs the slow tier instead (crash matrices, many-machine scenarios, soaks).
# Extra arguments go to pytest (e.g. scripts/test.sh -k sim -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
if [ "${1:-}" = "--slow" ]; then
  shift
  exec .venv/bin/pytest -m slow "$@"
fi
exec .venv/bin/pytest "$@"
