#!/usr/bin/env bash
# The demo, the product's promise end to end, offline: set up (.venv and .venv-consumer), then
#  1. start a local models registry (pack registry serve, kept in out/demo/registry);
#  2. pack PaddleOCR's text detector and recogniser (real PP-OCRv4 weights from rapidocr-onnxruntime),
#     each verified through inference-models' own class, and register them there;
#  3. pack verify-remote each, as a consumer would (download, md5, load through AutoModel, goldens);
#  4. load both back with AutoModel.from_pretrained and print the words found and read on a rendered page.
# Extra arguments go to both pack runs, e.g. scripts/demo.sh --no-latency. WEIGHTPACK_DEMO_OUT moves
# out/demo. The registry is stopped when the demo ends (its folder stays; a second run reuses it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
CONSUMER="${WEIGHTPACK_CONSUMER_VENV:-.venv-consumer}"
if [ ! -x "$CONSUMER/bin/pack" ]; then
  echo "demo: $CONSUMER has no pack: the demo needs the consumer (run without WEIGHTPACK_SKIP_CONSUMER=1)" >&2
  exit 3
fi
PACK="$CONSUMER/bin/pack"
OUT="${WEIGHTPACK_DEMO_OUT:-out/demo}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1
# the registry's key: pack --register sends it, and so does the consumer (ROBOFLOW_API_KEY); never printed
MODELS_SERVICE_INTERNAL_SECRET="${MODELS_SERVICE_INTERNAL_SECRET:-demo-$("$CONSUMER/bin/python" -c 'import secrets; print(secrets.token_hex(16))')}"
export MODELS_SERVICE_INTERNAL_SECRET
rm -f "$OUT/registry.url"
"$PACK" registry serve --root "$OUT/registry" --port 0 --ready-file "$OUT/registry.url" &
REGISTRY_PID=$!
trap 'kill "$REGISTRY_PID" 2>/dev/null || true; wait "$REGISTRY_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  [ -s "$OUT/registry.url" ] && break
  kill -0 "$REGISTRY_PID" 2>/dev/null || { echo "demo: the registry did not start" >&2; exit 3; }
  sleep 0.1
done
URL="$(cat "$OUT/registry.url")"
echo "== 1. local registry at $URL (state in $OUT/registry)"
echo "== 2. pack ppocr-det and ppocr, verified through inference-models' classes, registered"
"$PACK" ppocr-det --out "$OUT/ppocr-det" --register --execute --registry-url "$URL" "$@"
"$PACK" ppocr --out "$OUT/ppocr" --register --execute --registry-url "$URL" "$@"
echo "== 3. pack verify-remote: each registered package as a consumer would"
"$PACK" verify-remote pp-ocrv6-det/v4-ch --registry-url "$URL" --out "$OUT/ppocr-det"
"$PACK" verify-remote pp-ocrv6-rec/v4-ch --registry-url "$URL" --out "$OUT/ppocr"
echo "== 4. AutoModel.from_pretrained from the registry, on a rendered page"
ROBOFLOW_API_HOST="$URL" ROBOFLOW_API_KEY="$MODELS_SERVICE_INTERNAL_SECRET" \
  INFERENCE_HOME="$OUT/consumer-cache" MODEL_CACHE_DIR="$OUT/consumer-cache" \
  ONNXRUNTIME_EXECUTION_PROVIDERS="[CPUExecutionProvider]" \
  "$CONSUMER/bin/python" scripts/demo_read.py --out "$OUT"
