"""``require_tool``: a missing tool skips a test on a workstation and fails it under CI."""

from __future__ import annotations

import sys

import pytest
from conftest import require_tool

MISSING = "/nonexistent/stackplate-no-such-tool"


def test_a_present_tool_is_its_path(monkeypatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert require_tool(sys.executable, "it runs this test") == sys.executable
    assert require_tool("sh", "apt-get install dash").endswith("/sh")


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_a_missing_tool_skips_with_its_hint_outside_ci(monkeypatch, ci) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_tool(MISSING, "apt-get install it")
    assert str(skipped.value) == f"{MISSING} is not installed (apt-get install it)"


@pytest.mark.parametrize("ci", ["true", "1"])
def test_a_missing_tool_fails_under_ci(monkeypatch, ci) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception) as failed:
        require_tool(MISSING, "apt-get install it")
    assert str(failed.value) == (
        f"{MISSING} is not installed (apt-get install it); CI is set, so a missing tool fails the test"
    )
