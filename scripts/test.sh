#!/usr/bin/env bash
# The whole test suite: set up, lint, then pytest. Extra arguments go to pytest.
#   scripts/test.sh --fast   the quick loop: every test not marked slow (no real-weights end-to-end run)
# Tests run in one pytest-xdist worker per CPU, at most 4 (WEIGHTPACK_TEST_WORKERS=N overrides; 1 runs them
# in this process), a test file per worker (--dist loadfile: a file's tests share its fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."
MARK=()
if [ "${1:-}" = "--fast" ]; then
  shift
  MARK=(-m "not slow")
fi
WORKERS="${WEIGHTPACK_TEST_WORKERS:-$(nproc)}"
case "$WORKERS" in
  "" | *[!0-9]* | 0 | 0*) echo "WEIGHTPACK_TEST_WORKERS must be a whole number from 1, not '$WORKERS'" >&2; exit 2 ;;
esac
bash scripts/setup.sh
# the conformance suite (tests/consumer) fails instead of skipping when the consumer venv is missing,
# unless the set-up was told to leave it out
if [ "${WEIGHTPACK_SKIP_CONSUMER:-0}" != 1 ]; then export WEIGHTPACK_REQUIRE_CONSUMER=1; fi
# shellcheck disable=SC1091
. "${WEIGHTPACK_VENV:-.venv}/bin/activate"
ruff check .
[ "$WORKERS" -gt 4 ] && WORKERS=4
PARALLEL=()
[ "$WORKERS" -gt 1 ] && PARALLEL=(-n "$WORKERS" --dist loadfile)
exec python -m pytest -q "${PARALLEL[@]}" "${MARK[@]}" "$@"
