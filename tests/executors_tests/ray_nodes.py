"""A real Ray cluster for tests: `ray start` processes on this machine, as users make one.

Every node gets a private ``--temp-dir`` under a short folder of its own (Ray's socket paths
must stay under 107 bytes, too few for a pytest tmp_path), so nothing is written to /tmp/ray: no
``ray_current_cluster`` file for another ``ray.init()`` on this machine to find), ports picked
free at run time, and token auth with a token of its own. ``ray stop`` is never used (it stops
every Ray on the machine): each ``ray start`` runs under a small keeper process that is the
leader of a new session and a child subreaper, so :meth:`RayCluster.stop` ends exactly the
processes of that node -- by their session id -- and the keeper reaps them (no zombies).
"""

from __future__ import annotations

import os
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

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 120

# Runs `ray start` (argv), then reaps the node's processes (it is their subreaper) until SIGTERM;
# if the test process dies first, it kills the node's processes itself (nothing outlives the tests).
KEEPER = r"""
import ctypes, os, signal, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)          # PR_SET_CHILD_SUBREAPER: orphans come to us
parent, stop = os.getppid(), []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
rc = subprocess.call(sys.argv[1:], stdout=sys.stdout, stderr=subprocess.STDOUT)
print(f"RAY_START_RC={rc}", flush=True)
while not stop:
    if os.getppid() != parent:                   # the test process is gone: end this node
        for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
            try:
                if pid != os.getpid() and os.getsid(pid) == os.getpid():
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        stop.append(1)
    try:
        os.waitpid(-1, os.WNOHANG) != (0, 0) or time.sleep(0.2)
    except ChildProcessError:
        time.sleep(0.2)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.getsid(int(name)) != sid:
                continue
            state = Path(f"/proc/{name}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.append(int(name))
    return out


@dataclass
class RayNode:
    """One `ray start` node: its keeper process (the session leader) and its folder."""

    name: str
    keeper: subprocess.Popen
    folder: Path
    resources: dict[str, float]
    node_id: str = ""

    @property
    def sid(self) -> int:
        return self.keeper.pid

    def pids(self) -> list[int]:
        return [pid for pid in session_pids(self.sid) if pid != self.sid]

    def raylet_pid(self) -> int:
        for pid in self.pids():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                    return pid
            except OSError:
                continue
        raise RuntimeError(f"node {self.name} has no raylet")

    def stop(self) -> None:
        """SIGKILL every process of this node (found by session id), let the keeper reap them, end it."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        self.keeper.terminate()
        try:
            self.keeper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.keeper.kill()
            self.keeper.wait()


@dataclass
class RayCluster:
    """A head and worker nodes started with `ray start` in a new temporary folder, token auth on."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="nfray-")))
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    nodes: list[RayNode] = field(default_factory=list)
    port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PYTEST_"))}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        env.update(extra or {})
        return env

    def start_head(self, *, cpus: int = 1, resources: dict[str, float] | None = None,
                   env: dict[str, str] | None = None) -> RayNode:
        self.port = free_port()
        # Faster health checks: a lost node is declared dead in ~3 s instead of ~30 s.
        config = '{"health_check_period_ms": 1000, "health_check_timeout_ms": 1000, "health_check_failure_threshold": 3}'
        return self._start("head", ["--head", "--port", str(self.port), "--include-dashboard", "false",
                                    "--dashboard-port", str(free_port()), "--system-config", config],
                           cpus=cpus, resources=resources, env=env)

    def add_node(self, name: str, *, cpus: int = 1, resources: dict[str, float] | None = None,
                 env: dict[str, str] | None = None) -> RayNode:
        return self._start(name, ["--address", self.address], cpus=cpus, resources=resources, env=env)

    def _start(self, name: str, args: list[str], *, cpus: int, resources, env) -> RayNode:
        import json

        folder = self.root / name
        folder.mkdir(parents=True)
        resources = dict(resources or {})
        argv = [RAY, "start", *args, "--node-ip-address", "127.0.0.1", "--temp-dir", str(folder / "ray"),
                "--num-cpus", str(cpus), "--num-gpus", "0", "--resources", json.dumps(resources),
                "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
                "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
                "--min-worker-port", "0", "--max-worker-port", "0", "--disable-usage-stats"]
        log = open(folder / "ray_start.log", "w")
        keeper = subprocess.Popen([sys.executable, "-c", KEEPER, *argv], env=self.env(env), stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                  cwd=folder)
        node = RayNode(name=name, keeper=keeper, folder=folder, resources=resources)
        self.nodes.append(node)
        deadline = time.monotonic() + START_TIMEOUT_S
        while "RAY_START_RC=" not in (text := (folder / "ray_start.log").read_text()):
            if time.monotonic() > deadline or keeper.poll() is not None:
                raise RuntimeError(f"`ray start` of node {name} did not finish:\n{text[-3000:]}")
            time.sleep(0.2)
        if "RAY_START_RC=0" not in text:
            raise RuntimeError(f"`ray start` of node {name} failed:\n{text[-3000:]}")
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        self.nodes.clear()
        shutil.rmtree(self.root, ignore_errors=True)
