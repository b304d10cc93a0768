"""The model server's router and state watcher (the server only reads the local serving state), in-process."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from arrest_server.router import (
    Deployment,
    DeploymentHolder,
    LoadedModel,
    StateWatcher,
    bucket,
    build_deployment,
)

from chicago_arrest.core.names import MODEL_NAME
from chicago_arrest.registry.state import ModelRef, ServingState, load_state, save_state

# -- router and watcher (the server only reads the state) ----------------------------------------------------


def _loaded(version: str) -> LoadedModel:
    return LoadedModel(version, f"models:/{MODEL_NAME}/{version}", object())  # type: ignore[arg-type]


def _state(*versions: str, percent: int = 0) -> ServingState:
    refs = [ModelRef.registered(v) for v in versions]
    return ServingState(
        champion=refs[0], challenger=refs[1] if len(refs) > 1 else None, canary_percent=percent
    )


def _watched(path: Path) -> tuple[DeploymentHolder, StateWatcher, list[str]]:
    """Champion 3 from the state file at ``path``, a watcher of it, and the versions its loader loaded."""
    save_state(_state("3"), path)
    loads: list[str] = []

    def loader(ref: ModelRef) -> LoadedModel:
        loads.append(ref.version)
        return _loaded(ref.version)

    holder = DeploymentHolder(build_deployment(load_state(path), loader))
    return holder, StateWatcher(path, holder, loader, poll_interval_s=0.05), loads


def test_bucket_is_stable_and_uniform() -> None:
    assert bucket("abc") == bucket("abc")
    counts = Counter(bucket(f"req-{i}") < 10 for i in range(20_000))
    assert 0.09 < counts[True] / 20_000 < 0.11


def test_choose_is_deterministic_per_request_id() -> None:
    deployment = Deployment(_loaded("3"), _loaded("4"), 10)
    ids = [f"req-{i}" for i in range(2_000)]
    roles = [deployment.choose(i)[1] for i in ids]
    assert roles == [deployment.choose(i)[1] for i in ids]
    assert roles == ["challenger" if bucket(i) < 10 else "champion" for i in ids]
    assert all(Deployment(_loaded("3"), _loaded("4"), 0).choose(i)[1] == "champion" for i in ids[:100])
    assert all(Deployment(_loaded("3"), _loaded("4"), 100).choose(i)[1] == "challenger" for i in ids[:100])
    anonymous = Counter(deployment.choose(None)[1] for _ in range(5_000))
    assert 300 < anonymous["challenger"] < 700


def test_watcher_loads_before_swapping_and_reuses_models(tmp_path: Path) -> None:
    path = tmp_path / "serving.json"
    holder, watcher, loads = _watched(path)
    seen: list[int] = []
    holder.on_swap(lambda d: seen.append(d.canary_percent))
    assert watcher.check() is False  # same file: nothing to do, nothing loaded again
    champion = holder.current.champion

    save_state(_state("3", "4", percent=20), path)
    assert watcher.check() is True
    assert holder.current.champion is champion  # reused, not reloaded
    assert holder.current.challenger is not None
    assert holder.current.challenger.version == "4"
    assert loads == ["3", "4"]
    assert seen == [0, 20]


def test_rollback_and_canary_again_reuse_the_retired_model(tmp_path: Path) -> None:
    """The model an operation stops serving stays loaded (one): undoing the operation loads nothing."""
    path = tmp_path / "serving.json"
    holder, watcher, loads = _watched(path)
    cycle = [
        _state("3", "4", percent=10),  # canary: loads 4
        _state("3"),  # rollback: 4 retired, kept
        _state("3", "4", percent=50),  # canary again: 4 from the spare
        _state("4"),  # promote: 3 retired, kept
        _state("3"),  # rollback of the promotion: 3 from the spare
        _state("3", "5", percent=10),  # a new challenger: loaded (4 stays the spare)
        _state("3", "4", percent=10),  # back to 4: from the spare; 5 becomes the spare
    ]
    for state in cycle:
        save_state(state, path)
        assert watcher.check() is True
        assert [m.version for m in holder.current.models().values()] == [
            state.champion.version,
            *([state.challenger.version] if state.challenger else []),
        ]
    assert loads == ["3", "4", "5"]
    assert watcher.spare is not None
    assert watcher.spare.version == "5"


def test_watcher_picks_up_a_state_file_created_after_start(tmp_path: Path) -> None:
    """The server started from the registry aliases (no file, nothing written); the first change is applied."""
    path = tmp_path / "serving.json"
    holder = DeploymentHolder(build_deployment(_state("3", "4"), lambda r: _loaded(r.version)))
    watcher = StateWatcher(path, holder, lambda r: _loaded(r.version))
    assert watcher.check() is False
    assert not path.exists()
    save_state(_state("3", "4", percent=10), path)
    assert watcher.check() is True
    assert holder.current.canary_percent == 10


def test_watcher_keeps_serving_when_a_model_fails_to_load(tmp_path: Path) -> None:
    path = tmp_path / "serving.json"
    save_state(_state("3"), path)
    outcomes: list[str] = []

    def loader(ref: ModelRef) -> LoadedModel:
        if ref.version == "bad":
            raise OSError("model files missing")
        return _loaded(ref.version)

    holder = DeploymentHolder(build_deployment(load_state(path), loader))
    watcher = StateWatcher(path, holder, loader, retry_s=60, on_reload=outcomes.append)
    bad = ServingState(
        champion=ModelRef.registered(3), challenger=ModelRef("bad", "/nowhere"), canary_percent=50
    )
    save_state(bad, path)
    assert watcher.check() is False
    assert holder.current.challenger is None  # still the old deployment
    assert outcomes == ["error"]
    path.write_text("{broken")
    assert watcher.check() is False  # waits for the retry time, does not spin
    assert outcomes == ["error"]


def test_watcher_thread_applies_changes(tmp_path: Path) -> None:
    path = tmp_path / "serving.json"
    save_state(_state("3"), path)
    holder = DeploymentHolder(build_deployment(load_state(path), lambda r: _loaded(r.version)))
    swapped = threading.Event()
    holder.on_swap(lambda d: swapped.set() if d.canary_percent == 30 else None)
    watcher = StateWatcher(path, holder, lambda r: _loaded(r.version), poll_interval_s=0.02)
    watcher.start()
    try:
        save_state(_state("3", "4", percent=30), path)
        assert swapped.wait(5)
    finally:
        watcher.stop()
