"""``pack --ray``'s decisions as pure functions, without Ray: target -> resource, which nodes may run
what, what a task asks for, the package plan, retry or not, the timeout guard, the upstream bundle on a
node, the recipe's ``targets`` option and the flags (the cluster runs themselves: tests/cluster/)."""

from __future__ import annotations

import hashlib
import socket
import sys
from pathlib import Path

import pytest

from backends.registry import get_backend
from packager.cli import main
from packager.cluster import plan, policy, targets
from packager.cluster.driver import reachable
from packager.cluster.upstream import bundle_key, materialize
from packager.errors import RecipeError, SourceError
from packager.recipes import load_recipe

ROOT = Path(__file__).resolve().parents[2]


def node(node_id: str, **resources: float) -> targets.Node:
    return targets.Node(node_id, "10.0.0.1", {"CPU": 8.0, **resources})


# ------------------------------------------------------------------------------------- targets


def test_a_target_is_the_clusters_custom_resource_first_then_its_accelerator_type() -> None:
    offered = {"CPU", "GPU", "target:l4", "accelerator_type:L4", "accelerator_type:H100"}
    assert targets.resolve("l4", offered) == "target:l4"  # the cluster's own word wins
    assert targets.resolve("h100", offered) == "accelerator_type:H100"  # Ray's, any letter case
    assert targets.resolve("a10g", offered) is None
    assert targets.candidates("jetson-orin") == ("target:jetson-orin", "accelerator_type:JETSON-ORIN")


def test_a_missing_target_names_both_resources_and_what_the_cluster_offers() -> None:
    nodes = [node("n1", **{"target:a": 1}), node("n2", **{"accelerator_type:L4": 1, "GPU": 1})]
    error = targets.missing_target("h100", nodes, "10.0.0.1:6379")
    assert error.exit_code == 3
    message = str(error)
    assert "'target:h100'" in message and "'accelerator_type:H100'" in message
    assert "accelerator_type:L4, target:a" in message and "not built elsewhere" in message


def test_live_nodes_leave_out_dead_ones() -> None:
    found = targets.live_nodes(
        [
            {"NodeID": "n1", "Alive": True, "NodeManagerAddress": "10.0.0.1", "Resources": {"target:a": 1}},
            {"NodeID": "n2", "Alive": False, "NodeManagerAddress": "10.0.0.2", "Resources": {"target:a": 1}},
        ]
    )
    assert [n.node_id for n in found] == ["n1"]
    assert targets.nodes_with("target:a", found) == found and targets.nodes_with("target:b", found) == []


def test_what_a_task_asks_for() -> None:
    cpu_a, gpu_b = node("n1", **{"target:a": 1}), node("n2", GPU=1, **{"target:b": 1})
    nodes = [cpu_a, gpu_b]
    assert targets.task_shape("target:a", nodes, None) == {
        "num_cpus": 1,
        "num_gpus": 0,
        "resources": {"target:a": targets.SHARE},
    }
    # a node of a GPU kind: the task takes a GPU (Ray sets CUDA_VISIBLE_DEVICES, the task sees cuda:0)
    assert targets.task_shape("target:b", nodes, None)["num_gpus"] == 1
    assert targets.task_shape("target:b", nodes, ["cpu"])["num_gpus"] == 0  # asked for the CPU alone
    assert targets.task_shape(None, nodes, None) == {"num_cpus": 1, "num_gpus": 0}  # mixed: no GPU
    assert targets.task_shape(None, nodes, ["cpu", "cuda"])["num_gpus"] == 1
    with pytest.raises(
        targets.MissingTargetError, match="asks for CUDA, and no live node with resource 'target:a'"
    ):
        targets.task_shape("target:a", nodes, ["cuda:0"])


# ------------------------------------------------------------------------------------- plan


def test_a_portable_package_is_built_once_and_checked_per_target_builders_take_turns() -> None:
    plans = plan.plan_packages(["l6"], ["onnx", "torch", "hf"], lambda b: ["a", "b"], lambda b: False)
    assert [(p.backend, p.targets, p.zip_target, p.builder) for p in plans] == [
        ("onnx", ("a", "b"), None, "a"),
        ("torch", ("a", "b"), None, "b"),
        ("hf", ("a", "b"), None, "a"),
    ]


def test_a_device_bound_package_is_one_package_per_target() -> None:
    plans = plan.plan_packages(
        ["s", "m"], ["onnx", "trt"], lambda b: ["h100", "l4", "h100"], lambda b: b == "trt"
    )
    assert [p.label for p in plans] == [
        "s/onnx", "s/trt@h100", "s/trt@l4", "m/onnx", "m/trt@h100", "m/trt@l4",
    ]  # fmt: skip
    assert plans[1].targets == ("h100",) and plans[1].builder == "h100"
    assert plan.plan_packages(["s"], ["onnx"], lambda b: [], lambda b: False)[0].targets == (None,)


def test_a_device_bound_packages_zip_name_and_build_key_carry_its_target(tmp_path: Path) -> None:
    from packager.build import input_key
    from packager.sources import FetchedSource

    recipe = load_recipe(ROOT / "recipes" / "minilm.toml")
    h100 = plan.recipe_for(recipe, "onnx", "h100")
    assert h100.zip_name("l6", "onnx") == "all-minilm-l6-onnx-h100.zip"
    assert recipe.zip_name("l6", "onnx") == "all-minilm-l6-onnx.zip"  # the recipe itself is untouched
    assert plan.recipe_for(recipe, "onnx", None) is recipe
    fetched = FetchedSource(tmp_path, {"files": [{"path": "w.bin", "size": 1, "sha256": "0" * 64}]})
    assert input_key(fetched, recipe, "onnx", "l6") != input_key(fetched, h100, "onnx", "l6")
    assert input_key(fetched, plan.recipe_for(recipe, "onnx", "l4"), "onnx", "l6") != input_key(
        fetched, h100, "onnx", "l6"
    )


def test_device_labels() -> None:
    assert plan.device_label("cuda:0", "h100") == "cuda:0@h100"
    assert plan.device_label("cpu", None) == "cpu"
    assert plan.split_label("cuda:0@h100") == ("cuda:0", "h100") and plan.split_label("cpu") == ("cpu", None)


def test_targets_come_from_the_flag_else_the_recipe(tmp_path: Path) -> None:
    text = (ROOT / "recipes" / "minilm.toml").read_text()
    path = tmp_path / "minilm.toml"
    path.write_text(text.replace("[backends.onnx]\n", '[backends.onnx]\ntargets = ["h100", "l4"]\n'))
    recipe = load_recipe(path)
    assert plan.targets_for(recipe, "onnx", None) == ["h100", "l4"]
    assert plan.targets_for(recipe, "torch", None) == []
    assert plan.targets_for(recipe, "torch", ["a"]) == ["a"]
    # where a package is built is not what it holds: the build key ignores the targets
    assert (
        recipe.backends["onnx"].options.as_dict()
        == load_recipe(ROOT / "recipes" / "minilm.toml").backends["onnx"].options.as_dict()
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [('["h 100"]', "'h 100' is not a target name"), ('["l4", "l4"]', "'l4' is named twice")],
)
def test_a_bad_target_in_a_recipe_names_the_field(tmp_path: Path, value: str, problem: str) -> None:
    path = tmp_path / "minilm.toml"
    text = (ROOT / "recipes" / "minilm.toml").read_text()
    path.write_text(text.replace("[backends.onnx]\n", f"[backends.onnx]\ntargets = {value}\n"))
    with pytest.raises(
        RecipeError, match=rf"minilm\.toml: field 'backends\.onnx\.targets': .*{problem}"
    ) as exc:
        load_recipe(path)
    assert exc.value.exit_code == 2


def test_every_backend_accepts_targets() -> None:
    for name in ("onnx", "torch", "hf", "trt"):
        options = get_backend(name).options.parse({"targets": ["h100"]}, f"backends.{name}")
        assert options.targets == ["h100"]


# ------------------------------------------------------------------------------------- policy


class WorkerCrashedError(Exception):
    """Named as Ray names it: classify goes by the class name, so this module needs no Ray."""


class OutOfMemoryError(Exception):
    pass


class NodeDiedError(Exception):
    pass


def test_deaths_are_classified_by_rays_exception_classes() -> None:
    assert policy.classify(WorkerCrashedError()) is policy.Death.CRASHED
    assert policy.classify(OutOfMemoryError()) is policy.Death.OUT_OF_MEMORY
    assert policy.classify(NodeDiedError()) is policy.Death.NODE_LOST
    assert policy.classify(ValueError("a bug")) is policy.Death.ERROR


def test_rays_own_exception_classes_are_classified() -> None:
    exceptions = pytest.importorskip("ray.exceptions", reason="Ray is the optional extra 'ray'")
    assert policy.classify(exceptions.WorkerCrashedError()) is policy.Death.CRASHED
    assert policy.classify(exceptions.TaskCancelledError()) is policy.Death.CANCELLED
    assert policy.classify(exceptions.OutOfMemoryError("oom")) is policy.Death.OUT_OF_MEMORY
    assert policy.classify(exceptions.NodeDiedError("gone")) is policy.Death.NODE_LOST


def test_a_crash_is_tried_once_more_on_another_node_when_there_is_one() -> None:
    crashed = policy.Death.CRASHED
    elsewhere = policy.retry(crashed, 1, ["n1"], ["n1", "n2"])
    assert elsewhere is not None and elsewhere.node_id == "n2" and "another node" in elsewhere.why
    same = policy.retry(crashed, 1, ["n1"], ["n1"])
    assert same is not None and same.node_id is None and "no other node" in same.why
    assert policy.retry(crashed, 2, ["n1", "n2"], ["n1", "n2"]) is None  # once more, never twice


def test_out_of_memory_and_lost_nodes_are_tried_again_only_elsewhere() -> None:
    for death in (policy.Death.OUT_OF_MEMORY, policy.Death.NODE_LOST):
        assert policy.retry(death, 1, ["n1"], ["n1"]) is None
        assert policy.retry(death, 1, ["n1"], ["n1", "n2"]).node_id == "n2"  # type: ignore[union-attr]
    assert policy.retry(policy.Death.NODE_LOST, 1, ["n1"], []) is None


def test_cancelled_and_buggy_tasks_are_not_tried_again() -> None:
    for death in (policy.Death.CANCELLED, policy.Death.ERROR):
        assert policy.retry(death, 1, ["n1"], ["n1", "n2"]) is None


def test_the_timeout_guard() -> None:
    assert not policy.waited_too_long(None, 1000.0, 60)  # its resource is on offer
    assert not policy.waited_too_long(950.0, 1000.0, 60)
    assert policy.waited_too_long(940.0, 1000.0, 60)


def test_a_dead_task_is_a_failed_check_saying_each_try() -> None:
    tries = [
        {"death": "the worker process died", "error": "WorkerCrashedError: x", "node": "abcdef0123456789"},
        {"death": "the worker process died", "error": "WorkerCrashedError: y", "node": "9876543210fedcba"},
    ]
    message = policy.death_message("l6/onnx for a", tries)
    assert message.startswith("l6/onnx for a: the worker process died on node abcdef012345")
    assert "then the worker process died on node 9876543210fe" in message and "(tried twice)" in message
    assert policy.TaskDiedError(message).exit_code == 1


# ------------------------------------------------------------------------------------- upstream


def _provenance(files: dict[str, bytes]) -> dict:
    return {
        "files": [
            {"path": k, "size": len(v), "sha256": hashlib.sha256(v).hexdigest()}
            for k, v in sorted(files.items())
        ]
    }


def test_upstream_files_land_once_per_node_checked_against_the_drivers_hashes(tmp_path: Path) -> None:
    files = {"config.json": b"{}", "sub/weights.bin": b"\x00\x01" * 100}
    provenance = _provenance(files)
    calls = []

    def send() -> list[tuple[str, bytes]]:
        calls.append(1)
        return list(files.items())

    folder = materialize(tmp_path, provenance, send)
    assert (
        folder.name == bundle_key(provenance)
        and (folder / "sub" / "weights.bin").read_bytes() == files["sub/weights.bin"]
    )
    assert materialize(tmp_path, provenance, send) == folder and len(calls) == 1  # cached on the node
    assert [p.name for p in (tmp_path / "upstream").iterdir()] == [folder.name]  # no temporary left


def test_upstream_bytes_that_do_not_match_are_refused(tmp_path: Path) -> None:
    provenance = _provenance({"weights.bin": b"good"})
    with pytest.raises(SourceError, match=r"'weights\.bin' arrived with sha256"):
        materialize(tmp_path, provenance, lambda: [("weights.bin", b"evil")])
    with pytest.raises(SourceError, match=r"'\.\./x' is not one of the variant's files"):
        materialize(tmp_path, provenance, lambda: [("../x", b"good")])
    assert list((tmp_path / "upstream").iterdir()) == []  # nothing under a final name, no temporary


# ------------------------------------------------------------------------------------- flags


def test_targets_without_ray_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mtcnn", "--variants", "pnet", "--targets", "a"]) == 2
    assert "--targets: targets are where --ray builds" in capsys.readouterr().err


def test_a_bad_target_flag_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["mtcnn", "--ray", "x:1", "--targets", "a,a"])
    assert exit_.value.code == 2 and "'a' is named twice" in capsys.readouterr().err


def test_no_cluster_at_the_address_is_exit_3_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray", reason="Ray is the optional extra 'ray'")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["mtcnn", "--variants", "pnet", "--ray", f"127.0.0.1:{port}"]) == 3
    err = capsys.readouterr().err
    assert f"--ray: no Ray cluster at 127.0.0.1:{port}" in err and "docs/cluster.md" in err


def test_without_the_ray_extra_the_error_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray imports
    assert main(["mtcnn", "--variants", "pnet", "--ray"]) == 3
    assert "pip install 'weightpack[ray]'" in capsys.readouterr().err


def test_reachable() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert reachable(f"127.0.0.1:{server.getsockname()[1]}") is None
        port = server.getsockname()[1]
    assert reachable(f"127.0.0.1:{port}") is not None
    assert reachable("auto") is None  # Ray's own lookup
