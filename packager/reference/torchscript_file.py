"""An upstream TorchScript archive (``torch.jit.save``; ``.pt``, ``.jit``, any name) as the reference:
loaded with ``torch.jit.load`` on the CPU in fp32; exporters trace or re-save the same scripted module."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backends.errors import UserModelError
from packager.reference.content import is_torchscript
from packager.reference.module import TorchRunner


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
            else [p for p in sorted(path.iterdir()) if p.is_file() and is_torchscript(p)]
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
