"""An upstream TorchScript ``.pt`` (``torch.jit.save``) as the reference: loaded with ``torch.jit.load`` on
the CPU in fp32; exporters trace or re-save the same scripted module."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backends.errors import UserModelError
from packager.reference.module import TorchRunner

SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")


def is_torchscript(file: Path) -> bool:
    """A TorchScript archive is a zip holding ``code/`` (the serialized program) and ``constants.pkl``; a
    ``torch.save`` state dict is a zip (or legacy pickle) with ``data.pkl`` only."""
    try:
        with zipfile.ZipFile(file) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


class TorchScriptReference(TorchRunner):
    """``from_pretrained(path, torchscript_file=None, input_names=, output_names=)``."""

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | Path,
        *,
        device: str = "cpu",
        torchscript_file: str | None = None,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        **_: Any,
    ) -> TorchScriptReference:
        import torch

        path = Path(model_name_or_path)
        files = (
            [path / torchscript_file]
            if torchscript_file
            else [p for p in sorted(path.iterdir()) if p.suffix in SUFFIXES and is_torchscript(p)]
        )
        if len(files) != 1:
            raise UserModelError(f"the source must hold exactly one TorchScript file (found {len(files)})")
        try:
            module = torch.jit.load(str(files[0]), map_location="cpu")
        except RuntimeError as exc:
            raise UserModelError(f"torch.jit.load cannot load {files[0].name}: {exc}") from exc
        ref = cls(module.float().eval(), input_names, output_names)
        ref.what = f"TorchScript file {files[0].name}"
        return ref
