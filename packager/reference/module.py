"""The user's own ``nn.Module`` with a state dict from the source: the reference for ``[model] factory``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import PackageModel, Tensors
from backends.casting import cast_inputs
from backends.errors import InputMismatchError, UserModelError
from backends.outputs import flatten_outputs
from backends.torch.common import module_args
from packager.reference import content


def describe(inputs: Mapping[str, np.ndarray]) -> str:
    """``'image' [4, 3, 48, 48] float32, ...``: what a message says was received."""
    return ", ".join(f"'{k}' received {list(np.shape(v))} {np.asarray(v).dtype}" for k, v in inputs.items())


class TorchRunner(PackageModel):
    """Runs a torch module (eager or TorchScript) in fp32 on named inputs passed positionally.

    Inputs are checked by name first; floating inputs are cast to float32 (reported); integer inputs are
    passed as they are (a cast to float would change the values); a module that fails on them raises
    InputMismatchError saying what it received."""

    backend = "torch"
    what = "torch module"

    def __init__(self, module: Any, input_names: Sequence[str] | None, output_names: Sequence[str] | None):
        self.module = module
        self.device = "cpu"
        self.input_names = list(input_names) if input_names else None
        self.output_names = list(output_names) if output_names else None
        self.casts: list[dict[str, object]] = []

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        import torch

        names = self.input_names or list(inputs)
        missing = [n for n in names if n not in inputs]
        if missing:
            raise InputMismatchError(
                f"the {self.what} takes inputs {names} (in this order), received {describe(inputs)}; "
                f"missing {missing}: rename the recipe's inputs or set [model] input_names"
            )
        dtype = self._float_dtype()
        floats = {n: dtype for n in names if np.issubdtype(np.asarray(inputs[n]).dtype, np.floating)}
        feed, self.casts = cast_inputs({n: inputs[n] for n in names}, floats, self.what)
        args = module_args(
            self.module, [feed[n] for n in names], lambda a: torch.from_numpy(np.ascontiguousarray(a))
        )
        try:
            with torch.inference_mode():
                outputs = self.module(*args)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            hint = ""
            if any(not np.issubdtype(a.dtype, np.floating) for a in feed.values()):
                hint = (
                    "; integer inputs are passed unchanged (a cast to float32 would change the values): "
                    'if the model takes float32, set dtype = "float32" in the recipe\'s inputs'
                )
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputMismatchError(
                f"the {self.what} ({np.dtype(dtype)} weights) failed on the inputs it received, "
                f"{describe(feed)}: "
                f"{first}{hint}"
            ) from exc
        if isinstance(outputs, Mapping):
            return flatten_outputs({k: v for k, v in outputs.items()})
        if not isinstance(outputs, (tuple, list)):
            outputs = (outputs,)
        names_out = self.output_names or [f"output_{i}" for i in range(len(outputs))]
        if len(names_out) != len(outputs):
            raise UserModelError(
                f"[model] output_names lists {len(names_out)} names {names_out}, but the {self.what} "
                f"returned {len(outputs)} outputs"
            )
        self.input_names, self.output_names = names, names_out
        return flatten_outputs(dict(zip(names_out, outputs, strict=True)))

    def _float_dtype(self) -> Any:
        """The numpy dtype of the module's floating parameters (float32; float64 for the noise floor)."""
        for param in self.module.parameters():
            if param.is_floating_point():
                return np.dtype(str(param.dtype).removeprefix("torch."))
        return np.dtype(np.float32)

    def torch_module(self) -> tuple[Any, list[str], list[str]]:
        if self.input_names is None or self.output_names is None:
            raise UserModelError("input/output names are unknown; run infer() once or set them in [model]")
        return self.module, list(self.input_names), list(self.output_names)


class ModuleReference(TorchRunner):
    """The module ``factory`` builds, with the source's state dict loaded ``strict=True``, fp32 on the CPU.

    ``from_pretrained`` keyword arguments (from the recipe's ``[model]`` table): ``factory``
    (``module:Class`` or ``module:function``), ``factory_kwargs``, ``input_names``, ``output_names``,
    ``weights`` (the file name; default: the only state-dict file), ``state_dict_key``."""

    def __init__(self, module: Any, factory: str, factory_kwargs: dict[str, Any], **names: Any) -> None:
        super().__init__(module, names.get("input_names"), names.get("output_names"))
        self.factory = factory
        self.factory_kwargs = factory_kwargs
        self.what = f"module {factory}"

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | Path,
        *,
        device: str = "cpu",
        factory: str | None = None,
        factory_kwargs: Mapping[str, Any] | None = None,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        weights: str | None = None,
        state_dict_key: str | None = None,
        **kwargs: Any,
    ) -> ModuleReference:
        from backends.factories import load_factory
        from backends.torch.common import call_factory

        if not factory:
            raise UserModelError("a state-dict source needs [model] factory = 'module:Class'")
        path = Path(model_name_or_path)
        kwargs_ = {
            k: v.format(variant=kwargs.get("variant") or "") if isinstance(v, str) else v
            for k, v in dict(factory_kwargs or {}).items()
        }
        try:
            module = call_factory(load_factory(factory), kwargs_, None)  # never os:system (factories.py)
        except UserModelError:
            raise
        except Exception as exc:  # the user's factory raised: their code or their [model] kwargs
            raise UserModelError(
                f"[model] factory {factory}({kwargs_}) raised {type(exc).__name__}: {exc}"
            ) from exc
        if not hasattr(module, "load_state_dict") or not callable(module):
            raise UserModelError(
                f"[model] factory {factory} returned a {type(module).__name__}, not a torch nn.Module"
            )
        file = weights_file(path, weights)
        state = load_state_dict(file, state_dict_key)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise UserModelError(
                f"{file.name} does not fit the module {factory}({kwargs_}) builds: "
                f"{str(exc).splitlines()[0]} {_key_summary(module, state)}"
            ) from exc
        return cls(
            module.float().eval(), factory, kwargs_, input_names=input_names, output_names=output_names
        )

    def torch_factory(self) -> tuple[str, dict[str, Any]]:
        """The torch backend rebuilds the module with the same factory and kwargs."""
        return self.factory, dict(self.factory_kwargs)


def weights_file(path: Path, name: str | None) -> Path:
    """``path/name``, or the only state-dict file in ``path``; UserModelError naming what was found."""
    if name:
        file = path / name
        if not file.is_file():
            raise UserModelError(f"[model] weights = '{name}' is not a file of the source ({path})")
        return file
    found = sorted(p for p in path.iterdir() if p.is_file() and content.sniff(p) in content.STATE_DICT_KINDS)
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise UserModelError(
            f"the source has {len(found)} state-dict files ({names}); name one with [model] weights = '...'"
        )
    return found[0]


def load_state_dict(file: Path, key: str | None) -> dict[str, Any]:
    """A safetensors file, or a ``torch.load``-able state dict (``weights_only``: no code runs), told apart
    by their bytes."""
    import torch

    try:
        if content.sniff(file) == content.SAFETENSORS:
            from safetensors.torch import load_file

            state: Any = load_file(str(file), device="cpu")
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises pickle, zip and runtime errors alike
        raise UserModelError(f"{file.name} could not be read as a state dict: {exc}") from exc
    if key:
        if not isinstance(state, Mapping) or key not in state:
            keys = list(state)[:8] if isinstance(state, Mapping) else type(state).__name__
            raise UserModelError(f"[model] state_dict_key = '{key}' is not in {file.name} (found: {keys})")
        state = state[key]
    if not isinstance(state, Mapping):
        raise UserModelError(f"{file.name} holds a {type(state).__name__}, not a state dict")
    return dict(state)


def _key_summary(module: Any, state: Mapping[str, Any]) -> str:
    want, have = set(module.state_dict()), set(state)
    missing, unexpected = sorted(want - have)[:5], sorted(have - want)[:5]
    return f"(missing keys {missing}, unexpected keys {unexpected})" if missing or unexpected else ""
