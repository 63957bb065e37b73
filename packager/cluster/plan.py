"""What a cluster run builds and where: one package per (variant, backend), or per target for a
device-bound backend, each verified on a node of every target it is for. Pure functions, tested without
Ray.

* A package that does not depend on the machine it is built on (ONNX, torch, TorchScript, HF) is built
  once, by a task on its first target's node, then verified by one task per further target with the zip
  shipped to it: one zip, checks per target.
* A device-bound package (a TensorRT engine is valid for one GPU type) is one package per target, built
  and verified on a node of that target; its zip name gains ``-TARGET`` (``all-minilm-l6-trt-h100.zip``),
  which also keys its build.
* Without targets a package's task runs on any node.

Device labels in the report say where a check ran: ``cpu`` without a target, ``cuda:0@h100`` with one, so
the checks of one package on two targets are two rows, and ``pack compare`` never compares an L4's latency
with an H100's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from packager.recipes import Recipe


@dataclass(frozen=True)
class PackagePlan:
    """One zip and the targets it is verified for (``[None]``: any node, no target)."""

    variant: str
    backend: str
    targets: tuple[str | None, ...]
    zip_target: str | None = None
    """The target a device-bound package is built for (it names the zip); None for a portable package."""
    builder: str | None = None
    """The target whose task builds the zip (the others verify it); portable packages take turns, so
    their builds spread over the targets' nodes."""

    @property
    def label(self) -> str:
        return f"{self.variant}/{self.backend}" + (f"@{self.zip_target}" if self.zip_target else "")


def plan_packages(
    variants: Sequence[str],
    backends: Sequence[str],
    targets_of: Callable[[str], Sequence[str]],
    device_bound: Callable[[str], bool],
    enabled: Callable[[str, str], bool] = lambda variant, backend: True,
) -> list[PackagePlan]:
    """Every package of the run, in the order a local run reports them (variant, then backend), leaving
    out what ``enabled`` refuses (a variant that lists its own backends)."""
    plans = []
    turn = 0
    for variant in variants:
        for backend in (b for b in backends if enabled(variant, b)):
            targets = list(dict.fromkeys(targets_of(backend)))
            if targets and device_bound(backend):
                plans += [PackagePlan(variant, backend, (t,), zip_target=t, builder=t) for t in targets]
            elif targets:
                plans.append(
                    PackagePlan(variant, backend, tuple(targets), builder=targets[turn % len(targets)])
                )
                turn += 1
            else:
                plans.append(PackagePlan(variant, backend, (None,)))
    return plans


def targets_for(recipe: Recipe, backend: str, override: Sequence[str] | None) -> list[str]:
    """``--targets`` when given, else the recipe's ``[backends.NAME] targets``."""
    if override:
        return list(override)
    return list(recipe.backends[backend].options.targets)


def zip_name_for_target(template: str, target: str) -> str:
    """``{architecture}-{variant}-{backend}.zip`` -> ``{architecture}-{variant}-{backend}-h100.zip``."""
    return f"{template[: -len('.zip')]}-{target}.zip"


def recipe_for(recipe: Recipe, backend: str, zip_target: str | None) -> Recipe:
    """The recipe a device-bound package for ``zip_target`` is built with: its zip name carries the
    target, and so does its build key (the zip name is one of the options the key hashes)."""
    if zip_target is None:
        return recipe
    entry = recipe.backends[backend]
    options = dataclasses.replace(
        entry.options, zip_name=zip_name_for_target(entry.options.zip_name, zip_target)
    )
    backends = {**recipe.backends, backend: dataclasses.replace(entry, options=options)}
    return dataclasses.replace(recipe, backends=backends)


def device_label(device: str, target: str | None) -> str:
    """``cuda:0`` on a node of target ``h100`` is ``cuda:0@h100``; without a target, the device."""
    return f"{device}@{target}" if target else device


def split_label(label: str) -> tuple[str, str | None]:
    """The inverse of :func:`device_label`."""
    device, _, target = label.partition("@")
    return device, target or None
