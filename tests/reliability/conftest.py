"""Fixtures of the reliability suite (see docs/reliability.md).

``reliability`` (session)
    The :class:`reliability_report.ReliabilityReport` every test adds its figures to; printed
    and written to ``build/reliability-report.md`` at the end of the session.
``soak`` (session)
    True under ``pytest --soak``: the same tests at soak scale (1,000 kills,
    100,000 files, a 10 GiB file), hours rather than minutes; outside CI.
``crash_seed`` (function)
    A seed for the test's random choices: ``S3VAULT_CRASH_SEED`` when set (to replay
    a failure), else a fresh one; printed and recorded in the report.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
from reliability_report import ReliabilityReport

_REPORT = ReliabilityReport()


@pytest.fixture(scope="session")
def soak(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--soak"))


@pytest.fixture(scope="session")
def reliability(soak: bool) -> ReliabilityReport:
    _REPORT.soak = soak
    return _REPORT


@pytest.fixture
def crash_seed(request: pytest.FixtureRequest, reliability: ReliabilityReport) -> int:
    given = os.environ.get("S3VAULT_CRASH_SEED")
    seed = int(given) if given else random.SystemRandom().randrange(2**32)
    print(f"seed {seed} (replay: S3VAULT_CRASH_SEED={seed} pytest '{request.node.nodeid}')")
    reliability.seed(request.node.nodeid, seed)
    return seed


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Soak scale runs for minutes to hours per test: no time-out (CI's 300 s stays).
    if config.getoption("--soak"):
        here = Path(__file__).parent
        for item in items:
            if here in item.path.parents:
                item.add_marker(pytest.mark.timeout(0))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _REPORT.empty():
        return
    stats = terminalreporter.stats
    outcome = ", ".join(
        f"{len(stats[key])} {key}" for key in ("passed", "failed", "error") if stats.get(key)
    )
    path = Path(config.rootpath) / "build" / "reliability-report.md"
    _REPORT.write(path, outcome or "none ran")
    terminalreporter.write_sep("=", "reliability report")
    for line in _REPORT.markdown(outcome).splitlines()[4:11]:
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"full report: {path}")
