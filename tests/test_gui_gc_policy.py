"""The app's garbage-collection policy: no automatic full collection (it would freeze
the UI thread for 100-400 ms), a full one when no job has run for a while, and
nothing leaks through the freezing."""

from __future__ import annotations

import gc
import threading
import weakref

from s3vault.gui import gc_policy
from s3vault.gui.gc_policy import IdleCollector
from s3vault.gui.jobs import JobRunner


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_a_cycle_frozen_at_start_is_freed_by_the_idle_collection_not_before(
    qtbot, monkeypatch
) -> None:
    monkeypatch.setattr(gc_policy, "IDLE_SECONDS", 0.0)
    runner = JobRunner()
    old = gc.get_threshold()
    node = Node()
    ref = weakref.ref(node)
    collector = IdleCollector(runner)  # freezes everything alive, the node too
    try:
        assert gc.get_threshold()[2] == gc_policy.NEVER
        del node
        gc.collect()  # a frozen object is not walked: the dead cycle stays
        assert ref() is not None

        release = threading.Event()
        runner.start("busy", lambda job: release.wait(10))
        collector._check()  # a job runs: the user may be waiting, no full collection
        assert ref() is not None
        release.set()
        qtbot.waitUntil(lambda: not runner.running)

        collector._check()  # idle after work: unfreeze, collect, freeze
        assert ref() is None
    finally:
        collector.stop()
        runner.shutdown()
    assert gc.get_threshold() == old
    assert gc.get_freeze_count() == 0
