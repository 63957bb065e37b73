"""Planted regressions that look like real ones, for calibrating ``pack compare``: extra work inside the
model's forward, on the device that runs it, of a size measured rather than assumed.

A regression test is only as good as its measured false-alarm and detection rates, and those need changes
of a known size that go through the same harness as a real one. The old plant busy-spun in Python after
each call for 0.2x the call's measured time, on the clock it was measured with: exactly 1.2x by
construction, nothing on caches, memory bandwidth, threads or tails, and on CUDA a host spin after the
synchronisation, so no kernel ever got slower. :func:`plant` instead puts real work inside the forward:

* a torch module (eager or TorchScript) held by the model class is wrapped so that each forward runs the
  module and then a chain of matrix products on the module's device (``torch.mm``, under the run's
  thread settings; on CUDA these are kernels on the current stream, so device time grows);
* an onnxruntime session held by the model class is rebuilt from its own graph with a gated chain of
  ``MatMul`` nodes (:mod:`bench.planted_graph`): the work runs inside the graph, under the session's
  providers (CUDA kernels with the CUDA execution provider).

Kinds (:class:`Plant`): ``compute`` adds work worth ``fraction`` of a call to every call of one batch size
(one row; all batch sizes without one); ``tail`` adds ``fraction`` times a call's work to one call in
``every``: the median barely moves, the p99 does. The number of matrix products is sized in the process
from the clean call's cost on the row's clock, and the ratio the plant really produces is measured right
there (``ratio_in_process``, recorded in the run) and again, between runs, by ``pack calibrate``.

:class:`PlantedModel` adds ``drift`` to every floating-point output (a deterministic error growth).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench import planted_graph

KINDS = ("compute", "tail")
MAX_UNITS = 20000  # matrix products at most (a graph of that many nodes still builds in a second)
SPEC = re.compile(r"^(?P<kind>[a-z]+):(?P<fraction>[0-9.]+)(?:@(?P<batch>\d+))?(?:/(?P<every>\d+))?$")


@dataclass(frozen=True)
class Plant:
    """``compute:0.2@8`` (+20 % work at batch 8) or ``tail:2@8/20`` (one call in 20 at batch 8 costs 3x)."""

    kind: str = "compute"
    fraction: float = 0.2
    batch_size: int | None = None
    every: int = 20

    @classmethod
    def parse(cls, text: str) -> Plant:
        m = SPEC.match(text.strip())
        if not m or m["kind"] not in KINDS:
            raise ValueError(
                f"plant {text!r}: expected KIND:FRACTION[@BATCH][/EVERY] with KIND one of "
                f"{', '.join(KINDS)} (e.g. compute:0.2@8, tail:2@8/20)"
            )
        try:
            fraction = float(m["fraction"])
        except ValueError:
            raise ValueError(f"plant {text!r}: FRACTION must be a number, got {m['fraction']!r}") from None
        every = int(m["every"] or 20)
        if fraction <= 0 or every < 2:
            raise ValueError(f"plant {text!r}: FRACTION must be > 0 and EVERY >= 2")
        return cls(m["kind"], fraction, int(m["batch"]) if m["batch"] else None, every)

    def __str__(self) -> str:
        text = f"{self.kind}:{self.fraction:g}"
        text += f"@{self.batch_size}" if self.batch_size else ""
        return text + (f"/{self.every}" if self.kind == "tail" else "")


class _Gate:
    """Decides, call by call, whether the planted work runs: the batch size, then one call in ``every``."""

    def __init__(self, plant: Plant) -> None:
        self.plant = plant
        self.forced: bool | None = None
        self.calls = 0

    def __call__(self, batch: int | None) -> bool:
        if self.forced is not None:
            return self.forced
        if self.plant.batch_size and batch is not None and batch != self.plant.batch_size:
            return False
        if self.plant.kind == "tail":
            self.calls += 1
            return self.calls % self.plant.every == 0
        return True


def plant(model: Any, spec: Plant, probe: dict[str, np.ndarray], device: str) -> dict[str, Any]:
    """Put ``spec``'s work inside ``model`` (in place) and return what was planted and what it produced.

    ``probe``: inputs at the planted batch size, used to size the work on the row's clock (process CPU
    time on the CPU, wall time elsewhere). Raises ``ValueError`` when the model holds neither a torch
    module nor an onnxruntime session."""
    gate = _Gate(spec)
    clock = time.process_time_ns if device == "cpu" else time.perf_counter_ns
    target = _find(model)
    if target is None:
        raise ValueError(
            f"{type(model).__name__} holds neither a torch module nor an onnxruntime session to plant into"
        )
    owner, attr, inner = target
    call = _caller(model, probe)
    clean = _median_cost(call, clock)
    if _is_torch_module(inner):
        where = f"torch module {type(inner).__name__}: torch.mm chain on {device} after each forward"
        burner = _TorchBurner(inner, gate, device)
        unit_ms = burner.unit_ms(clock)
        units = _units(spec, clean, unit_ms)
        burner.units = units
        setattr(owner, attr, burner.module)
    else:
        where = "onnx graph: If-gated MatMul chain inside the session's graph"
        unit_ms = planted_graph.unit_ms(inner, device, clock)
        units = _units(spec, clean, unit_ms)
        session = planted_graph.planted_session(inner, units, device)
        setattr(owner, attr, planted_graph.GatedSession(session, gate))
    clean_now, planted = _alternating(call, gate, clock)
    gate.forced, gate.calls = None, 0
    return {
        **asdict(spec),
        "spec": str(spec),
        "where": where,
        "units": units,
        "unit_ms": unit_ms,
        "clean_ms": clean,
        "planted_ms": planted,
        "ratio_in_process": planted / clean_now,
        "clock": "cpu" if device == "cpu" else "wall",
    }


def _units(spec: Plant, clean_ms: float, unit_ms: float) -> int:
    """Matrix products worth ``fraction`` of a clean call."""
    if unit_ms <= 0:
        raise ValueError("planted work could not be timed (a unit of work cost nothing measurable)")
    return min(MAX_UNITS, max(1, round(spec.fraction * clean_ms / unit_ms)))


def _alternating(call: Callable[[], None], gate: _Gate, clock: Callable[[], int], n: int = 8):
    """Median cost without and with the planted work, calls alternating (a drifting machine hits both)."""
    costs: dict[bool, list[float]] = {False: [], True: []}
    for i in range(2 * n + 2):
        gate.forced = bool(i % 2)
        start = clock()
        call()
        if i >= 2:
            costs[gate.forced].append((clock() - start) / 1e6)
    return float(np.median(costs[False])), float(np.median(costs[True]))


def _find(model: Any) -> tuple[Any, str, Any] | None:
    """``(owner, attribute, value)`` of the torch module or onnxruntime session a model class holds."""
    for name, value in getattr(model, "__dict__", {}).items():
        if _is_torch_module(value) or (
            callable(getattr(value, "run", None)) and hasattr(value, "get_providers")
        ):
            return model, name, value
    inner = getattr(model, "inner", None)  # a wrapper (e.g. PlantedModel): look inside
    return _find(inner) if inner is not None and inner is not model else None


def _is_torch_module(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


class _TorchBurner:
    """A module wrapper that runs the inner module, then (when the gate says so) ``units`` products of a
    matrix with an orthogonal one on ``device``."""

    def __init__(self, inner: Any, gate: _Gate, device: str) -> None:
        import torch

        n = planted_graph.SIZE_GPU if device.startswith("cuda") else planted_graph.SIZE_CPU
        gen = torch.Generator().manual_seed(0)
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen))
        self.a = torch.randn(n, n, generator=gen).to(device)
        self.q = q.to(device)
        self.units = 0
        burner = self

        class PlantedModule(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, *args: Any, **kwargs: Any) -> Any:
                out = self.inner(*args, **kwargs)
                if gate(_batch_of(args, kwargs)):
                    burner.burn()
                return out

            def __getattr__(self, name: str) -> Any:
                try:
                    return super().__getattr__(name)
                except AttributeError:
                    return getattr(self._modules["inner"], name)

        self.module = PlantedModule()

    def unit_ms(self, clock: Callable[[], int], units: int = 64) -> float:
        """Cost of one matrix product, timed alone (median of 15 chains of ``units``)."""
        import torch

        self.units = units
        with torch.inference_mode():
            cost = _median_cost(lambda: (self.burn(), self.sync()), clock)
        return cost / units

    def sync(self) -> None:
        if self.a.is_cuda:
            import torch

            torch.cuda.synchronize(self.a.device)

    def burn(self) -> None:
        import torch

        x = self.a
        for _ in range(self.units):
            x = torch.mm(x, self.q)


def _batch_of(args: tuple, kwargs: dict) -> int | None:
    for value in [*args, *kwargs.values()]:
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape):
            return int(shape[0])
    return None


def _caller(model: Any, probe: dict[str, np.ndarray]) -> Callable[[], None]:
    sync = getattr(model, "synchronize", None) or (lambda: None)

    def call() -> None:
        model.infer(probe) if hasattr(model, "infer") else model(**probe)
        sync()

    return call


def _median_cost(call: Callable[[], None], clock: Callable[[], int], n: int = 15) -> float:
    """Median cost of ``call`` in ms on ``clock`` after two warm-up calls."""
    call()
    call()
    costs = []
    for _ in range(n):
        start = clock()
        call()
        costs.append((clock() - start) / 1e6)
    return float(np.median(costs))


class PlantedModel:
    """``inner`` with ``drift`` added to every floating-point output (a deterministic error growth)."""

    def __init__(self, inner: Any, drift: float = 0.0) -> None:
        self.inner = inner
        self.drift = drift

    def infer(self, inputs: dict[str, np.ndarray]) -> Any:
        outputs = self.inner.infer(inputs) if hasattr(self.inner, "infer") else self.inner(**inputs)
        return _add(outputs, self.drift) if self.drift else outputs

    def synchronize(self) -> None:
        sync = getattr(self.inner, "synchronize", None)
        if sync is not None:
            sync()

    def __getattr__(self, name: str) -> Any:  # stream, device, ... of the wrapped class
        return getattr(self.inner, name)


def _add(outputs: Any, delta: float) -> Any:
    if isinstance(outputs, dict):
        return {k: _add(v, delta) for k, v in outputs.items()}
    arr = np.asarray(outputs) if not hasattr(outputs, "detach") else outputs.detach().cpu().numpy()
    if np.issubdtype(arr.dtype, np.floating):
        return (arr + np.asarray(delta, dtype=arr.dtype)).astype(arr.dtype)
    return outputs
