"""Bring a wheel bigger than one device call to the GPU box in parts.

A device call carries at most 64 MiB (the working tree included); files under ignored paths stay on the
warm machine between calls. So scripts/gpu_wheels.sh splits the onnxruntime-gpu wheel (244 MiB for 1.31.1)
into equal parts that each fit one call beside the tree (:func:`part_plan`), written to ``.gpu-carry/``
with a manifest of sha256 sums; the lead carries one part per call, back to back (the machine stays warm
30 s after a call), and the check reassembles them there (:func:`assemble`), saying exactly which part is
missing or damaged when one is. Pure functions over sizes and files; no third-party imports.

    python3 scripts/gpu_check_carry.py split WHEEL [--tree-bytes N]   # here (gpu_wheels.sh does it)
    python3 scripts/gpu_check_carry.py receive                        # there, in each carry call
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CARRY_DIR = ROOT / ".gpu-carry"
LABEL = "ort-gpu"
"""Parts are ``.gpu-carry/ort-gpu.1`` ... ``ort-gpu.N`` and the manifest ``.gpu-carry/ort-gpu.json``."""
CALL_LIMIT_BYTES = 64 * 2**20  # what one device call carries, the working tree included
MARGIN_BYTES = 2**20  # room for the tree to grow between preparing and carrying


def part_plan(
    size: int, tree_bytes: int, limit: int = CALL_LIMIT_BYTES, margin: int = MARGIN_BYTES
) -> list[int]:
    """Sizes of the fewest equal parts of a ``size``-byte file such that each part, carried in a call of
    its own beside the working tree (``tree_bytes``), stays under ``limit`` with ``margin`` to spare."""
    room = limit - tree_bytes - margin
    if room <= 0:
        raise ValueError(f"the working tree ({tree_bytes} bytes) leaves no room in a {limit}-byte call")
    count = max(1, math.ceil(size / room))
    base, extra = divmod(size, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(folder: Path, label: str = LABEL) -> Path:
    return folder / f"{label}.json"


def split(wheel: Path, dest: Path, tree_bytes: int, label: str = LABEL, **limits: int) -> dict[str, Any]:
    """Write ``wheel``'s parts (``LABEL.1`` ...) and the manifest (``LABEL.json``) into ``dest``; return the
    manifest."""
    sizes = part_plan(wheel.stat().st_size, tree_bytes, **limits)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob(f"{label}.[0-9]*"):
        old.unlink()
    parts = []
    with wheel.open("rb") as source:
        for index, size in enumerate(sizes, 1):
            path = dest / f"{label}.{index}"
            path.write_bytes(source.read(size))
            parts.append({"name": path.name, "bytes": size, "sha256": _sha256(path)})
    manifest = {
        "wheel": wheel.name,
        "bytes": wheel.stat().st_size,
        "sha256": _sha256(wheel),
        "parts": parts,
        "tree_bytes": tree_bytes,
    }
    manifest_path(dest, label).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def part_status(manifest: dict[str, Any], folder: Path) -> tuple[list[int], list[str]]:
    """``(present, problems)``: the 1-based indices of the parts in ``folder`` whose size and sha256 match
    the manifest, and one line per part that is missing or damaged."""
    present, problems = [], []
    count = len(manifest["parts"])
    for index, part in enumerate(manifest["parts"], 1):
        path = folder / part["name"]
        if not path.is_file():
            problems.append(f"part {index} of {count} ({part['name']}) was not carried")
        elif path.stat().st_size != part["bytes"]:
            problems.append(
                f"part {index} of {count} has {path.stat().st_size} bytes, not {part['bytes']} "
                "(carry it again)"
            )
        elif _sha256(path) != part["sha256"]:
            problems.append(f"part {index} of {count} is damaged: its sha256 differs (carry it again)")
        else:
            present.append(index)
    return present, problems


def assemble(manifest: dict[str, Any], folder: Path, dest: Path) -> Path:
    """Join the parts in ``folder`` into ``dest/<wheel>`` and check the whole file's sha256; ValueError
    saying exactly what is missing or wrong."""
    _, problems = part_status(manifest, folder)
    if problems:
        raise ValueError("; ".join(problems))
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / manifest["wheel"]
    with wheel.open("wb") as out:
        for part in manifest["parts"]:
            out.write((folder / part["name"]).read_bytes())
    if _sha256(wheel) != manifest["sha256"]:
        wheel.unlink()
        raise ValueError(f"{manifest['wheel']} reassembled from its parts has another sha256 than prepared")
    return wheel


def read_manifest(folder: Path = CARRY_DIR, label: str = LABEL) -> dict[str, Any] | None:
    path = manifest_path(folder, label)
    return json.loads(path.read_text()) if path.is_file() else None


def receive(folder: Path = CARRY_DIR) -> int:
    """Print which parts are on this machine (the command of each carry call); 0 when all are."""
    manifest = read_manifest(folder)
    if manifest is None:
        print(f"carry: no {folder.name}/{LABEL}.json here: carry it with every part (docs/gpu-results.md)")
        return 1
    present, problems = part_status(manifest, folder)
    count = len(manifest["parts"])
    have = ", ".join(map(str, present)) or "none"
    print(f"carry: {manifest['wheel']}: parts present {have} of {count}")
    for line in problems:
        print(f"carry: {line}")
    if not problems:
        print("carry: complete; run the check next (the machine stays warm 30 s)")
    return 0 if not problems else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split", help="split WHEEL into .gpu-carry/ parts")
    s.add_argument("wheel", type=Path)
    s.add_argument("--tree-bytes", type=int, required=True, help="bytes of the working tree a call sends")
    s.add_argument("--dest", type=Path, default=CARRY_DIR)
    sub.add_parser("receive", help="which parts are here (run on the GPU box in each carry call)")
    args = parser.parse_args(argv)
    if args.command == "split":
        manifest = split(args.wheel, args.dest, args.tree_bytes)
        for index, part in enumerate(manifest["parts"], 1):
            print(f"call {index}: carry {args.dest.name}/{part['name']} ({part['bytes'] / 2**20:.1f} MiB)")
        return 0
    return receive()


if __name__ == "__main__":
    sys.exit(main())
