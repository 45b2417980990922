"""Run ``stackplate boot`` as a user would, and check that it leaves nothing behind."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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


def command_name(pid: int) -> str:
    """The process's command name (``postgres``, ``redis-server``...), "" once it is gone."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""


def boot_file_of(project: Path) -> Path:
    return project / STATE_DIR / BOOT_FILE


# Exec ARGV with SIGINT as a terminal leaves it: a suite started in the background
# by a non-interactive shell (as CI may be) inherits SIGINT ignored, and a Ctrl-C
# would do nothing. The same process id, so the caller's Popen is the boot itself.
_WITH_DEFAULT_SIGINT = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"


class Boot:
    """``stackplate boot [OPTIONS] PROJECT`` in a subprocess of its own process group.

    Its output goes to a file (a pipe nobody reads would fill up and stall it);
    ``seen`` collects every process below it while the test polls, and their
    command names, so a test can tell what it started and that nothing is left.
    """

    def __init__(self, project: Path, log: Path, *options: str) -> None:
        self.project, self.log = project, log
        self.boot_file = boot_file_of(project)
        self.seen: set[int] = set()
        self.names: set[str] = set()
        command = [str(Path(sys.executable).with_name("stackplate")), "boot", *options, str(project)]
        with log.open("wb") as output:
            # A session of its own: a terminal's Ctrl-C goes to its whole process group.
            self.process = subprocess.Popen(
                [sys.executable, "-c", _WITH_DEFAULT_SIGINT, *command],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def look(self) -> None:
        found = descendants(self.process.pid)
        self.names |= {command_name(pid) for pid in found - self.seen}
        self.seen |= found

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = BOOT_TIMEOUT) -> None:
        """Poll ``condition`` (looking at the processes meanwhile) until it holds, with a deadline."""
        deadline = time.monotonic() + timeout
        while not condition():
            self.look()
            assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s:\n{self.output()}"
            time.sleep(0.2)
        self.look()

    def wait_booted(self) -> dict:
        """boot.json, once it is there; the boot must still be running."""

        def booted() -> bool:
            assert self.process.poll() is None, (
                f"boot exited with {self.process.returncode}:\n{self.output()}"
            )
            return self.boot_file.exists()

        self.wait_until(booted, f"no {self.boot_file}")
        return json.loads(self.boot_file.read_text())

    def wait_exit(self, timeout: float = 300) -> int:
        self.wait_until(lambda: self.process.poll() is not None, "the boot did not exit", timeout)
        return self.process.returncode

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Signal the boot (if it still runs) and wait for it; its exit code."""
        if self.process.poll() is None:
            self.look()
            self.process.send_signal(signum)
        try:
            return self.wait_exit()
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def assert_left_nothing(self) -> None:
        assert not self.boot_file.exists(), "boot.json outlived the boot"
        assert not alive(self.seen), f"left running: {sorted(alive(self.seen))}"


@contextlib.contextmanager
def stackplate_boot(project: Path, log: Path, *options: str) -> Iterator[dict]:
    """``stackplate boot [OPTIONS] PROJECT`` until boot.json appears; SIGTERM it after the block.

    After the block: the command exited 0 and none of its processes is left.
    """
    boot = Boot(project, log, *options)
    try:
        yield boot.wait_booted()
        boot.look()
    finally:
        code = boot.stop()
    assert code == 0, boot.output()
    boot.assert_left_nothing()


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
