"""``pack --ray`` on a real Ray cluster of two nodes on this machine (started once for this module): node
``h`` (the head) advertises ``target:a``, node ``w`` ``target:b``, CPU targets standing in for GPU types;
each node has its own Ray temp folder and weightpack cache under the test's folder.

The family is MTCNN's P-net (``pack mtcnn --variants pnet``): the demo family's run takes a minute on this
2-core machine, this one seconds, and the mechanism is the same (the MiniLM comparison is measured by hand
in docs/cluster.md). TorchScript zips are left out of the comparison: two local runs already differ
(torch.jit.save writes a random serialization id), so a hash match would be luck.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from packager.atomic import owner_pid
from tests.cluster import local
from tests.hostile.test_kill import incomplete_outputs, temporaries
from tests.packs import ROOT, child_env, pack_popen, pack_process

pytestmark = pytest.mark.slow
pytest.importorskip("ray", reason="Ray is the optional extra 'ray' (pip install weightpack[ray])")

PNET = ("mtcnn", "--variants", "pnet", "--no-latency", "--devices", "cpu", "--quiet")
PACKAGE_KEYS = ("variant", "backend", "zip", "manifest", "size", "md5", "sha256", "files", "model_class")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.LocalCluster]:
    running = local.start(tmp_path_factory.mktemp("ray"), {"h": "a", "w": "b"})
    try:
        with pytest.MonkeyPatch.context() as env:  # the drivers these tests start join with its token
            for key, value in running.client_env().items():
                env.setenv(key, value)
            yield running
    finally:
        running.stop()
    assert running.leftovers() == []  # every process of both nodes' sessions is gone


def pack_on(cluster: local.LocalCluster, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return pack_process(
        *PNET, "--out", str(out), "--cache-dir", str(out.parent / "cache"), "--ray", cluster.address, *args,
        env=cluster.client_env(),
    )  # fmt: skip


def report_of(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def without_device(rows: list[dict], device: str) -> list:
    """``device``'s rows without the device; figures to 1e-9 (a Ray worker sums with other BLAS threads:
    the cosine of two identical outputs came out 1 ulp below 1.0 there), everything else exactly."""
    return [
        {k: pytest.approx(v, rel=1e-9) if isinstance(v, float) else v for k, v in r.items() if k != "device"}
        for r in rows
        if r["device"] == device
    ]


def task_folders(cluster: local.LocalCluster) -> dict[str, tuple[str, int]]:
    """The tasks running now, by scratch folder: (node, worker pid)."""
    found = {}
    for node in cluster.nodes:
        scratch = node.cache / "cluster" / "scratch"
        for entry in scratch.iterdir() if scratch.is_dir() else []:
            pid = owner_pid(entry.name)
            if entry.name.startswith(".task-") and pid is not None:
                found[entry.name] = (node.name, pid)
    return found


def alive(pid: int) -> bool:
    """The process runs (a zombie waiting for its parent does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_a_cluster_run_gathers_the_packages_a_local_run_reports(
    cluster: local.LocalCluster, tmp_path: Path
) -> None:
    local_out, out = tmp_path / "local" / "out", tmp_path / "cluster" / "out"
    here = pack_process(
        *PNET, "--backends", "torch,onnx", "--out", str(local_out), "--cache-dir", str(tmp_path / "c")
    )
    assert here.returncode == 0, here.stderr[-3000:]
    proc = pack_on(cluster, out, "--backends", "torch,onnx", "--targets", "a,b")
    assert proc.returncode == 0, proc.stderr[-3000:]
    mine, theirs = report_of(out), report_of(local_out)
    assert mine["passed"] and theirs["passed"] and mine["failures"] == theirs["failures"] == []
    assert mine["references"] == theirs["references"]  # the driver computed them as a local run does
    # same packages, same bytes
    assert [{k: p[k] for k in PACKAGE_KEYS} for p in mine["packages"]] == [
        {k: p[k] for k in PACKAGE_KEYS} for p in theirs["packages"]
    ]
    for p in mine["packages"]:
        assert (out / p["zip"]).read_bytes() == (local_out / p["zip"]).read_bytes()
    # same verdicts, on each target's node
    for target in ("a", "b"):
        assert without_device(mine["parity"], f"cpu@{target}") == without_device(theirs["parity"], "cpu")
        assert without_device(mine["task_checks"], f"cpu@{target}") == without_device(
            theirs["task_checks"], "cpu"
        )
        assert (out / "goldens" / f"mtcnn-pnet-onnx-cpu@{target}.npz").is_file()
    # each package's node and target recorded: built by one target's node, checked on each target's
    nodes = {n["node_id"]: n for n in mine["meta"]["cluster"]["nodes"]}
    assert {n["kinds"][0] for n in nodes.values()} == {"target:a", "target:b"}
    for p, builder in zip(mine["packages"], ("a", "b"), strict=True):  # the builds take turns
        where = p["cluster"]
        assert where["built_on"]["target"] == builder and not where["reused_from_out"]
        checked = {t: v["node"]["node_id"] for t, v in where["targets"].items()}
        assert sorted(checked) == ["a", "b"] and checked["a"] != checked["b"]
        assert nodes[checked["a"]]["kinds"] == ["target:a"] and nodes[checked["b"]]["kinds"] == ["target:b"]
        built_on = json.loads((out / p["manifest"]).read_text())["built_on"]  # the machine's specs
        assert built_on["target"] == builder and built_on["node_id"] == checked[builder]
        assert built_on["machine"]["cpu_count"] and built_on["machine"]["libraries"]["weightpack"]
    assert "## Cluster" in (out / "report.md").read_text()

    # a re-run rebuilds nothing and checks nothing again, wherever its tasks land
    manifests = {p["manifest"]: (out / p["manifest"]).read_bytes() for p in mine["packages"]}
    again = pack_on(cluster, out, "--backends", "torch,onnx", "--targets", "a,b")
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = report_of(out)
    for p in rerun["packages"]:
        assert p["reused"] and p["cluster"]["reused_from_out"]
        assert sorted(p["verification"]) == ["cpu@a", "cpu@b"]
        assert all(v["reused_from"] for v in p["verification"].values())
        assert (out / p["manifest"]).read_bytes() == manifests[p["manifest"]]


def test_a_target_no_node_provides_fails_its_package_with_exit_3(
    cluster: local.LocalCluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = pack_on(cluster, out, "--backends", "torch", "--targets", "a,jetson-orin")
    assert proc.returncode == 3, proc.stderr[-3000:]
    report = report_of(out)
    [failure] = report["failures"]
    assert (failure["stage"], failure["target"], failure["exit_code"]) == ("cluster", "jetson-orin", 3)
    assert "'target:jetson-orin' or 'accelerator_type:JETSON-ORIN'" in failure["message"]
    assert "the cluster offers: target:a, target:b" in failure["message"]
    # built and checked on target a only, never elsewhere in jetson-orin's place
    assert {p["device"] for p in report["parity"]} == {"cpu@a"} and all(p["passed"] for p in report["parity"])
    assert list(report["packages"][0]["cluster"]["targets"]) == ["a", "jetson-orin"]
    assert report["packages"][0]["cluster"]["targets"]["jetson-orin"]["node"] is None
    assert report["meta"]["cluster"]["targets"] == {"a": "target:a", "jetson-orin": None}


def test_a_killed_worker_is_tried_once_more_elsewhere_then_is_its_packages_failed_check(
    cluster: local.LocalCluster, tmp_path: Path
) -> None:
    """No targets: tasks may run on either node. The torch task's worker is killed once (tried again, on
    the other node: it passes); the onnx task's worker is killed on both tries (a failed check, exit 1),
    and the run goes on."""
    out = tmp_path / "out"
    argv = [*PNET, "--backends", "torch,onnx", "--json", "--out", str(out)]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--ray", cluster.address]
    child = pack_popen(*argv, env=cluster.client_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    plan = {"torch": 1, "onnx": 2}  # how many of each package's tries to kill
    killed: dict[str, list[tuple[str, int]]] = {"torch": [], "onnx": []}
    deadline = time.monotonic() + 300
    while child.poll() is None and time.monotonic() < deadline:
        for name, (node, pid) in task_folders(cluster).items():
            backend = name.split("-")[2].split(".")[0]
            if len(killed[backend]) < plan[backend] and (node, pid) not in killed[backend] and alive(pid):
                os.kill(pid, signal.SIGKILL)
                killed[backend].append((node, pid))
        time.sleep(0.05)
    stdout, err = child.communicate(timeout=60)
    assert [len(killed["torch"]), len(killed["onnx"])] == [1, 2], (killed, err[-3000:])
    assert child.returncode == 1, err[-3000:]
    assert json.loads(stdout)["passed"] is False  # Ray's notice of each dead worker went to stderr
    report = report_of(out)
    [torch, *_] = report["packages"]
    assert torch["backend"] == "torch" and all(
        p["passed"] for p in report["parity"] if p["backend"] == "torch"
    )
    [died] = torch["cluster"]["targets"]["*"]["attempts"]
    assert died["death"] == "the worker process died" and died["error"].startswith("WorkerCrashedError")
    assert died["node"] != torch["cluster"]["targets"]["*"]["node"]["node_id"]  # tried again elsewhere
    [failure] = report["failures"]
    assert (failure["backend"], failure["stage"], failure["exit_code"]) == ("onnx", "cluster", 1)
    assert (
        failure["message"].count("the worker process died on node") == 2
        and "(tried twice)" in failure["message"]
    )
    assert report["meta"]["cluster"]["retries"] == 2 and not report["passed"]


def test_ctrl_c_cancels_every_task_and_leaves_the_output_intact(
    cluster: local.LocalCluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = [*PNET, "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    argv += ["--ray", cluster.address, "--targets", "a"]  # three tasks, one after another on node h
    child = pack_popen(*argv, env=cluster.client_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    running: list[int] = []
    while not running and child.poll() is None and time.monotonic() < deadline:
        running = [pid for _, pid in task_folders(cluster).values() if alive(pid)]
        time.sleep(0.05)
    assert running, "no task started"
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err[-3000:]
    assert "interrupted" in err
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in running)  # the task's worker was stopped, not left running
    assert incomplete_outputs(out) == [] and temporaries(out) == []
    assert not (out / "report.json").exists()  # as after a local interrupt: the re-run writes it
    again = pack_on(cluster, out, "--targets", "a")
    assert again.returncode == 0, again.stderr[-3000:]
    assert report_of(out)["passed"] and len(report_of(out)["packages"]) == 3
    # the interrupted tasks' scratch was swept by the next task on their node (another test's killed worker
    # may have left one on the other node, where no task of this run goes)
    assert [name for name, (_, pid) in task_folders(cluster).items() if pid in running] == []


def test_the_nightly_fanout_packs_on_the_cluster(cluster: local.LocalCluster, tmp_path: Path) -> None:
    out = tmp_path / "nightly"
    argv = [sys.executable, "-m", "packager.nightly.fanout", "--out", str(out), "--families", "mtcnn"]
    argv += ["--variants", "pnet", "--backends", "onnx", "--ray", cluster.address, "--targets", "b"]
    argv += ["--", "--no-latency", "--devices", "cpu", "--cache-dir", str(tmp_path / "cache")]
    env = child_env(cluster.client_env())
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    [family] = json.loads((out / "fanout.json").read_text())
    assert (family["family"], family["exit_code"], family["out_dir"]) == ("mtcnn", 0, str(out / "mtcnn"))
    [package] = family["packages"]
    assert package["zip"] == "mtcnn-pnet-onnx.zip" and package["built_on"]["target"] == "b"
    assert report_of(out / "mtcnn")["passed"] and (out / "mtcnn" / "mtcnn-pnet-onnx.zip").is_file()
