"""What a source's files are, read from their bytes, whatever their names.

A TorchScript archive saved as ``model.jit``, an ONNX graph called ``detector.bin`` and a state dict called
``weights.ckpt`` are common upstream names; deciding by suffix mistook the first for an HF package (issue 23).
Each detector reads a few bytes first (zip, safetensors and pickle magics; the ONNX ``ir_version`` tag) and
only then parses, so a large file of another kind is never loaded whole. Pure functions of a file.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

TORCHSCRIPT = "torchscript"
ONNX = "onnx"
SAFETENSORS = "safetensors"
PICKLE = "pickle"
"""A ``torch.save`` file: a zip holding ``data.pkl`` (torch >= 1.6), or a bare pickle (older)."""
STATE_DICT_KINDS = (SAFETENSORS, PICKLE)
HF_CONFIG = "config.json"

TRIED = (
    "a TorchScript archive (a zip with code/ and constants.pkl, torch.jit.save)",
    "an ONNX graph (a protobuf ModelProto with a graph)",
    "a safetensors file (an 8-byte header length and a JSON header)",
    "a torch.save state dict (a zip with data.pkl, or a pickle)",
    "a transformers snapshot (a folder with config.json)",
)
"""What :func:`sniff` and the folder check try, in the words an error message lists them."""


def sniff(file: Path) -> str | None:
    """The kind of ``file`` (:data:`TORCHSCRIPT`, :data:`ONNX`, :data:`SAFETENSORS`, :data:`PICKLE`) or
    ``None`` when nothing recognises it."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(file)
    if _is_safetensors(file, head):
        return SAFETENSORS
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO opcode: a pickle
        return PICKLE
    if head[:1] == b"\x08" and _is_onnx(file):  # field 1 (ir_version), varint: how onnx.save starts
        return ONNX
    return None


def is_torchscript(file: Path) -> bool:
    """A TorchScript archive is a zip holding ``code/`` (the serialized program) and ``constants.pkl``; a
    ``torch.save`` state dict is a zip (or legacy pickle) with ``data.pkl`` only."""
    return sniff(file) == TORCHSCRIPT


def _zip_kind(file: Path) -> str | None:
    try:
        with zipfile.ZipFile(file) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return TORCHSCRIPT
    if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return PICKLE
    return None


def _is_safetensors(file: Path, head: bytes) -> bool:
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (length,) = struct.unpack("<Q", head[:8])
    try:
        if length > file.stat().st_size - 8 or length > 100 * 2**20:
            return False
        with open(file, "rb") as handle:
            handle.seek(8)
            header = json.loads(handle.read(length))
    except (OSError, ValueError):
        return False
    return isinstance(header, dict)


def _is_onnx(file: Path) -> bool:
    try:
        import onnx

        model = onnx.load_model(str(file), load_external_data=False)
    except Exception:  # protobuf's DecodeError, onnx's own errors: not a graph
        return False
    return model.ir_version > 0 and (len(model.graph.node) > 0 or len(model.graph.output) > 0)


def guess(name: str) -> str | None:
    """The kind a file's name suggests: what a pure decision on names alone (tests, plans) assumes."""
    suffix = Path(name).suffix
    if suffix == ".onnx":
        return ONNX
    if suffix == ".safetensors":
        return SAFETENSORS
    return PICKLE if suffix in (".pt", ".pth", ".bin", ".ckpt") else None


def classify(folder: Path, files: Iterable[str]) -> dict[str, str | None]:
    """``{relative path: kind or None}`` for the top-level files of a fetched source (sub-folders hold
    auxiliary files). JSON and text files are not read: they are configs and vocabularies."""
    out: dict[str, str | None] = {}
    for rel in files:
        if "/" in rel:
            continue
        if Path(rel).suffix in (".json", ".txt", ".md", ".py", ".yaml", ".yml", ".model"):
            out[rel] = None
            continue
        out[rel] = sniff(Path(folder) / rel)
    return out


def unrecognised(kinds: Mapping[str, str | None]) -> str:
    """The message of a source nothing recognises: its files and what was tried."""
    names = ", ".join(sorted(kinds)) or "no files"
    return f"holds nothing weightpack recognises ({names}); tried {'; '.join(TRIED)}"
