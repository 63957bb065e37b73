"""Targets and the Ray resources that stand for them: which nodes may run a package's task, and what it
asks for. Pure functions over the node list Ray reports (``ray.nodes()``), tested without Ray.

A target names a kind of machine (``h100``, ``l4``, ``jetson-orin``). The cluster says which nodes are of
which kind through resources, looked up in this order:

1. the custom resource ``target:NAME`` (``ray start --resources='{"target:jetson-orin": 1}'``): the
   cluster's own word, always preferred;
2. Ray's accelerator type ``accelerator_type:NAME`` (any letter case), which Ray sets by itself on a node
   with an NVIDIA GPU (``accelerator_type:H100``, ``accelerator_type:L4``, ``accelerator_type:A10G``).

A target that neither names is missing: its packages fail (exit 3) naming both resources; nothing is built
elsewhere instead.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from packager.errors import EXIT_ENVIRONMENT, WeightpackError

CUSTOM_PREFIX = "target:"
ACCELERATOR_PREFIX = "accelerator_type:"
SHARE = 0.001
"""How much of a target's resource one task asks for: the resource marks a node's kind, it is not a
capacity (Ray's own convention for ``accelerator_type``); CPUs and GPUs bound how many tasks share a node."""


class ClusterError(WeightpackError):
    """The cluster cannot run what was asked (no cluster, no node of a target): an environment problem."""

    exit_code = EXIT_ENVIRONMENT


class MissingTargetError(ClusterError):
    """No live node of the cluster provides a target's resource."""


@dataclass(frozen=True)
class Node:
    """One live node as the driver sees it."""

    node_id: str
    address: str
    resources: Mapping[str, float] = field(default_factory=dict)

    @property
    def gpus(self) -> float:
        return float(self.resources.get("GPU", 0))

    def summary(self) -> dict[str, Any]:
        """What the report says of a node: id, address, and the resources that say what kind it is."""
        kinds = sorted(k for k in self.resources if k.startswith((CUSTOM_PREFIX, ACCELERATOR_PREFIX)))
        return {
            "node_id": self.node_id,
            "address": self.address,
            "kinds": kinds,
            "CPU": self.resources.get("CPU", 0),
            "GPU": self.gpus,
        }


def live_nodes(ray_nodes: Iterable[Mapping[str, Any]]) -> list[Node]:
    """The live nodes of ``ray.nodes()``'s answer."""
    return [
        Node(n["NodeID"], str(n.get("NodeManagerAddress", "")), dict(n.get("Resources") or {}))
        for n in ray_nodes
        if n.get("Alive")
    ]


def candidates(target: str) -> tuple[str, str]:
    """The two resources that may stand for ``target``, in the order they are looked up."""
    return f"{CUSTOM_PREFIX}{target}", f"{ACCELERATOR_PREFIX}{target.upper()}"


def resolve(target: str, advertised: Collection[str]) -> str | None:
    """The resource that stands for ``target`` among ``advertised`` (see the module's order), or None."""
    custom = f"{CUSTOM_PREFIX}{target}"
    if custom in advertised:
        return custom
    wanted = target.lower()
    for name in sorted(advertised):
        if name.startswith(ACCELERATOR_PREFIX) and name[len(ACCELERATOR_PREFIX) :].lower() == wanted:
            return name
    return None


def advertised(nodes: Iterable[Node]) -> set[str]:
    return {name for n in nodes for name, amount in n.resources.items() if amount > 0}


def nodes_with(resource: str | None, nodes: Iterable[Node]) -> list[Node]:
    """The nodes that may run a task needing ``resource`` (every node when None)."""
    return [n for n in nodes if resource is None or n.resources.get(resource, 0) > 0]


def kinds_on_offer(nodes: Iterable[Node]) -> list[str]:
    """Every target-like resource the cluster advertises, for the message of a missing one."""
    return sorted(r for r in advertised(nodes) if r.startswith((CUSTOM_PREFIX, ACCELERATOR_PREFIX)))


def missing_target(target: str, nodes: list[Node], address: str) -> MissingTargetError:
    custom, accelerator = candidates(target)
    offer = ", ".join(kinds_on_offer(nodes)) or "none"
    return MissingTargetError(
        f"target '{target}': no live node of the Ray cluster at {address} advertises the resource "
        f"'{custom}' or '{accelerator}' (the cluster offers: {offer}; {len(nodes)} node(s)); the package "
        f"is not built elsewhere. Start a node of that kind with ray start --resources='{{\"{custom}\": 1}}' "
        "(docs/cluster.md), or leave the target out (--targets)"
    )


def task_shape(resource: str | None, nodes: list[Node], devices: list[str] | None) -> dict[str, Any]:
    """The Ray options of a task needing ``resource`` that verifies on ``devices`` (None: each node's own
    devices): one CPU, a GPU when CUDA is asked for or every eligible node has one (Ray then sets
    ``CUDA_VISIBLE_DEVICES``, so the task sees its GPU as ``cuda:0``), and a share of the target's
    resource. Raises MissingTargetError when CUDA is asked for and no eligible node has a GPU."""
    eligible = nodes_with(resource, nodes)
    wants_cuda = devices is not None and any(d.startswith("cuda") for d in devices)
    with_gpu = [n for n in eligible if n.gpus >= 1]
    if wants_cuda and not with_gpu:
        where = f"resource '{resource}'" if resource else "any resource"
        raise MissingTargetError(
            f"--devices {','.join(devices or [])} asks for CUDA, and no live node with {where} has a GPU"
        )
    gpu = wants_cuda or (devices is None and bool(eligible) and len(with_gpu) == len(eligible))
    shape: dict[str, Any] = {"num_cpus": 1, "num_gpus": 1 if gpu else 0}
    if resource is not None:
        shape["resources"] = {resource: SHARE}
    return shape
