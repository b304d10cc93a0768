"""The local serving state (file, verbs, registry aliases), the CLI, and the server's router/watcher, in-process."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
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
from mlflow.exceptions import MlflowException

from chicago_arrest import cli, serving_state
from chicago_arrest.serving_state import (
    ModelRef,
    NoChampionError,
    ServingState,
    ServingStateError,
    deploy_local,
    ensure_state,
    load_state,
    save_state,
)
from chicago_arrest.settings import Settings

NAME = serving_state.MODEL_NAME


@dataclass
class _Version:
    version: str


class FakeRegistry:
    """The part of MlflowClient that serving uses: aliases and version tags."""

    def __init__(self, **aliases: str) -> None:
        self.aliases = dict(aliases)
        self.tags: dict[tuple[str, str], str] = {}

    def get_model_version_by_alias(self, name: str, alias: str) -> _Version:
        if alias not in self.aliases:
            raise MlflowException(f"alias {alias} not found")
        return _Version(self.aliases[alias])

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.aliases[alias] = str(version)

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.tags[(str(version), key)] = value


# -- the file ------------------------------------------------------------------------------------------------


def test_round_trip_and_atomic_write(tmp_path: Path) -> None:
    path = tmp_path / "serving" / "serving.json"
    state = ServingState(ModelRef.registered(3), ModelRef.registered("4"), 10)
    save_state(state, path)
    assert load_state(path) == state
    assert json.loads(path.read_text())["champion"] == {"version": "3", "uri": f"models:/{NAME}/3"}
    assert [p.name for p in path.parent.iterdir()] == ["serving.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ("not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"champion": null}', "no champion"),
        ('{"champion": {"version": "1"}}', "uri"),
        ('{"champion": {"version": "1", "uri": "x"}, "canary_percent": 10}', "no challenger"),
        ('{"champion": {"version": "1", "uri": "x"}, "challenger": {"version": "2", "uri": "y"}, '
         '"canary_percent": 101}', "0..100"),
    ],
)  # fmt: skip
def test_invalid_files_are_rejected_with_a_reason(tmp_path: Path, doc: str, needle: str) -> None:
    path = tmp_path / "serving.json"
    path.write_text(doc)
    with pytest.raises(ServingStateError, match=needle):
        load_state(path)


def test_concurrent_writers_do_not_lose_changes(settings: Settings) -> None:
    deploy_local("1", "2", 0, settings=settings)
    errors: list[BaseException] = []

    def flip(percent: int) -> None:
        try:
            for _ in range(10):
                serving_state.set_canary(percent, settings=settings)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=flip, args=(p,)) for p in (10, 20, 30, 40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert load_state(settings.serving_config_path).canary_percent in (10, 20, 30, 40)


# -- the verbs -----------------------------------------------------------------------------------------------


def test_ensure_state_builds_from_registry_with_canary_zero(settings: Settings) -> None:
    state = ensure_state(settings, FakeRegistry(champion="3", challenger="4"))  # type: ignore[arg-type]
    assert (state.champion.version, state.challenger and state.challenger.version, state.canary_percent) == (
        "3",
        "4",
        0,
    )
    assert load_state(settings.serving_config_path) == state
    # An existing file wins over the registry.
    assert ensure_state(settings, FakeRegistry(champion="9")) == state  # type: ignore[arg-type]


def test_challenger_equal_to_champion_is_no_challenger(settings: Settings) -> None:
    state = ensure_state(settings, FakeRegistry(champion="3", challenger="3"))  # type: ignore[arg-type]
    assert state.challenger is None


def test_no_champion_says_run_the_pipeline(settings: Settings) -> None:
    with pytest.raises(NoChampionError, match="make pipeline-run"):
        ensure_state(settings, FakeRegistry())  # type: ignore[arg-type]


def test_set_canary_and_rollback(settings: Settings) -> None:
    deploy_local(3, 4, settings=settings)
    assert serving_state.set_canary(25, settings=settings).canary_percent == 25
    state = serving_state.rollback(settings=settings)
    assert state.canary_percent == 0
    assert state.challenger == ModelRef.registered(4)  # kept, for a quick new canary


def test_set_canary_takes_the_registry_challenger(settings: Settings) -> None:
    deploy_local(3, settings=settings)
    registry = FakeRegistry(champion="3", challenger="5")
    state = serving_state.set_canary(10, settings=settings, client=registry)  # type: ignore[arg-type]
    assert state.challenger == ModelRef.registered(5)


def test_set_canary_without_any_challenger_fails(settings: Settings) -> None:
    deploy_local(3, settings=settings)
    registry = FakeRegistry(champion="3", challenger="3")
    with pytest.raises(ServingStateError, match="no challenger"):
        serving_state.set_canary(10, settings=settings, client=registry)  # type: ignore[arg-type]
    with pytest.raises(ServingStateError, match=r"0\.\.100"):
        serving_state.set_canary(150, settings=settings, client=registry)  # type: ignore[arg-type]


def test_promote_moves_the_alias_and_the_state(settings: Settings) -> None:
    deploy_local(3, 4, 10, settings=settings)
    registry = FakeRegistry(champion="3", challenger="4")
    state = serving_state.promote(settings=settings, client=registry)  # type: ignore[arg-type]
    assert state.champion == ModelRef.registered(4)
    assert state.challenger is None
    assert state.canary_percent == 0
    assert registry.aliases["champion"] == "4"
    assert registry.tags[("4", "previous_champion")] == "3"


def test_promote_promotes_what_is_served(settings: Settings) -> None:
    deploy_local(3, 4, 10, settings=settings)
    registry = FakeRegistry(champion="3", challenger="6")  # a newer challenger was registered meanwhile
    serving_state.promote(settings=settings, client=registry)  # type: ignore[arg-type]
    assert registry.aliases["champion"] == "4"


def test_promote_without_challenger_fails(settings: Settings) -> None:
    deploy_local(3, settings=settings)
    with pytest.raises(ServingStateError, match="nothing to promote"):
        serving_state.promote(settings=settings, client=FakeRegistry(champion="3"))  # type: ignore[arg-type]


def test_status_reports_state_registry_and_drift(settings: Settings) -> None:
    deploy_local(3, settings=settings)
    report = serving_state.status(settings=settings, client=FakeRegistry(champion="4", challenger="5"))  # type: ignore[arg-type]
    assert report["state"]["champion"]["version"] == "3"
    assert report["registry"]["champion"] == "4"
    assert any("differs" in note for note in report["notes"])
    assert any("not served yet" in note for note in report["notes"])


def test_deploy_local_accepts_folders(settings: Settings, tmp_path: Path) -> None:
    state = deploy_local(ModelRef("golden", str(tmp_path)), settings=settings)
    assert state.champion.uri == str(tmp_path)


# -- the CLI --------------------------------------------------------------------------------------------------


@pytest.fixture
def env_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI builds its own Settings from the environment."""
    monkeypatch.setenv("ARREST_DATA_DIR", str(settings.data_dir))
    return settings


def test_cli_local_canary_and_rollback(env_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    deploy_local(3, 4, settings=env_settings)
    assert cli.main(["serving", "canary", "--percent", "30"]) == 0
    assert "challenger 4 (30%)" in capsys.readouterr().out
    assert cli.main(["serving", "rollback", "--target", "local"]) == 0
    assert load_state(env_settings.serving_config_path).canary_percent == 0


def test_cli_errors_are_one_line(env_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    deploy_local(3, settings=env_settings)
    (env_settings.serving_config_path).write_text("{broken")
    assert cli.main(["serving", "rollback"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "Traceback" not in err


def test_cli_rejects_bad_percent(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["serving", "canary", "--percent", "101"])
    assert exc.value.code == 2


def test_cli_cluster_target_calls_k8s_and_mlflow(
    env_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chicago_arrest import k8s, registry

    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(k8s, "set_canary", lambda p, **kw: calls.append(("canary", p, kw)) or "patched")
    monkeypatch.setattr(k8s, "promote", lambda **kw: calls.append(("promote", kw)) or "patched")
    monkeypatch.setattr(k8s, "rollback", lambda **kw: calls.append(("rollback", kw)) or "patched")
    monkeypatch.setattr(registry, "configure_mlflow", lambda s: "client")
    monkeypatch.setattr(registry, "promote_challenger", lambda c: calls.append(("mlflow", c)) or ("3", "4"))
    assert cli.main(["serving", "canary", "--percent", "10", "--target", "cluster", "--namespace", "ns"]) == 0
    assert cli.main(["serving", "promote", "--target", "cluster"]) == 0
    assert cli.main(["serving", "rollback", "--target", "cluster"]) == 0
    assert calls == [
        ("canary", 10, {"namespace": "ns"}),
        ("promote", {}),
        ("mlflow", "client"),
        ("rollback", {}),
    ]
    assert not env_settings.serving_config_path.exists()  # the local state is not touched


# -- router and watcher (the server side of the state) ------------------------------------------------------


def _loaded(version: str) -> LoadedModel:
    return LoadedModel(version, f"models:/{NAME}/{version}", object())  # type: ignore[arg-type]


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
    save_state(ServingState(ModelRef.registered(3)), path)
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

    save_state(ServingState(ModelRef.registered(3), ModelRef.registered(4), 20), path)
    assert watcher.check() is True
    assert holder.current.champion is champion  # reused, not reloaded
    assert holder.current.challenger is not None
    assert holder.current.challenger.version == "4"
    assert loads == ["3", "4"]
    assert seen == [0, 20]


def test_watcher_keeps_serving_when_a_model_fails_to_load(tmp_path: Path) -> None:
    path = tmp_path / "serving.json"
    save_state(ServingState(ModelRef.registered(3)), path)
    outcomes: list[str] = []

    def loader(ref: ModelRef) -> LoadedModel:
        if ref.version == "bad":
            raise OSError("model files missing")
        return _loaded(ref.version)

    holder = DeploymentHolder(build_deployment(load_state(path), loader))
    watcher = StateWatcher(path, holder, loader, retry_s=60, on_reload=outcomes.append)
    save_state(ServingState(ModelRef.registered(3), ModelRef("bad", "/nowhere"), 50), path)
    assert watcher.check() is False
    assert holder.current.challenger is None  # still the old deployment
    assert outcomes == ["error"]
    path.write_text("{broken")
    assert watcher.check() is False  # waits for the retry time, does not spin
    assert outcomes == ["error"]


def test_watcher_thread_applies_changes(tmp_path: Path) -> None:
    path = tmp_path / "serving.json"
    save_state(ServingState(ModelRef.registered(3)), path)
    holder = DeploymentHolder(build_deployment(load_state(path), lambda r: _loaded(r.version)))
    swapped = threading.Event()
    holder.on_swap(lambda d: swapped.set() if d.canary_percent == 30 else None)
    watcher = StateWatcher(path, holder, lambda r: _loaded(r.version), poll_interval_s=0.02)
    watcher.start()
    try:
        save_state(ServingState(ModelRef.registered(3), ModelRef.registered(4), 30), path)
        assert swapped.wait(5)
    finally:
        watcher.stop()
