#!/usr/bin/env bash
# The test command: installs what is missing, then lint, types and the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k sim -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
exec .venv/bin/pytest "$@"
