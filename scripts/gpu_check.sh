#!/usr/bin/env bash
# The GPU check, sized for the lent machine: one H200, NO internet, 64 MiB carried per call, at most 8 files
# of 16 MiB back from $OUT, 15 minutes of device time per session (start-up, transfers and idle included).
# One run ends within DEVICE_TIMEOUT_S (scripts/gpu_check.py: a 300 s step budget plus this script's own
# work). Up to six device calls, back to back (the machine stays warm 30 s after each; docs/gpu-results.md):
#   run(command="python3 scripts/gpu_check_carry.py receive",
#       carry=[".gpu-carry/ort-gpu.json", ".gpu-carry/ort-gpu.1"], timeout_s=60)     # then .2 ... .5
#   run(command="bash scripts/gpu_check.sh", carry=[".whl", ".gpu-carry/ort-gpu.json"], timeout_s=360)
# It uses the box's own python3 (torch with CUDA, onnx, onnxruntime CPU, transformers, pytest are there).
# What the box lacks comes in `.whl/` and `.gpu-carry/`, prepared here by scripts/gpu_wheels.sh: small
# wheels (facenet-pytorch for MTCNN, onnxconverter-common) installed --no-deps into a temporary site
# folder, MiniLM's weights as an fp16 safetensors copy (~45 MB) restored to fp32, and onnxruntime-gpu in
# parts (five, as the tree is now) that the ort-wheel step reassembles and installs there. TensorRT cannot come (its libraries
# are not on PyPI as wheels): that step is skipped with the reason.
#
#   bash scripts/gpu_check.sh              # on the GPU box: results under $OUT (default ./gpu-check-out)
#   bash scripts/gpu_check.sh --dry-run    # anywhere: the same steps on the CPU, small (CI runs this)
#
# Results: exactly three files in $OUT, rewritten after every step: summary.md, summary.json (steps with
# the reason of every skip and every step not run, parity, latency, timers, cold start, memory) and
# details.tar.gz (env.json, junit.xml, nightly.xml, pack-*-report.json, one log per step, nvidia-smi.txt,
# wheels.log). Exit status: 0 when every step passed or was skipped for a reason (TensorRT absent); 1 when
# a step failed or was not run (time budget spent, no CUDA device).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
# everything but the summary is written here, then archived into $OUT/details.tar.gz by gpu_check.py
DETAILS="$(mktemp -d "${TMPDIR:-/tmp}/weightpack-gpu-check-details-XXXXXX")"
SITE="$(mktemp -d "${TMPDIR:-/tmp}/weightpack-gpu-check-site-XXXXXX")"
trap 'rm -rf "$DETAILS" "$SITE"' EXIT
if [ -d .whl ] && compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl >"$DETAILS/wheels.log" 2>&1 ||
    echo "pip install of .whl/ failed (see wheels.log in details.tar.gz)" >&2
fi
# the site folder comes first on every step's path: the ort-wheel step installs onnxruntime-gpu there, in
# front of the box's CPU onnxruntime (another folder, so the two never overwrite each other's files)
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" WEIGHTPACK_GPU_SITE="$SITE"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
{ nvidia-smi 2>&1 | head -20; } >"$DETAILS/nvidia-smi.txt" 2>&1 || true
"$PY" scripts/gpu_check.py --out "$OUT" --details "$DETAILS" "$@"
