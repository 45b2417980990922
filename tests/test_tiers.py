"""The fast tier: ./dev.sh test -- -m "not slow" reaches pytest as given, and slow tests are marked."""

from __future__ import annotations

import functools
import importlib.util
import tomllib
from dataclasses import dataclass, field

import pytest
from conftest import REPO, unmarked_slow_tests


@functools.cache  # nox registers each session when the file runs: once only
def _noxfile():
    spec = importlib.util.spec_from_file_location("stackplate_noxfile", REPO / "noxfile.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("given", "run"),
    [
        ([], ["-q"]),
        (["-m", "not slow"], ["-q", "-m", "not slow"]),
        (["-k", "markers", "-x"], ["-q", "-k", "markers", "-x"]),
        (["-v", "-m", "slow"], ["-v", "-m", "slow"]),
        (["-vv"], ["-vv"]),
        (["--verbosity=2"], ["--verbosity=2"]),
        (["-q", "-q"], ["-q", "-q"]),
    ],
)
def test_nox_passes_pytest_arguments_through_quiet_by_default(given, run) -> None:
    assert _noxfile().pytest_arguments(given) == run


def test_slow_is_registered_and_markers_are_strict() -> None:
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in options["addopts"].split()
    assert any(marker.startswith("slow: ") for marker in options["markers"])


@dataclass
class _Item:
    """What the collection check reads of a pytest item."""

    nodeid: str
    fixturenames: list[str]
    markers: list[str] = field(default_factory=list)

    def get_closest_marker(self, name: str) -> str | None:
        return name if name in self.markers else None


def test_a_test_that_installs_is_caught_unless_marked_slow() -> None:
    items = [
        _Item("t.py::unmarked", ["tmp_path", "node_modules"]),
        _Item("t.py::marked", ["synced_venv"], ["slow"]),
        _Item("t.py::plain", ["tmp_path"]),
    ]
    assert unmarked_slow_tests(items) == ["t.py::unmarked"]
