#!/usr/bin/env bash
# The whole test suite: set up, lint, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${WEIGHTPACK_VENV:-.venv}/bin/activate"
ruff check .
exec python -m pytest -q "$@"
