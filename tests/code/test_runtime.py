"""``core.runtime``: the one CPU count (training, batch scoring, server workers); freed memory handed back."""

from __future__ import annotations

from pathlib import Path

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


def test_release_memory_empties_arrows_pool_and_trims_the_c_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Freed memory goes back to the system: Arrow's pool releases what it keeps, glibc trims its heap."""
    import pyarrow as pa

    calls: list[str] = []

    class Pool:
        def release_unused(self) -> None:
            calls.append("arrow")

    monkeypatch.setattr(pa, "default_memory_pool", lambda: Pool())
    monkeypatch.setattr(runtime, "_malloc_trim", lambda: lambda pad: calls.append(f"trim {pad}"))
    runtime.release_memory()
    assert calls == ["arrow", "trim 0"]
    monkeypatch.setattr(runtime, "_malloc_trim", lambda: None)  # not glibc: Arrow's pool only
    runtime.release_memory()
    assert calls == ["arrow", "trim 0", "arrow"]
    import gc

    monkeypatch.setattr(gc, "collect", lambda: calls.append("gc") or 0)
    runtime.release_memory(collect=True)  # the cycle collector first, only when asked
    assert calls == ["arrow", "trim 0", "arrow", "gc", "arrow"]


def test_malloc_trim_is_found_on_glibc() -> None:
    import platform

    from chicago_arrest.core.runtime import _malloc_trim

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    trim = _malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)  # 1: memory was released, 0: there was none to release


def test_read_dataset_hands_the_reads_memory_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    import chicago_arrest.steps as steps

    released: list[int] = []
    monkeypatch.setattr(steps, "release_memory", lambda **kw: released.append(1))
    pd.DataFrame({"a": ["x", "y"], "b": [1, 2]}).to_parquet(tmp_path / "d.parquet")
    for text in ("python", "category", "arrow"):
        frame = steps.read_dataset(tmp_path / "d.parquet", text=text)
        assert frame["a"].astype(str).tolist() == ["x", "y"]
    assert released == [1, 1, 1]
