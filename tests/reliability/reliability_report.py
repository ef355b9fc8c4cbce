"""The figures of the reliability suite, gathered while it runs and written at its end.

Each test records what it actually did, after it checked the outcome: a kill is
counted as survived only once the restarted process converged, a fault only when the
proxy (or the disk, the keyring...) really injected it, a hostile input only when it
was fed to s3vault and the result checked. Nothing here is a target or a constant;
a run that did less reports less.

At the end of the session (``pytest_terminal_summary`` in this folder's conftest) the
figures are printed and written to ``build/reliability-report.md``.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ReliabilityReport:
    """Counters by kind, filled by the tests of ``tests/reliability``."""

    soak: bool = False
    kills: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    hostile: Counter[str] = field(default_factory=Counter)
    secrets_scanned: Counter[str] = field(default_factory=Counter)
    secrets_found: int = 0
    bytes_checked: int = 0
    bytes_lost: int = 0
    seeds: dict[str, int] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def kill(self, target: str, n: int = 1) -> None:
        """``n`` kill -9 of ``target`` (agent, rotate, restore...) survived: converged."""
        with self._lock:
            self.kills[target] += n

    def fault(self, kind: str, n: int = 1) -> None:
        """``n`` faults of ``kind`` injected (and the outcome checked)."""
        with self._lock:
            self.faults[kind] += n

    def hostile_input(self, kind: str, n: int = 1) -> None:
        """``n`` hostile inputs of ``kind`` fed to s3vault (and the outcome checked)."""
        with self._lock:
            self.hostile[kind] += n

    def secrets(self, place: str, scanned: int, found: int) -> None:
        """``scanned`` items (files, processes, rows...) of ``place`` searched for key
        material; ``found`` hits."""
        with self._lock:
            self.secrets_scanned[place] += scanned
            self.secrets_found += found

    def data(self, checked: int, lost: int) -> None:
        """``checked`` bytes compared with what they must be; ``lost`` of them were
        missing or different."""
        with self._lock:
            self.bytes_checked += checked
            self.bytes_lost += lost

    def seed(self, test: str, seed: int) -> None:
        with self._lock:
            self.seeds[test] = seed

    def figure(self, name: str, value: str) -> None:
        """A free-form measured figure (load: time, peak RSS, open fds...)."""
        with self._lock:
            self.figures[name] = value

    def empty(self) -> bool:
        return not (
            self.kills
            or self.faults
            or self.hostile
            or self.secrets_scanned
            or self.bytes_checked
            or self.figures
        )

    def markdown(self, outcome: str) -> str:
        def table(title: str, counts: Counter[str], unit: str) -> list[str]:
            lines = [f"## {title}: {sum(counts.values()):,}", ""]
            if counts:
                lines += [f"| {unit} | count |", "|---|---:|"]
                lines += [f"| {kind} | {n:,} |" for kind, n in sorted(counts.items())]
                lines.append("")
            return lines

        mode = "soak" if self.soak else "CI"
        lines = [
            "# s3vault reliability report",
            "",
            f"Mode: {mode}. Tests: {outcome}.",
            "",
            "| figure | value |",
            "|---|---:|",
            f"| kills survived | {sum(self.kills.values()):,} |",
            f"| faults injected | {sum(self.faults.values()):,} |",
            f"| hostile inputs tried | {sum(self.hostile.values()):,} |",
            f"| secrets found | {self.secrets_found} |",
            f"| bytes lost | {self.bytes_lost:,} (of {self.bytes_checked:,} checked) |",
            "",
        ]
        lines += table("Kills survived", self.kills, "killed")
        lines += table("Faults injected", self.faults, "kind")
        lines += table("Hostile inputs tried", self.hostile, "kind")
        lines += table("Places searched for key material", self.secrets_scanned, "place")
        if self.figures:
            lines += ["## Load and other figures", "", "| figure | value |", "|---|---|"]
            lines += [f"| {name} | {value} |" for name, value in sorted(self.figures.items())]
            lines.append("")
        if self.seeds:
            lines += [
                "## Seeds (replay: S3VAULT_CRASH_SEED=<seed> pytest <test>)",
                "",
                *[f"- {test}: {seed}" for test, seed in sorted(self.seeds.items())],
                "",
            ]
        return "\n".join(lines)

    def write(self, path: Path, outcome: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown(outcome))
