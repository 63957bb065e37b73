"""The run's settings as one typed value, from the command line to where each one is used.

``pack``, compare's measure step, ``pack verify-remote`` and the nightly plugin each read their flags into a
:class:`RunSettings` once: the devices resolved against this machine, the thread count checked by the
recipe's own rule (``--threads 0`` is refused everywhere, as ``[bench] threads = 0`` is), the archive
limits, and the latency overrides. Nothing reads a setting from a module global: the value is passed to
:func:`packager.package_check.package_check`, which combines it with the recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from backends.device import Device, available_devices, resolve_devices
from backends.errors import FieldError
from bench.latency import LatencyConfig
from bench.threads import ThreadSettings, resolve_threads
from packager.archive import DEFAULT_LIMITS, Limits
from packager.errors import UsageError

if TYPE_CHECKING:
    from packager.recipes import BenchRecipe


@dataclass(frozen=True)
class RunSettings:
    """What the command line said, resolved: every field has the value the run uses (``None``: the
    recipe's)."""

    devices: tuple[str, ...] = ("cpu",)
    """Resolved once (:func:`backends.device.resolve_devices`): canonical, present, each once."""
    threads: int | None = None
    """``--threads`` (``None``: ``[bench] threads``, else the pinned default)."""
    limits: Limits = DEFAULT_LIMITS
    """``--max-extract-bytes`` / ``--max-members``: what a package read back may expand to."""
    measure_latency: bool = True
    batch_sizes: tuple[int, ...] | None = None
    min_iters: int | None = None
    min_time_s: float | None = None
    target_ci: float | None = None
    """``0``: adaptive stopping off; ``None``: the recipe's ``[bench] target_ci``."""

    @classmethod
    def of(
        cls,
        devices: Sequence[str] | None = None,
        threads: int | None = None,
        limits: Limits = DEFAULT_LIMITS,
        resolve: bool = True,
        **latency: object,
    ) -> RunSettings:
        """Check and resolve the flags: ``devices`` (default: this machine's, see
        :func:`backends.device.available_devices`) and ``threads`` by the recipe's own rule. ``resolve``
        false: the devices are kept as given (``pack --ray``: each node resolves them on itself, with
        :meth:`here`; none given means each node's own)."""
        if threads is not None:
            threads = read_threads(threads)
        if resolve:
            return cls(devices=resolved_here(devices), threads=threads, limits=limits, **latency)  # type: ignore[arg-type]
        return cls(devices=tuple(devices or ()), threads=threads, limits=limits, **latency)  # type: ignore[arg-type]

    def here(self) -> RunSettings:
        """These settings with the devices resolved on this machine (a node of ``pack --ray``)."""
        return replace(self, devices=resolved_here(self.devices))

    def thread_settings(self, recipe_threads: int | None) -> ThreadSettings:
        """``--threads`` over ``[bench] threads`` over the pinned default."""
        return resolve_threads(self.threads, recipe_threads)

    def latency_config(self, b: BenchRecipe) -> LatencyConfig:
        """The recipe's ``[bench]`` timing settings with this run's overrides."""
        target = b.target_ci if self.target_ci is None else (self.target_ci or None)
        return LatencyConfig(
            b.warmup_iters,
            b.warmup_s,
            b.min_iters if self.min_iters is None else self.min_iters,
            b.min_time_s if self.min_time_s is None else self.min_time_s,
            b.max_time_s,
            target_ci=target,
        )

    def batch_sizes_for(self, b: BenchRecipe) -> tuple[int, ...]:
        """The batch sizes timed: this run's, else the recipe's."""
        return tuple(self.batch_sizes or b.batch_sizes)


def resolved_here(devices: Sequence[str] | None) -> tuple[Device, ...]:
    """``devices`` (default: this machine's) resolved against this machine, each once."""
    return tuple(resolve_devices(list(devices) if devices else available_devices()))


def read_threads(value: object, flag: str = "--threads") -> int:
    """A thread count from the command line, held to ``[bench] threads``' rule (a UsageError, exit 2,
    naming the flag and what is accepted)."""
    from packager.recipes import BenchRecipe

    try:
        return int(BenchRecipe.read("threads", value, flag))
    except FieldError as exc:
        raise UsageError(f"{flag}: {exc.problem} (accepted: {exc.accepted})") from None
