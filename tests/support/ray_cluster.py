"""A real multi-node Ray cluster on this machine, on loopback, for rehearsals and tests.

What: ``LocalRayCluster`` runs ``ray start --head`` and ``ray start --address ...`` as
separate process trees (each node in its own process group), every port chosen free,
all state under one short temporary directory. ``kill_node`` SIGKILLs a whole node
(raylet, its workers and agents) the way a lost machine disappears; ``stop`` ends every
node it started, and only those.

Why: the Ray executor must be checked against a cluster with several nodes (shards
placed on more than one, a node lost mid-run), not against an in-process mock.

Ray's token authentication is switched off for this cluster (``RAY_AUTH_MODE=disabled``
on every node; drivers need ``driver_env``): Ray turns it on for a head when a token
file exists in ``~/.ray`` but not for nodes that join, so a rehearsal cluster would
otherwise depend on the user's home directory. Do not use it for a real cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from migrate.errors import ConfigError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_cli() -> list[str]:
    exe = Path(sys.executable).with_name("ray")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("ray")
    if not found:
        raise ConfigError("the `ray` command is not installed", hint="pip install 'jina-migrate[ray]'")
    return [found]


@dataclass
class RayNode:
    """One started node: the process group that holds all its processes."""

    name: str
    pgid: int
    num_cpus: float
    log: Path
    alive: bool = True
    node_id: str = ""  # Ray's hex node id, once the cluster counts the node


@dataclass
class LocalRayCluster:
    """Head plus worker nodes on 127.0.0.1 (see module docstring)."""

    head_cpus: float = 1
    env: dict[str, str] = field(default_factory=dict)
    root: Path | None = None
    start_timeout_s: float = 120.0
    nodes: list[RayNode] = field(default_factory=list)
    port: int = 0
    _own_root: bool = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def driver_env(self) -> dict[str, str]:
        """Environment a driver process needs to connect (``RAY_ADDRESS`` and the auth mode)."""
        return {"RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": self.address}

    def __enter__(self) -> LocalRayCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.root is None:
            # Short: Ray's unix sockets live below it and socket paths are limited to ~107 bytes.
            self.root = Path(tempfile.mkdtemp(prefix="jmray-", dir="/tmp"))
            self._own_root = True
        self.port = free_port()
        self._start_node("head", ["--head", f"--port={self.port}", f"--ray-client-server-port={free_port()}",
                                  "--include-dashboard=false", f"--temp-dir={self.root}"], self.head_cpus)

    def add_node(self, num_cpus: float = 1) -> RayNode:
        """Start one more worker node and wait until the cluster counts it."""
        known = set(self.node_ids() or [])
        node = self._start_node(f"worker{len(self.nodes)}", [f"--address={self.address}"], num_cpus)
        self._wait_for_nodes(len(known) + 1)
        new = [n for n in self.node_ids() or [] if n not in known]
        node.node_id = new[0] if len(new) == 1 else ""
        return node

    def _start_node(self, name: str, args: list[str], num_cpus: float) -> RayNode:
        assert self.root is not None
        log = self.root / f"{name}.log"
        cmd = _ray_cli() + ["start", *args, "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus:g}",
                            "--num-gpus=0", "--disable-usage-stats", f"--node-manager-port={free_port()}",
                            f"--object-manager-port={free_port()}", f"--metrics-export-port={free_port()}",
                            f"--dashboard-agent-listen-port={free_port()}",
                            f"--dashboard-agent-grpc-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
                            "--object-store-memory=100000000"]
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", **self.env}
        env.pop("RAY_ADDRESS", None)
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            try:
                rc = proc.wait(timeout=self.start_timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise RuntimeError(f"`ray start` for {name} did not finish; see {log}") from None
        node = RayNode(name, proc.pid, num_cpus, log)
        self.nodes.append(node)
        if rc != 0:
            self.kill_node(node)
            raise RuntimeError(f"`ray start` for {name} failed (exit {rc}): {log.read_text()[-2000:]}")
        return node

    def node_ids(self) -> list[str] | None:
        """Hex ids of the nodes the cluster's GCS counts as alive (None if it cannot be asked)."""
        try:
            from ray._raylet import GcsClient

            infos = GcsClient(address=self.address).get_all_node_info(timeout=10)
        except Exception:  # noqa: BLE001 - the head may still be starting
            return None
        return [k.hex() for k, v in infos.items() if int(v.state) == 0]  # GcsNodeState.ALIVE == 0

    def alive_nodes(self) -> int:
        """How many nodes are alive (-1 if the cluster cannot be asked)."""
        ids = self.node_ids()
        return -1 if ids is None else len(ids)

    def _wait_for_nodes(self, n: int) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.alive_nodes() >= n:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the local Ray cluster did not reach {n} nodes")

    def kill_node(self, node: RayNode) -> None:
        """SIGKILL every process of ``node``, as if the machine vanished.

        That is its process group (raylet, agents) and every descendant of those: Ray
        starts each worker process in a process group of its own.
        """
        if not node.alive:
            return
        node.alive = False
        for pid in _node_processes(node.pgid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self.kill_node(node)
        if self._own_root and self.root is not None:
            time.sleep(0.5)
            shutil.rmtree(self.root, ignore_errors=True)


def _node_processes(pgid: int) -> list[int]:
    """Members of process group ``pgid`` and all their descendants (Linux ``/proc``)."""
    parent: dict[int, int] = {}
    group: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        parent[int(d.name)], group[int(d.name)] = int(fields[1]), int(fields[2])
    found = {pid for pid, g in group.items() if g == pgid}
    grew = True
    while grew:
        kids = {pid for pid, pp in parent.items() if pp in found and pid not in found}
        found |= kids
        grew = bool(kids)
    return sorted(found)
