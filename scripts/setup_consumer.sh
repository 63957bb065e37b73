#!/usr/bin/env bash
# Create (or reuse) .venv-consumer: the real consumer, inference-models 0.39.6, next to weightpack.
#
# Why a second venv: inference-models pins transformers<5.16, rich<15, pillow<13, filelock<4 and (onnx-cpu
# extra) onnxruntime<1.23, all older than what the main .venv holds. Why --no-deps: its requirements list pulls in
# every model family it ships (diffusers, timm, bitsandbytes, doctr, easyocr, SAM, GroundingDINO, ...),
# about 2 GB, none of which the parts weightpack exercises import (the weights provider and manifest
# parsers, AutoModel and the ONNX model classes). Those parts' own requirements are installed below with
# inference-models' version pins (scripts/consumer-requirements.txt), so `pip check` lists only the
# families left out. rapidocr-onnxruntime ships the PP-OCRv4 weights of recipes/ppocr.toml and its
# reference pipeline (installed --no-deps as well: it wants opencv-python, the headless build is enough).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${WEIGHTPACK_CONSUMER_VENV:-.venv-consumer}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q)
"$VENV/bin/python" -m pip install -q --upgrade pip
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "${PIP[@]}" "torch>=2.4,<2.14"
  else
    "${PIP[@]}" "torch==2.13.0"
  fi
fi
"${PIP[@]}" -r scripts/consumer-requirements.txt -c scripts/consumer-requirements.txt
# torchvision: PyPI's Linux wheels link torch's CUDA libraries (libc10_cuda.so), so with the CPU build of
# torch `import torchvision` fails outright, which breaks the consumer's environment probe; without it the
# probe reports "no torchvision" and the ONNX classes load. Installed only next to a CUDA build of torch.
if "$VENV/bin/python" -c "import sys, torch; sys.exit(0 if torch.version.cuda else 1)"; then
  "${PIP[@]}" "torchvision<0.30"
fi
"${PIP[@]}" --no-deps "inference-models==0.39.6" "rapidocr-onnxruntime==1.4.4" "rapidocr==3.10.0"
# weightpack itself, so that `.venv-consumer/bin/pack` verifies through the consumer's classes (the
# constraints keep the consumer's pins). tests/consumer runs in the main venv and reaches this one through
# packager/consumer/bridge.py.
"${PIP[@]}" -e . -c scripts/consumer-requirements.txt
