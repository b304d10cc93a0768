"""Release operations (over a fake registry and fake traffic), the local serving state file, MLflow aliases on a
temporary SQLite registry, and the server's router/watcher that reads the state, in-process."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from arrest_server.router import (
    Deployment,
    DeploymentHolder,
    LoadedModel,
    StateWatcher,
    bucket,
    build_deployment,
)

from chicago_arrest.names import CHALLENGER, CHAMPION, MODEL_NAME
from chicago_arrest.release import MlflowAliases, Release, ReleaseError, Split, format_status, open_release
from chicago_arrest.release.local import LocalTraffic
from chicago_arrest.release.state import ModelRef, ServingState, load_state, save_state
from chicago_arrest.settings import Settings


class FakeAliases:
    """The registry aliases in a dict, with today's promote semantics (the challenger alias stays)."""

    def __init__(self, **aliases: str) -> None:
        self.aliases = dict(aliases)
        self.fail_promote = False

    def get(self, alias: str) -> str | None:
        return self.aliases.get(alias)

    def set(self, alias: str, version: str) -> None:
        self.aliases[alias] = version

    def promote(self, version: str) -> str | None:
        if self.fail_promote:
            raise ConnectionError("tracking server down")
        previous = self.aliases.get(CHAMPION)
        self.aliases[CHALLENGER] = self.aliases[CHAMPION] = version
        return previous

    def where(self) -> str:
        return "fake://registry"


class FakeTraffic:
    """A split in memory; ``fail_writes`` makes the next writes fail."""

    target = "local"

    def __init__(self, split: Split | None = None) -> None:
        self.split = split
        self.fail_writes = 0
        self.writes: list[Split] = []

    def read(self) -> Split | None:
        return self.split

    def write(self, split: Split) -> str:
        if self.fail_writes:
            self.fail_writes -= 1
            raise OSError("disk full")
        self.split = split
        self.writes.append(split)
        return f"serving: {split.describe()}"

    def details(self) -> dict[str, Any]:
        return {"where": "memory", "notes": ["a backend note"]}


def release(split: Split | None = None, **aliases: str) -> tuple[Release, FakeTraffic, FakeAliases]:
    traffic, registry = FakeTraffic(split), FakeAliases(**aliases)
    return Release(traffic, registry), traffic, registry  # type: ignore[arg-type]


# -- the operations ------------------------------------------------------------------------------------------


def test_deploy_points_the_aliases_then_writes_traffic() -> None:
    ops, traffic, registry = release(champion="3")
    outcome = ops.deploy("3", "4", 10)
    assert traffic.split == Split("3", "4", 10)
    assert registry.aliases == {CHAMPION: "3", CHALLENGER: "4"}
    assert outcome.lines == (
        "registry: challenger alias -> version 4 (was not set)",
        "serving: champion 3 (90%), challenger 4 (10%)",
    )
    assert (outcome.target, outcome.action, outcome.split) == ("local", "deploy", Split("3", "4", 10))
    # After the gate the aliases already agree: only traffic moves.
    assert ops.deploy("3", "4", 20).lines == ("serving: champion 3 (80%), challenger 4 (20%)",)


@pytest.mark.parametrize(
    ("args", "needle"), [(("3", None, 10), "needs a challenger"), (("3", "4", 101), r"0\.\.100")]
)
def test_deploy_rejects_bad_splits_before_moving_anything(args: tuple[Any, ...], needle: str) -> None:
    ops, traffic, registry = release(champion="2")
    with pytest.raises(ReleaseError, match=needle):
        ops.deploy(*args)
    assert traffic.writes == []
    assert registry.aliases == {CHAMPION: "2"}


def test_canary_and_rollback_keep_the_challenger() -> None:
    ops, _, _ = release(Split("3", "4"), champion="3", challenger="4")
    assert ops.canary(25).message() == "serving: champion 3 (75%), challenger 4 (25%)"
    assert ops.rollback().split == Split("3", "4", 0)  # kept, for a quick new canary


def test_canary_takes_the_registry_challenger_and_derives_from_the_registry() -> None:
    ops, _, _ = release(Split("3"), champion="3", challenger="5")
    assert ops.canary(10).split == Split("3", "5", 10)
    ops, _, _ = release(None, champion="3", challenger="5")  # nothing served yet
    assert ops.canary(10).split == Split("3", "5", 10)


def test_canary_without_challenger_and_out_of_range() -> None:
    ops, traffic, _ = release(Split("3"), champion="3", challenger="3")
    with pytest.raises(ReleaseError, match="no challenger"):
        ops.canary(10)
    with pytest.raises(ReleaseError, match=r"0\.\.100"):
        ops.canary(150)
    with pytest.raises(ReleaseError, match=r"0\.\.100"):
        ops.canary(True)
    assert ops.canary(0).split == Split("3")  # 0 % needs no challenger
    assert traffic.writes == [Split("3")]


def test_nothing_served_and_no_champion_says_run_the_pipeline() -> None:
    ops, _, _ = release(None)
    with pytest.raises(ReleaseError, match="make pipeline-run"):
        ops.rollback()


def test_promote_moves_the_alias_first_then_traffic() -> None:
    ops, traffic, registry = release(Split("3", "4", 10), champion="3", challenger="4")
    outcome = ops.promote()
    assert traffic.split == Split("4")
    assert registry.aliases[CHAMPION] == "4"
    assert outcome.lines == ("registry: champion alias -> version 4 (was 3)", "serving: champion 4 (100%)")


def test_promote_promotes_what_is_served() -> None:
    ops, traffic, registry = release(Split("3", "4", 10), champion="3", challenger="6")  # 6: registered since
    lines = ops.promote().lines
    assert registry.aliases[CHAMPION] == "4"
    assert traffic.split == Split("4")
    assert "challenger alias -> version 4 (was 6)" in lines[0]


def test_promote_half_done_is_reported_and_a_rerun_finishes_it() -> None:
    ops, traffic, registry = release(Split("3", "4", 10), champion="3", challenger="4")
    traffic.fail_writes = 1
    with pytest.raises(ReleaseError) as failure:
        ops.promote()
    message = str(failure.value)
    assert "registry: champion alias -> version 4 (was 3)" in message  # what moved
    assert "serving was not changed to champion 4 (100%)" in message  # what did not
    assert "OSError: disk full" in message
    assert "`make promote` again" in message
    assert registry.aliases[CHAMPION] == "4"
    assert traffic.split == Split("3", "4", 10)
    assert any("did not finish: `make promote` finishes it" in n for n in ops.status()["notes"])

    again = ops.promote()
    assert again.lines == ("registry: version 4 is already the champion", "serving: champion 4 (100%)")
    assert traffic.split == Split("4")
    assert ops.status()["notes"] == ["a backend note"]

    done = ops.promote()
    assert done.lines[0].startswith("nothing left to do: version 4 is the registry champion")
    assert traffic.writes == [Split("4")]


def test_promote_when_the_registry_refuses_changes_nothing_in_serving() -> None:
    ops, traffic, registry = release(Split("3", "4", 10), champion="3", challenger="4")
    registry.fail_promote = True
    with pytest.raises(ReleaseError, match=r"refused a change .*serving was not changed"):
        ops.promote()
    assert traffic.split == Split("3", "4", 10)


def test_promote_without_challenger_fails() -> None:
    ops, _, _ = release(Split("3"), champion="3")
    with pytest.raises(ReleaseError, match="nothing to promote"):
        ops.promote()


def test_status_reports_split_registry_and_disagreements() -> None:
    ops, _, _ = release(Split("3"), champion="4", challenger="5")
    report = ops.status()
    json.dumps(report)
    assert report["serving"] == {"champion": "3", "challenger": None, "canary_percent": 0}
    assert report["registry"] == {
        "tracking_uri": "fake://registry",
        "model": MODEL_NAME,
        "champion": "4",
        "challenger": "5",
    }
    assert report["backend"] == {"where": "memory"}
    notes = report["notes"]
    assert notes[0] == "a backend note"
    assert any("differs from the registry champion 4" in n for n in notes)
    assert any("registry challenger 5 is not served yet" in n for n in notes)
    text = format_status(report)
    assert text.splitlines()[0] == "Serving (local): champion 3 (100%)"
    assert "  where: memory" in text
    assert "  @champion:   4" in text
    assert "Note: a backend note" in text


def test_status_survives_unreadable_serving_and_registry() -> None:
    ops, traffic, registry = release()

    def broken(*_: Any) -> Any:
        raise ConnectionError("unreachable")

    traffic.read = broken  # type: ignore[method-assign]
    registry.get = broken  # type: ignore[method-assign]
    report = ops.status()
    assert report["serving"] is None
    assert any(n.startswith("serving not readable") for n in report["notes"])
    assert any(n.startswith("registry not readable") for n in report["notes"])
    assert format_status(report).startswith("Serving (local): nothing yet")


# -- the local serving state file ----------------------------------------------------------------------------


def test_state_file_round_trip_keeps_todays_shape_and_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "serving" / "serving.json"
    state = ServingState(
        champion=ModelRef.registered(3), challenger=ModelRef.registered("4"), canary_percent=10
    )
    save_state(state, path)
    assert load_state(path) == state
    doc = json.loads(path.read_text())
    assert set(doc) == {"champion", "challenger", "canary_percent", "updated_at"}
    assert doc["champion"] == {"version": "3", "uri": f"models:/{MODEL_NAME}/3"}
    assert [p.name for p in path.parent.iterdir()] == ["serving.json"]  # no temporary file left behind
    # A file written by the previous implementation (numbers as versions, no updated_at) still loads.
    path.write_text(
        '{"champion": {"version": 7, "uri": "/models/7"}, "challenger": null, "canary_percent": 0}'
    )
    assert load_state(path).split() == Split("7")


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ("not json", "Invalid JSON"),
        ("[]", "document"),
        ('{"champion": null}', "champion"),
        ('{"champion": {"version": "1"}}', "champion.uri"),
        ('{"champion": {"version": "1", "uri": "x"}, "canary_percent": 10}', "no challenger"),
        ('{"champion": {"version": "1", "uri": "x"}, "challenger": {"version": "2", "uri": "y"}, '
         '"canary_percent": 101}', r"canary_percent: .*0\.\.100"),
    ],
)  # fmt: skip
def test_invalid_files_are_rejected_with_a_reason(tmp_path: Path, doc: str, needle: str) -> None:
    path = tmp_path / "serving.json"
    path.write_text(doc)
    with pytest.raises(ReleaseError, match=f"serving.json is not a valid serving state: .*{needle}"):
        load_state(path)
    with pytest.raises(ReleaseError):
        Release(LocalTraffic(path), FakeAliases(champion="1")).rollback()  # type: ignore[arg-type]


def test_local_traffic_writes_only_changes_and_keeps_known_uris(tmp_path: Path) -> None:
    path = tmp_path / "serving.json"
    traffic = LocalTraffic(path)
    assert traffic.read() is None
    assert "no serving state yet" in traffic.details()["notes"][0]
    save_state(ServingState(champion=ModelRef("golden", str(tmp_path))), path)
    assert (
        traffic.write(Split("golden", "4", 30)) == "local serving: champion golden (70%), challenger 4 (30%)"
    )
    state = load_state(path)
    assert state.champion.uri == str(tmp_path)  # a version already served keeps its URI
    assert state.challenger == ModelRef.registered(4)
    before = path.read_text()
    assert traffic.write(Split("golden", "4", 30)).startswith("local serving: unchanged")
    assert path.read_text() == before
    assert traffic.details()["state"]["canary_percent"] == 30


def test_concurrent_writers_do_not_lose_changes(tmp_path: Path) -> None:
    """Each thread has its own Release (as separate CLI processes would); canary and promote interleave."""
    path = tmp_path / "serving.json"
    registry = FakeAliases(champion="1", challenger="2")
    save_state(ServingState.from_split(Split("1", "2")), path)
    errors: list[BaseException] = []

    def flip(percent: int) -> None:
        try:
            ops = Release(LocalTraffic(path), registry)  # type: ignore[arg-type]
            for _ in range(10):
                ops.canary(percent)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=flip, args=(p,)) for p in (10, 20, 30, 40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert load_state(path).canary_percent in (10, 20, 30, 40)
    assert not list(tmp_path.glob(".serving.json.*.tmp"))


# -- MLflow aliases on a real (SQLite) registry ----------------------------------------------------------------


def test_mlflow_aliases_on_a_sqlite_registry(settings: Settings) -> None:
    aliases = MlflowAliases.from_settings(settings)
    assert aliases.get(CHAMPION) is None  # no registry yet: empty, and reading creates nothing
    assert not settings.data_dir.exists()
    assert aliases.where() == settings.resolved_tracking_uri()

    settings.mlflow_dir.mkdir(parents=True)
    client = aliases.client
    client.create_registered_model(MODEL_NAME)
    for i in range(3):
        client.create_model_version(MODEL_NAME, source=str(settings.data_dir / f"v{i}"))
    aliases.set(CHAMPION, "1")
    aliases.set(CHALLENGER, "3")
    assert (aliases.get(CHAMPION), aliases.get(CHALLENGER)) == ("1", "3")
    assert aliases.promote("2") == "1"  # the served version, not the newest challenger
    assert (aliases.get(CHAMPION), aliases.get(CHALLENGER)) == ("2", "2")
    assert client.get_model_version(MODEL_NAME, "2").tags["previous_champion"] == "1"

    ops = open_release("local", settings=settings)
    assert ops.target == "local"
    ops.deploy("2", "3", 10)
    outcome = ops.promote()
    assert outcome.lines[0] == "registry: champion alias -> version 3 (was 2)"
    assert load_state(settings.serving_config_path).split() == Split("3")
    assert aliases.get(CHAMPION) == "3"
    assert ops.status()["notes"] == []


def test_open_release_rejects_unknown_targets(settings: Settings) -> None:
    with pytest.raises(ReleaseError, match="unknown release target"):
        open_release("moon", settings=settings)  # type: ignore[arg-type]


# -- router and watcher (the server only reads the state) ----------------------------------------------------


def _loaded(version: str) -> LoadedModel:
    return LoadedModel(version, f"models:/{MODEL_NAME}/{version}", object())  # type: ignore[arg-type]


def _state(*versions: str, percent: int = 0) -> ServingState:
    refs = [ModelRef.registered(v) for v in versions]
    return ServingState(
        champion=refs[0], challenger=refs[1] if len(refs) > 1 else None, canary_percent=percent
    )


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
    save_state(_state("3"), path)
    loads: list[str] = []

    def loader(ref: ModelRef) -> LoadedModel:
        loads.append(ref.version)
        return _loaded(ref.version)

    holder = DeploymentHolder(build_deployment(load_state(path), loader))
    seen: list[int] = []
    holder.on_swap(lambda d: seen.append(d.canary_percent))
    watcher = StateWatcher(path, holder, loader, poll_interval_s=0.05)
    assert watcher.check() is False  # same file: nothing to do, nothing loaded again
    champion = holder.current.champion

    save_state(_state("3", "4", percent=20), path)
    assert watcher.check() is True
    assert holder.current.champion is champion  # reused, not reloaded
    assert holder.current.challenger is not None
    assert holder.current.challenger.version == "4"
    assert loads == ["3", "4"]
    assert seen == [0, 20]


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
