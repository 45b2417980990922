"""Where a test run spent its time: per xdist worker, the busy time and the slowest tests.

Reads ``test-results/timeline-*.jsonl`` (written by tests/conftest.py during any
run) and prints, for each worker, its wall time from first to last phase, its busy
time, and the N slowest tests (setup + call + teardown), with their xdist group.
The run's length is the longest worker's span: that worker is the critical path.

Run: ``python bench/timeline.py [--top N]`` after a test run.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "test-results"


def read_phases() -> list[dict]:
    phases = []
    for path in sorted(RESULTS.glob("timeline-*.jsonl")):
        phases += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=12)
    top = parser.parse_args().top
    by_worker: dict[str, list[dict]] = defaultdict(list)
    for phase in read_phases():
        by_worker[phase["worker"]].append(phase)
    if not by_worker:
        raise SystemExit(f"no timeline in {RESULTS}: run the tests first")
    print(f"{'worker':<8} {'span s':>8} {'busy s':>8} {'tests':>6}")
    for worker, phases in sorted(by_worker.items()):
        span = max(p["start"] + p["duration"] for p in phases) - min(p["start"] for p in phases)
        tests = {p["test"] for p in phases}
        print(f"{worker:<8} {span:8.0f} {sum(p['duration'] for p in phases):8.0f} {len(tests):6}")
    for worker, phases in sorted(by_worker.items()):
        totals: dict[str, float] = defaultdict(float)
        for phase in phases:
            totals[phase["test"]] += phase["duration"]
        print(f"\n{worker}: slowest {top}")
        for test, seconds in sorted(totals.items(), key=lambda item: -item[1])[:top]:
            print(f"{seconds:8.0f}  {test}")


if __name__ == "__main__":
    main()
