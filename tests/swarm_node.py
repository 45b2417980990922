"""A second Docker engine on this machine, for a two-node swarm.

There is one VM and one kernel here, and ``--privileged`` containers are
refused, so docker-in-docker nodes are out. A second node is a second
``dockerd`` in a network namespace of its own (``ip netns``), linked to the
host's namespace by a veth pair on a /30 of its own: the manager advertises
the host end, the node joins from the other. Swarm's control plane (TCP 2377,
7946) and the overlay networks' VXLAN (UDP 4789) then cross a real link
between two engines with their own data roots, networks and containers.

``ip netns exec`` gives the process a fresh ``/sys`` without the cgroup
hierarchies dockerd needs, so the host's cgroup mounts are made again inside
(read from ``/proc/mounts``: cgroup v1 or v2, whichever the host has).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

NETNS = "sp-node2"
HOST_END, NODE_END = "sp-node2-host", "sp-node2-peer"
# The veth pair's /30: only these two ends use it, both on this machine.
HOST_ADDRESS, NODE_ADDRESS, PREFIX = "10.253.0.1", "10.253.0.2", 30
STATE = Path("/run/sp-node2")  # the second engine's socket, pidfile and exec root
SOCKET = f"unix://{STATE}/docker.sock"


def _run(*command: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} (exit {result.returncode}): {result.stderr.strip()}")
    return result


def node_docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The docker CLI against the second engine."""
    return _run("docker", "-H", SOCKET, *args, check=check)


def link() -> None:
    """The namespace and the veth pair between it and the host, addressed and up (leftovers removed first)."""
    unlink()
    _run("ip", "netns", "add", NETNS)
    _run("ip", "link", "add", HOST_END, "type", "veth", "peer", "name", NODE_END)
    _run("ip", "link", "set", NODE_END, "netns", NETNS)
    _run("ip", "addr", "add", f"{HOST_ADDRESS}/{PREFIX}", "dev", HOST_END)
    _run("ip", "link", "set", HOST_END, "up")
    inside = ("ip", "netns", "exec", NETNS)
    _run(*inside, "ip", "addr", "add", f"{NODE_ADDRESS}/{PREFIX}", "dev", NODE_END)
    _run(*inside, "ip", "link", "set", NODE_END, "up")
    _run(*inside, "ip", "link", "set", "lo", "up")


def unlink() -> None:
    """Stop a second engine left running, then remove the namespace (its veth end takes the host's with it)."""
    stop_engine()
    _run("ip", "netns", "del", NETNS, check=False)
    _run("ip", "link", "del", HOST_END, check=False)


def _cgroup_mounts() -> str:
    """Shell commands that mount the host's cgroup hierarchies again, in the host's order."""
    commands = []
    for line in Path("/proc/mounts").read_text().splitlines():
        source, target, kind, options = line.split()[:4]
        if target == "/sys/fs/cgroup" or target.startswith("/sys/fs/cgroup/"):
            commands.append(f"mkdir -p {target} && mount -t {kind} -o {options} {source} {target}")
    return " && ".join(commands) or "true"


def start_engine(data_root: Path, timeout: float = 60) -> None:
    """dockerd in the namespace, with its own data root, exec root and socket; waits until it answers."""
    STATE.mkdir(parents=True, exist_ok=True)
    dockerd = shlex.join(
        [
            "dockerd",
            f"--data-root={data_root}",
            f"--exec-root={STATE / 'exec'}",
            f"--pidfile={STATE / 'dockerd.pid'}",
            f"--host={SOCKET}",
        ]
    )
    with (STATE / "dockerd.log").open("w") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            ["ip", "netns", "exec", NETNS, "sh", "-c", f"{_cgroup_mounts()} && exec {dockerd}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _started.append(process)
    deadline = time.monotonic() + timeout
    while node_docker("info", "--format", "{{.ID}}", check=False).returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_engine()
            tail = (STATE / "dockerd.log").read_text().splitlines()[-15:]
            raise RuntimeError("the second dockerd did not come up; its log ends:\n" + "\n".join(tail))
        time.sleep(0.25)


# The dockerd processes this process started: it must reap them (else they stay zombies).
_started: list[subprocess.Popen] = []


def stop_engine(timeout: float = 60) -> None:
    """Stop the second dockerd (the one started here, or one an earlier run left) and wait until it is gone."""
    while _started:
        process = _started.pop()
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    pidfile = STATE / "dockerd.pid"
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pidfile.unlink(missing_ok=True)
        return
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    pidfile.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether the process runs (an exited one another parent has not reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def join(token: str) -> str:
    """Join the swarm whose manager advertises HOST_ADDRESS, as a worker; the node's ID."""
    node_docker("swarm", "join", "--token", token, "--advertise-addr", NODE_ADDRESS, f"{HOST_ADDRESS}:2377")
    return node_docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()


def copy_images(images: list[str]) -> None:
    """The images from this engine into the second one (what a registry does between real hosts)."""
    save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
    load = subprocess.run(
        ["docker", "-H", SOCKET, "load", "--quiet"],
        stdin=save.stdout,
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert save.stdout is not None
    save.stdout.close()
    if save.wait(timeout=600) != 0 or load.returncode != 0:
        raise RuntimeError(f"copying {images} to the second engine failed: {load.stderr.decode()[-2000:]}")


def remove(data_root: Path) -> None:
    """Leave the swarm, stop the engine and remove its data root (the link stays: see ``unlink``)."""
    node_docker("swarm", "leave", "--force", check=False)
    stop_engine()
    shutil.rmtree(data_root, ignore_errors=True)
