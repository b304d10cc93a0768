"""``core.runtime.available_cpus``: the one CPU count of the project (training, batch scoring, server workers)."""

from __future__ import annotations

import pytest

from chicago_arrest.core import runtime
from chicago_arrest.core.runtime import available_cpus


def test_available_cpus_is_the_smaller_of_affinity_and_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARREST_CPUS", raising=False)
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(runtime, "_cgroup_quota", lambda: None)
    assert available_cpus() == 4
    monkeypatch.setattr(runtime, "_cgroup_quota", lambda: 2.5)  # a pod's `limits.cpu: 2500m`
    assert available_cpus() == 2
    monkeypatch.setattr(runtime, "_cgroup_quota", lambda: 0.5)
    assert available_cpus() == 1


def test_arrest_cpus_overrides_the_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_cgroup_quota", lambda: 1.0)
    monkeypatch.setenv("ARREST_CPUS", "3")
    assert available_cpus() == 3
    monkeypatch.setenv("ARREST_CPUS", "0")
    assert available_cpus() == 1
