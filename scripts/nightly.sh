#!/usr/bin/env bash
# The nightly job: every recipe, every variant, every device; k independent runs per package (each a fresh
# process, interleaved across packages), compared with a window of the last N nights on the same
# environment (hash of CPU/GPU/driver/CUDA/runtimes), nights as a level (pack compare --method nights).
#
#   scripts/nightly.sh [--ray] [--families a,b] [--devices cpu,cuda:0] [--runs K] [--window N]
#                      [--threads T] [--clock auto|wall|cpu|device] [--threshold F] [--level Q]
#   scripts/nightly.sh --accept STAMP      accept night STAMP's regressions: it joins later windows
#
# Layout under $WEIGHTPACK_NIGHTLY_DIR (default ./nightly):
#   runs/<UTC stamp>/<family>/...              pack output (report.json, zips, goldens/)
#   runs/<UTC stamp>/runs/<family>/<package>/run-NN.json   the k runs per package (pack runs)
#   runs/<UTC stamp>/env-key                   environment key of this night
#   runs/<UTC stamp>/pytest-benchmark.json, parity.xml, <family>.compare.md, <family>.compare.json
#   history/<family>.html                      pack history of every night (open from disk)
# Baseline of a family: the runs of the last N (--window, default 10) earlier nights with the same env-key
# whose pack of that family passed its checks and whose comparison found no regression, unless accepted
# (packager/compare/window.py): a slowdown stays flagged until someone accepts it, instead of becoming the
# new normal. Clock: pack compare's default (auto: CPU time on CPU rows, wall time elsewhere), the same as
# in pack compare and the docs. Many rows: each family's comparison decides its tests together (Holm) at
# --level (0.05) split evenly over the families compared, so the nightly's family-wise rate is <= --level.
# Exit code: 0 all good (inconclusive rows included), 1 a check failed or a regression was found.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
ROOT=${WEIGHTPACK_NIGHTLY_DIR:-nightly}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="$ROOT/runs/$STAMP"
USE_RAY=0
FAMILIES=""
DEVICES=""
WINDOW=10
LEVEL=0.05
ACCEPT=""
RUN_ARGS=()
COMPARE_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ray) USE_RAY=1 ;;
    --families) FAMILIES="$2"; shift ;;
    --devices) DEVICES="$2"; shift ;;
    --window) WINDOW="$2"; shift ;;
    --level) LEVEL="$2"; shift ;;
    --accept) ACCEPT="$2"; shift ;;
    --runs|--threads|--min-iters|--min-time-s|--batch-sizes) RUN_ARGS+=("$1" "$2"); shift ;;
    --clock|--threshold|--p99-threshold|--method|--multiple) COMPARE_ARGS+=("$1" "$2"); shift ;;
    *) echo "nightly.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$ACCEPT" ]; then
  night="$ROOT/runs/$ACCEPT"
  [ -d "$night" ] || { echo "nightly.sh: --accept $ACCEPT: no night $night" >&2; exit 2; }
  found=0
  for json in "$night"/*.compare.json; do
    [ -f "$json" ] || continue
    if "$PY" -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("regressed") else 1)' "$json"; then
      touch "${json%.compare.json}.accepted"; found=1
      echo "nightly: accepted $(basename "${json%.compare.json}") of $ACCEPT: it joins later windows"
    fi
  done
  [ "$found" = 1 ] || echo "nightly: $ACCEPT has no regressed comparison to accept"
  exit 0
fi
mkdir -p "$RUN"
status=0
started=$(date +%s)
if [ -z "$FAMILIES" ]; then
  FAMILIES=$("$PY" -m packager.cli --list --json | "$PY" -c 'import json,sys; print(",".join(f["family"] for f in json.load(sys.stdin)))')
fi
DEVICE_ARGS=()
[ -n "$DEVICES" ] && DEVICE_ARGS=(--devices "$DEVICES")

# 1. pack + verify (parity gate, latency with raw samples) every family, all variants
IFS=',' read -r -a FAMILY_LIST <<< "$FAMILIES"
if [ "$USE_RAY" = 1 ]; then
  # pack FAMILY --ray per family: one Ray task per variant x backend x target, gathered into $RUN/<family>
  # ($RAY_ADDRESS, else the cluster ray start began on this machine; docs/cluster.md)
  "$PY" -m packager.nightly.fanout --ray --families "$FAMILIES" --out "$RUN" -- "${DEVICE_ARGS[@]}" || status=1
else
  for family in "${FAMILY_LIST[@]}"; do
    variants=$("$PY" -m packager.cli --list --json | "$PY" -c "import json,sys; print(','.join(next(f['variants'] for f in json.load(sys.stdin) if f['family']=='$family')))")
    # a family verified through inference-models' own classes (recipes/ppocr.toml) runs in the consumer's
    # venv (.venv-consumer, scripts/setup_consumer.sh); without one it is skipped, loudly
    fpy=$("$PY" -c "
import sys
from packager.consumer import bridge, is_consumer_class
from packager.recipes import default_recipe_dirs, resolve_family
recipe = resolve_family('$family', default_recipe_dirs())
consumer = any(is_consumer_class(b.model_class or '') for b in recipe.backends.values())
print((bridge.consumer_python() or '') if consumer else sys.executable)")
    if [ -z "$fpy" ]; then
      echo "nightly: skipping $family: it loads through inference-models; run scripts/setup_consumer.sh" >&2
      continue
    fi
    "$fpy" -m packager.cli "$family" --variants "$variants" "${DEVICE_ARGS[@]}" --out "$RUN/$family" --quiet || status=1
  done
fi

# 2. pytest plugin: parity against goldens + pytest-benchmark latency, per family x variant x backend x device
PLUGIN_ARGS=()
"$PY" -c 'import importlib.metadata as m, sys; sys.exit(0 if any(e.name == "weightpack" for e in m.entry_points(group="pytest11")) else 1)' \
  || PLUGIN_ARGS=(-p packager.nightly.plugin)
GOLDEN_ARGS=()
PACK_OUTS=()
for d in "$RUN"/*/report.json; do
  [ -f "$d" ] && GOLDEN_ARGS+=("--weightpack-goldens=$(dirname "$d")") && PACK_OUTS+=("$(dirname "$d")")
done
[ -n "$DEVICES" ] && GOLDEN_ARGS+=("--weightpack-devices=$DEVICES")
if [ ${#GOLDEN_ARGS[@]} -gt 0 ]; then
  "$PY" -m pytest "${PLUGIN_ARGS[@]}" -q -o addopts= -o junit_family=xunit1 "${GOLDEN_ARGS[@]}" \
    --benchmark-json="$RUN/pytest-benchmark.json" --junitxml="$RUN/parity.xml" || status=1
fi

# 3. k runs per package, each a fresh process, interleaved across every package of every family
if [ ${#PACK_OUTS[@]} -gt 0 ]; then
  "$PY" -m packager.cli runs "${PACK_OUTS[@]}" --into "$RUN/runs" --by-folder --quiet "${RUN_ARGS[@]}" || status=1
  "$PY" -m packager.cli compare --env-key "${PACK_OUTS[0]}/report.json" > "$RUN/env-key"
fi
key=$(cat "$RUN/env-key" 2>/dev/null || echo none)

# 4. compare each pack output's runs with the same runs of the last N nights on this environment; the
#    family-wise level is split evenly over the outputs compared (Holm within each, Bonferroni across)
FAMILY_LEVEL=$("$PY" -c "print($LEVEL / max(1, ${#PACK_OUTS[@]}))")
for out in "${PACK_OUTS[@]}"; do
  name=${out#"$RUN"/}                     # <family>
  label=$(basename "$out")                # the folder name pack runs labels its runs with
  current="$RUN/runs/$label"
  [ -d "$current" ] || continue
  stem=$(echo "$name" | tr / -)
  md="$RUN/$stem.compare.md"
  mapfile -t window < <("$PY" -m packager.compare.window "$ROOT/runs" "$RUN" "$name" "$label" "$key" "$WINDOW")
  if [ ${#window[@]} -eq 0 ]; then
    echo "nightly: no earlier night for $name on environment $key yet; this one starts the window" | tee "$md"
    continue
  fi
  if ! "$PY" -m packager.cli compare "${window[@]}" "$current" --markdown "$md" --json-out "$RUN/$stem.compare.json" \
      --level "$FAMILY_LEVEL" "${COMPARE_ARGS[@]}" > /dev/null; then
    echo "nightly: regression in $name against ${#window[@]} night(s) (see $md)" >&2; status=1
  fi
done

# 5. the history pages: every night on record, one static page per family
nights=()
for night in $(ls -1d "$ROOT"/runs/*/ 2>/dev/null | sort); do
  [ -d "${night%/}/runs" ] && nights+=("${night%/}")
done
if [ ${#nights[@]} -gt 0 ]; then
  "$PY" -m packager.cli history "${nights[@]}" --out "$ROOT/history" --window "$WINDOW" > /dev/null \
    || echo "nightly: pack history failed (the comparison above stands)" >&2
fi
echo "nightly: results in $RUN (exit $status, $(( $(date +%s) - started )) s); history in $ROOT/history"
exit $status
