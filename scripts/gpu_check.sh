#!/usr/bin/env bash
# The GPU check, sized for the lent machine: one H200, NO internet, 64 MiB carried per call, about 8 minutes
# of work (the lease is 15 minutes, start-up included). It uses the box's own python3 (torch with CUDA,
# onnx, onnxruntime CPU, transformers, pytest are there). What the box lacks comes in `.whl/`, prepared
# here by scripts/gpu_wheels.sh: small wheels (facenet-pytorch for MTCNN, onnxconverter-common) installed
# --no-deps into /tmp/site, and MiniLM's weights as an fp16 safetensors copy (~45 MB) restored to fp32.
#
#   bash scripts/gpu_check.sh              # on the GPU box: results under $OUT (default ./gpu-check-out)
#   bash scripts/gpu_check.sh --dry-run    # anywhere: the same steps on the CPU, small (CI runs this)
#
# Results: $OUT/summary.md + summary.json (steps, skip reasons, parity, latency, timers, cold start,
# memory), env.json, junit.xml, nightly.xml, pack-*-report.json and one log per step.
# Exit status: 0 when no step failed (skips, e.g. TensorRT absent, are reported, not failures).
# The logic lives in scripts/gpu_check.py; the overall budget is --budget-s (default 450 s).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
SITE=/tmp/weightpack-site
if [ -d .whl ] && compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl >"$OUT/wheels.log" 2>&1 ||
    echo "pip install of .whl/ failed (see wheels.log)" >&2
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
{ nvidia-smi 2>&1 | head -20; } >"$OUT/nvidia-smi.txt" 2>&1 || true
OUT="$OUT" exec "$PY" scripts/gpu_check.py --out "$OUT" "$@"
