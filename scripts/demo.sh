#!/usr/bin/env bash
# The demo: set up, then build and verify the built-in MiniLM family (real weights, fully offline).
# Extra arguments go to `pack`, e.g. scripts/demo.sh --devices cuda
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${WEIGHTPACK_VENV:-.venv}/bin/activate"
export HF_HUB_OFFLINE=1
exec pack minilm --variants l6 --out out/minilm "$@"
