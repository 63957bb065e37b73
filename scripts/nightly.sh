#!/usr/bin/env bash
# The nightly job a GPU box runs: every recipe, every variant, every device; results kept under a timestamp
# and compared with the last baseline for the same environment (hash of CPU/GPU/driver/CUDA/runtimes).
#
#   scripts/nightly.sh [--ray] [--families a,b] [--devices cpu,cuda:0]
#
# Layout under $WEIGHTPACK_NIGHTLY_DIR (default ./nightly):
#   runs/<UTC timestamp>/<family>/...        pack output (report.json, zips, goldens/)
#   runs/<UTC timestamp>/pytest-benchmark.json, parity.xml, <family>.compare.md
#   baselines/<env key>/<family>/report.json the last run that passed its comparison on this environment
# Exit code: 0 all good, 1 a check failed or a regression was found.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
ROOT=${WEIGHTPACK_NIGHTLY_DIR:-nightly}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="$ROOT/runs/$STAMP"
USE_RAY=0
FAMILIES=""
DEVICES=""
while [ $# -gt 0 ]; do
  case "$1" in
    --ray) USE_RAY=1 ;;
    --families) FAMILIES="$2"; shift ;;
    --devices) DEVICES="$2"; shift ;;
    *) echo "nightly.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$RUN"
status=0
if [ -z "$FAMILIES" ]; then
  FAMILIES=$("$PY" -m packager.cli --list --json | "$PY" -c 'import json,sys; print(",".join(f["family"] for f in json.load(sys.stdin)))')
fi
DEVICE_ARGS=()
[ -n "$DEVICES" ] && DEVICE_ARGS=(--devices "$DEVICES")

# 1. pack + verify (parity gate, latency with raw samples) every family, all variants
IFS=',' read -r -a FAMILY_LIST <<< "$FAMILIES"
if [ "$USE_RAY" = 1 ]; then
  # one Ray task per family x variant x backend (num_gpus=1 each when the cluster has GPUs)
  "$PY" -m bench.nightly.fanout --ray --families "$FAMILIES" --out "$RUN/fanout" -- "${DEVICE_ARGS[@]}" || status=1
else
  for family in "${FAMILY_LIST[@]}"; do
    variants=$("$PY" -m packager.cli --list --json | "$PY" -c "import json,sys; print(','.join(next(f['variants'] for f in json.load(sys.stdin) if f['family']=='$family')))")
    "$PY" -m packager.cli "$family" --variants "$variants" "${DEVICE_ARGS[@]}" --out "$RUN/$family" --quiet || status=1
  done
fi

# 2. pytest plugin: parity against goldens + pytest-benchmark latency, per family x variant x backend x device
PLUGIN_ARGS=()
"$PY" -c 'import importlib.metadata as m, sys; sys.exit(0 if any(e.name == "weightpack" for e in m.entry_points(group="pytest11")) else 1)' \
  || PLUGIN_ARGS=(-p bench.nightly.plugin)
GOLDEN_ARGS=()
for d in "$RUN"/*/report.json "$RUN"/fanout/*/*/report.json; do
  [ -f "$d" ] && GOLDEN_ARGS+=("--weightpack-goldens=$(dirname "$d")")
done
[ -n "$DEVICES" ] && GOLDEN_ARGS+=("--weightpack-devices=$DEVICES")
if [ ${#GOLDEN_ARGS[@]} -gt 0 ]; then
  "$PY" -m pytest "${PLUGIN_ARGS[@]}" -q -o addopts= -o junit_family=xunit1 "${GOLDEN_ARGS[@]}" \
    --benchmark-json="$RUN/pytest-benchmark.json" --junitxml="$RUN/parity.xml" || status=1
fi

# 3. compare each report with the last baseline for the same environment
for report in "$RUN"/*/report.json "$RUN"/fanout/*/*/report.json; do
  [ -f "$report" ] || continue
  family=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["family"])' "$report")
  name=$(basename "$(dirname "$report")")
  [ "$name" = "$family" ] || name="$family/$name"
  key=$("$PY" -m packager.cli compare --env-key "$report")
  baseline="$ROOT/baselines/$key/$name/report.json"
  md="$RUN/$(echo "$name" | tr / -).compare.md"
  if [ -f "$baseline" ]; then
    if "$PY" -m packager.cli compare "$baseline" "$report" --markdown "$md" > /dev/null; then
      promote=1
    else
      echo "nightly: regression in $name (see $md)" >&2; status=1; promote=0
    fi
  else
    echo "nightly: no baseline for $name on environment $key yet; this run becomes it" | tee "$md"
    promote=1
  fi
  if [ "$promote" = 1 ] && "$PY" -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["passed"] else 1)' "$report"; then
    mkdir -p "$(dirname "$baseline")" && cp "$report" "$baseline.tmp" && mv "$baseline.tmp" "$baseline"
  fi
done
echo "nightly: results in $RUN (exit $status)"
exit $status
