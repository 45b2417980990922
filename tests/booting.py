"""Run ``stackplate boot`` as a user would, and check that it leaves nothing behind."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from reports import junit_counts

from stackplate.boot import BOOT_FILE, STATE_DIR
from stackplate.native import run_checked, uv_command

BOOT_TIMEOUT = 900  # seconds: installs or image builds (uv sync, npm ci, vite build) on a cold cache
CHROMIUM = "/usr/bin/chromium"


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children of every thread), from /proc."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    children = {int(child) for child in (task / "children").read_text().split()}
                    pending.extend(children - found)
                    found |= children
    return found


def alive(pids: set[int]) -> set[int]:
    """The ones still running (zombies count as gone)."""
    running = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                running.add(pid)
    return running


@contextlib.contextmanager
def stackplate_boot(project: Path, log: Path, *options: str) -> Iterator[dict]:
    """``stackplate boot [OPTIONS] PROJECT`` until boot.json appears; SIGTERM it after the block.

    After the block: the command exited 0 and none of its processes is left.
    """
    boot_file = project / STATE_DIR / BOOT_FILE
    command = [str(Path(sys.executable).with_name("stackplate")), "boot", *options, str(project)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not boot_file.exists():
            seen |= descendants(process.pid)
            assert process.poll() is None, f"boot exited with {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no {boot_file} after {BOOT_TIMEOUT} s:\n{log.read_text()}"
            time.sleep(0.5)
        seen |= descendants(process.pid)
        yield json.loads(boot_file.read_text())
        seen |= descendants(process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(300)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, log.read_text()
    assert not boot_file.exists(), "boot.json outlived the boot"
    assert not alive(seen), f"left running: {sorted(alive(seen))}"


def run_e2e_suite(project: Path, frontend: str, artifacts: Path, venv: Path, scratch: Path) -> None:
    """The project's own Playwright suite against its booted ``frontend``, in Debian's chromium."""
    env = {
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "E2E_BOOT_FILE": str(project / STATE_DIR / BOOT_FILE),
        "E2E_FRONTEND": frontend,
        "E2E_CHROMIUM": CHROMIUM,
        "E2E_ARTIFACTS": str(artifacts),
    }
    report = scratch / f"e2e-{frontend}-junit.xml"
    command = uv_command("run", "--frozen", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}")
    run_checked(command, project / "e2e", env, f"{project.name}: e2e suite")
    junit_counts(report).assert_all_passed(f"{project.name}: e2e suite")
