"""A real Ray cluster of several nodes on this machine, for tests and measurements: each node a
``ray start --block`` in its own session (``setsid``), with its own ``--temp-dir``, its own weightpack
cache (``WEIGHTPACK_CACHE``) and a custom resource standing in for a GPU type (``{"target:a": 1}``).

Stopping it never uses ``ray stop`` (which stops every Ray process of the machine, other people's too):
each node's ``ray start`` is sent SIGTERM (it stops the processes it started), then anything left in
that node's session is killed by pid.

``python -m tests.cluster.local DIR`` starts a two-node cluster under DIR, prints its address and waits
for Ctrl-C (then stops it): for trying ``pack --ray`` by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.hermetic import child_env

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
ADDRESS_LINE = re.compile(r"ray start --address='([^']+)'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class NodeProcess:
    name: str
    process: subprocess.Popen
    log: Path
    cache: Path
    temp: Path

    def session_pids(self) -> list[int]:
        """Every live process of this node's session (the ray start, raylet, workers...)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) == self.process.pid and fields[0] != "Z":
                pids.append(int(entry.name))
        return pids

    def stop(self, grace_s: float = 15) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace_s)
        deadline = time.monotonic() + grace_s
        while self.session_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self.session_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(5)


@dataclass
class LocalCluster:
    """A head and workers on this machine; ``address`` is what ``pack --ray`` takes."""

    root: Path
    address: str = ""
    nodes: list[NodeProcess] = field(default_factory=list)
    # Ray's --temp-dir holds its AF_UNIX sockets (at most 107 bytes a path, ~65 of them Ray's own): a short
    # folder in /tmp, not under ``root`` (pytest's, one level deeper under pytest-xdist, is too long).
    sockets: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="wp-ray-", dir="/tmp")))

    def client_env(self) -> dict[str, str]:
        """What a driver (``pack --ray``) and every node need: this cluster's own token. Ray turns token
        authentication on by itself when ``~/.ray/auth_token`` exists (another user's Ray may have made
        one), so the mode and the token are always given here, never taken from the home folder."""
        token = self.root / "auth_token"
        if not token.is_file():
            token.touch(mode=0o600)
            token.write_text(secrets.token_hex(32))
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0"}

    def env(self, cache: Path) -> dict[str, str]:
        """A node's environment: offline, its own cache, this cluster's token, nothing of the caller's."""
        return child_env({**self.client_env(), "WEIGHTPACK_CACHE": str(cache)})

    def start_node(
        self, name: str, resources: dict[str, float], cpus: int = 1, timeout_s: float = 120
    ) -> NodeProcess:
        """Start one node (the first is the head) and wait until Ray says it runs."""
        temp, cache = self.sockets / name, self.root / f"cache-{name}"
        temp.mkdir(parents=True, exist_ok=True)
        log = self.root / f"{name}.log"
        head = not self.nodes
        argv = [str(RAY), "start", "--block", f"--temp-dir={temp}", f"--num-cpus={cpus}", "--num-gpus=0"]
        argv += [f"--resources={json.dumps(resources)}", "--disable-usage-stats"]
        argv += ["--object-store-memory=150000000"]
        if head:
            argv += ["--head", "--port=0", "--include-dashboard=false", f"--dashboard-port={free_port()}"]
        else:
            argv += [f"--address={self.address}"]
        with open(log, "w") as out:
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(cache),
                start_new_session=True,
                cwd=ROOT,
            )
        node = NodeProcess(name, process, log, cache, temp)
        self.nodes.append(node)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "Ray runtime started" in text:
                if head:
                    self.address = ADDRESS_LINE.search(text).group(1)  # type: ignore[union-attr]
                return node
            if process.poll() is not None:
                break
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(
            f"ray start for node {name} did not come up:\n{log.read_text(errors='replace')[-3000:]}"
        )

    def node(self, name: str) -> NodeProcess:
        return next(n for n in self.nodes if n.name == name)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.sockets, ignore_errors=True)

    def leftovers(self) -> list[int]:
        return [pid for node in self.nodes for pid in node.session_pids()]


def start(root: Path, targets: dict[str, str]) -> LocalCluster:
    """A cluster of one node per ``{name: target}`` (the first is the head), each advertising
    ``target:TARGET``."""
    cluster = LocalCluster(Path(root))
    try:
        for name, target in targets.items():
            cluster.start_node(name, {f"target:{target}": 1})
    except BaseException:
        cluster.stop()
        raise
    return cluster


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the nodes on SIGTERM too (finally below)
    where = Path(sys.argv[1] if len(sys.argv) > 1 else "out/ray-cluster").resolve()
    cluster = start(where, {"h": "a", "w": "b"})
    settings = " ".join(f"{k}={v}" for k, v in cluster.client_env().items())
    print(
        f"address: {cluster.address}\n  {settings} pack FAMILY --ray {cluster.address} --targets a,b",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
