"""Test runners judged by their machine-readable reports, never by words in their human output.

Each rendered suite writes a report (JUnit XML for pytest and node:test, JSON for
vitest); these read it into counts that a test can assert on.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Counts:
    passed: int
    failed: int
    skipped: int

    def assert_all_passed(self, what: str, *, skips_allowed: bool = False) -> None:
        """At least one test ran and none failed; none was skipped unless allowed."""
        assert self.failed == 0 and self.passed > 0, f"{what}: {self}"
        assert skips_allowed or self.skipped == 0, f"{what}: {self}"


def junit_counts(report: Path) -> Counts:
    """Counts from a JUnit XML report (pytest's --junitxml, node's junit reporter)."""
    root = ET.parse(report).getroot()
    passed = failed = skipped = 0
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return Counts(passed, failed, skipped)


def vitest_counts(report: Path) -> Counts:
    """Counts from vitest's JSON reporter (Jest's format)."""
    data = json.loads(report.read_text())
    return Counts(
        data["numPassedTests"],
        data["numFailedTests"],
        data["numPendingTests"] + data.get("numTodoTests", 0),
    )


def node_test_env(report: Path) -> dict[str, str]:
    """The environment that makes ``npm test`` (node --test) also write a JUnit report."""
    reporters = f"--test-reporter=spec --test-reporter-destination=stdout --test-reporter=junit --test-reporter-destination={report}"
    return {"NODE_OPTIONS": reporters}
