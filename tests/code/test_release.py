"""Release operations over a fake registry and fake traffic, the local serving state file, and the MLflow
registry primitives on a temporary SQLite registry. Whole operator scenarios on a real registry, locally and
on a recorded cluster: test_operator_verbs.py; the server's router/watcher: test_serving_router.py."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.core.names import CHALLENGER, CHAMPION, MODEL_NAME
from chicago_arrest.core.settings import Settings
from chicago_arrest.registry.aliases import MlflowAliases
from chicago_arrest.registry.state import ModelRef, ServingState, Split, load_state, save_state
from chicago_arrest.release.local import LocalTraffic
from chicago_arrest.release.ops import Release, format_status, open_release


class FakeAliases:
    """The registry in dicts: aliases, version tags (every version 1..9 exists and passed the gate unless told)."""

    def __init__(self, **aliases: str) -> None:
        self.aliases = dict(aliases)
        self.versions: dict[str, dict[str, str]] = {str(v): {"gate": "passed"} for v in range(1, 10)}
        self.model: dict[str, str] = {}
        self.fail_set = False

    def get(self, alias: str) -> str | None:
        return self.aliases.get(alias)

    def set(self, alias: str, version: str) -> None:
        if self.fail_set:
            raise ConnectionError("tracking server down")
        self.aliases[alias] = version

    def delete(self, alias: str) -> None:
        self.aliases.pop(alias, None)

    def version_tags(self, version: str) -> dict[str, str] | None:
        return dict(self.versions[version]) if version in self.versions else None

    def tag_version(self, version: str, tags: dict[str, str | None]) -> None:
        for key, value in tags.items():
            if value is None:
                self.versions[version].pop(key, None)
            else:
                self.versions[version][key] = value

    def model_tags(self) -> dict[str, str]:
        return dict(self.model)

    def tag_model(self, tags: dict[str, str]) -> None:
        self.model.update(tags)

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


def promoted(registry: FakeAliases, version: str, previous: str | None, by: str = "promote") -> None:
    """Version ``version`` became champion by ``by``, replacing ``previous`` (its history tags)."""
    registry.aliases[CHAMPION] = version
    registry.tag_version(
        version,
        {"previous_champion": previous, "champion_since": "2026-11-29T21:00:00+00:00", "champion_by": by},
    )


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
    assert set(registry.model) == {"challenger_changed_at", "split_changed_at.local"}
    # After the gate the aliases already agree: only traffic moves.
    assert ops.deploy("3", "4", 20).lines == ("serving: champion 3 (80%), challenger 4 (20%)",)
    # A deploy without a challenger removes the alias: it never outlives the canary.
    assert ops.deploy("4").lines[:2] == (
        "registry: champion alias -> version 4 (was 3)",
        "registry: challenger alias removed (was version 4)",
    )
    assert registry.aliases == {CHAMPION: "4"}
    assert registry.versions["4"]["previous_champion"] == "3"


@pytest.mark.parametrize(
    ("args", "needle"), [(("3", None, 10), "needs a challenger"), (("3", "4", 101), r"0\.\.100")]
)
def test_deploy_rejects_bad_splits_before_moving_anything(args: tuple[Any, ...], needle: str) -> None:
    ops, traffic, registry = release(champion="2")
    with pytest.raises(ReleaseError, match=needle):
        ops.deploy(*args)
    assert traffic.writes == []
    assert registry.aliases == {CHAMPION: "2"}


def test_canary_then_rollback_stops_it_and_keeps_the_challenger() -> None:
    ops, traffic, registry = release(Split("3", "4"), champion="3", challenger="4")
    assert ops.canary(25).message() == "serving: champion 3 (75%), challenger 4 (25%)"
    stopped = ops.rollback()
    assert stopped.split == Split("3", "4", 0)  # kept, for a quick new canary
    assert stopped.lines[0].startswith("canary stopped: every request goes to champion 3; challenger 4 stays")
    assert registry.aliases == {CHAMPION: "3", CHALLENGER: "4"}
    assert ops.rollback().split == Split("3", "4", 0)  # idempotent
    assert traffic.writes == [Split("3", "4", 25), Split("3", "4", 0), Split("3", "4", 0)]


def test_canary_takes_the_registry_challenger_and_derives_from_the_registry() -> None:
    ops, _, _ = release(Split("3"), champion="3", challenger="5")
    assert ops.canary(10).split == Split("3", "5", 10)
    ops, _, _ = release(None, champion="3", challenger="5")  # nothing served yet
    assert ops.canary(10).split == Split("3", "5", 10)


def test_canary_without_challenger_and_out_of_range() -> None:
    ops, traffic, _ = release(Split("3"), champion="3")
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


def test_promote_moves_the_champion_removes_the_challenger_then_traffic() -> None:
    ops, traffic, registry = release(Split("3", "4", 10), champion="3", challenger="4")
    outcome = ops.promote()
    assert traffic.split == Split("4")
    assert registry.aliases == {CHAMPION: "4"}
    assert outcome.lines == (
        "served traffic: no comparison of version 4 with champion 3 recorded (`make monitor SOURCE=serving` "
        "measures both on the requests each served)",
        "registry: champion alias -> version 4 (was 3); version 3 is recorded as the previous champion",
        "registry: challenger alias removed (version 4 is the champion now)",
        "serving: champion 4 (100%)",
    )
    tags = registry.versions["4"]
    assert (tags["previous_champion"], tags["champion_by"]) == ("3", "promote")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", tags["champion_since"])


def test_promote_promotes_what_is_served() -> None:
    ops, traffic, registry = release(Split("3", "4", 10), champion="3", challenger="6")  # 6: passed since
    lines = ops.promote().lines
    assert registry.aliases == {CHAMPION: "4"}
    assert traffic.split == Split("4")
    assert lines[2] == "registry: challenger alias removed (was version 6; its canary ended)"


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
    assert registry.aliases == {CHAMPION: "4"}
    assert traffic.split == Split("3", "4", 10)
    assert any("did not finish: `make promote` finishes it" in n for n in ops.status()["notes"])

    again = ops.promote()
    assert again.lines == ("registry: version 4 is already the champion", "serving: champion 4 (100%)")
    assert traffic.split == Split("4")
    assert ops.status()["notes"] == ["a backend note"]
    assert registry.versions["4"]["previous_champion"] == "3"  # the re-run kept the history

    done = ops.promote()
    assert done.lines[0].startswith("nothing left to do: version 4 was promoted at 20")
    assert traffic.writes == [Split("4")]


def test_promote_when_the_registry_refuses_changes_nothing_in_serving() -> None:
    ops, traffic, registry = release(Split("3", "4", 10), champion="3", challenger="4")
    registry.fail_set = True
    with pytest.raises(
        ReleaseError, match=r"refused a change .*serving was not changed.*`make promote` again"
    ):
        ops.promote()
    assert traffic.split == Split("3", "4", 10)
    registry.fail_set = False
    assert ops.promote().split == Split("4")  # the re-run writes the same history and finishes
    assert registry.versions["4"]["previous_champion"] == "3"


def test_promote_without_challenger_fails() -> None:
    ops, _, registry = release(Split("3"), champion="3")
    promoted(registry, "3", None, by="first model")
    with pytest.raises(ReleaseError, match=r"nothing to promote: .*`make promote VERSION=n` pins"):
        ops.promote()


def test_rollback_after_a_promote_restores_the_previous_champion_once() -> None:
    ops, traffic, registry = release(Split("3", "4", 10), champion="3", challenger="4")
    promoted(registry, "3", "2", by="gate")
    ops.promote()
    undone = ops.rollback()
    assert undone.split == Split("3")
    assert undone.lines[0].startswith(
        "registry: champion alias -> version 3 (was 4), undoing the promote of 4 at 20"
    )
    assert undone.lines[0].endswith("; version 4 is recorded as the previous champion")
    assert registry.aliases == {CHAMPION: "3"}
    assert (registry.versions["3"]["champion_by"], registry.versions["3"]["previous_champion"]) == (
        "rollback",
        "4",
    )
    again = ops.rollback()  # idempotent: it does not walk further back to version 2
    assert again.lines[0].startswith("nothing left to roll back: version 3 is champion again since 20")
    assert registry.aliases[CHAMPION] == "3"
    assert traffic.writes == [Split("4"), Split("3")]


def test_rollback_half_done_is_finished_by_a_rerun() -> None:
    ops, traffic, registry = release(Split("4"), champion="4")
    promoted(registry, "4", "3")
    traffic.fail_writes = 1
    with pytest.raises(ReleaseError, match=r"rollback did not finish: .*Run `make rollback` again"):
        ops.rollback()
    assert registry.aliases == {CHAMPION: "3"}  # the registry moved first
    assert traffic.split == Split("4")
    again = ops.rollback()
    assert again.lines[0].startswith("registry: version 3 is already the champion (rolled back since 20")
    assert traffic.split == Split("3")
    assert ops.rollback().lines[0].startswith("nothing left to roll back")
    assert traffic.writes == [Split("3")]


def test_rollback_without_history_is_a_clear_error() -> None:
    ops, traffic, registry = release(Split("1"), champion="1")
    promoted(registry, "1", None, by="first model")
    with pytest.raises(ReleaseError, match=r"nothing to roll back: .*first model.*VERSION=n"):
        ops.rollback()
    assert traffic.writes == []


@pytest.mark.parametrize("verb", ["promote", "rollback"])
def test_version_pins_a_version_that_passed_the_gate(verb: str) -> None:
    ops, traffic, registry = release(Split("3", "4", 10), champion="3", challenger="4")
    outcome = getattr(ops, verb)(version="2")
    assert outcome.split == Split("2") == traffic.split
    assert outcome.action == verb
    assert registry.aliases == {CHAMPION: "2"}  # a pin ends the canary
    assert outcome.lines[-2] == "registry: challenger alias removed (was version 4; its canary ended)"
    assert registry.versions["2"]["champion_by"] == verb
    assert getattr(ops, verb)(version=2).lines[0] == "registry: version 2 is already the champion"


@pytest.mark.parametrize(
    ("version", "needle"),
    [
        ("5", r"version 5 never passed the gate \(the gate rejected it: ROC-AUC too low\)"),
        ("6", r"version 6 never passed the gate \(no gate tag\)"),
        ("42", "version 42 of registered model 'chicago-crime-arrest-predictor' does not exist in the MLflow "
         "registry at fake://registry"),
        ("v2", "VERSION must be a registry version number"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("verb", ["promote", "rollback"])
def test_version_refuses_what_never_passed_or_does_not_exist(verb: str, version: str, needle: str) -> None:
    ops, traffic, registry = release(Split("3"), champion="3")
    registry.versions["5"] = {"gate": "rejected", "gate_reason": "ROC-AUC too low"}
    registry.versions["6"] = {}
    with pytest.raises(ReleaseError, match=needle):
        getattr(ops, verb)(version=version)
    assert traffic.writes == []
    assert registry.aliases == {CHAMPION: "3"}


def test_status_reports_split_registry_history_and_disagreements() -> None:
    ops, _, registry = release(Split("3"), champion="4", challenger="5")
    promoted(registry, "4", "3")
    registry.model.update(
        {
            "challenger_changed_at": "2026-11-29T21:05:00+00:00",
            "split_changed_at.local": "2026-11-29T21:06:00+00:00",
        }
    )
    report = ops.status()
    json.dumps(report)
    assert report["serving"] == {
        "champion": "3",
        "challenger": None,
        "canary_percent": 0,
        "changed_at": "2026-11-29T21:06:00+00:00",
    }
    assert report["registry"] == {
        "tracking_uri": "fake://registry",
        "model": MODEL_NAME,
        "champion": "4",
        "challenger": "5",
        "previous_champion": "3",
        "champion_since": "2026-11-29T21:00:00+00:00",
        "champion_by": "promote",
        "champion_forced": None,
        "challenger_changed_at": "2026-11-29T21:05:00+00:00",
    }
    assert report["backend"] == {"where": "memory"}
    notes = report["notes"]
    assert notes[0] == "a backend note"
    assert any("differs from the registry champion 4" in n for n in notes)
    assert any("registry challenger 5 is not served yet" in n for n in notes)
    text = format_status(report).splitlines()
    assert text[0] == "Serving (local): champion 3 (100%); split changed 2026-11-29 21:06:00 UTC"
    assert "  where: memory" in text
    assert "  @champion:         4, since 2026-11-29 21:00:00 UTC (promote)" in text
    assert "  @challenger:       5, since 2026-11-29 21:05:00 UTC" in text
    assert "  previous champion: 3 (`make rollback` serves it again)" in text
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
    text = format_status(report)
    assert text.startswith("Serving (local): nothing yet")
    assert "  @champion:         -" in text


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
    assert traffic.details() == {
        "path": str(path),
        "champion_uri": str(tmp_path),
        "challenger_uri": f"models:/{MODEL_NAME}/4",
    }


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
    assert aliases.version_tags("1") is None
    assert aliases.model_tags() == {}
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
    aliases.delete(CHALLENGER)
    aliases.delete(CHALLENGER)  # not set: nothing happens
    assert aliases.get(CHALLENGER) is None
    aliases.tag_version("2", {"gate": "passed", "previous_champion": "1"})
    aliases.tag_version("2", {"previous_champion": None, "absent": None})
    assert aliases.version_tags("2") == {"gate": "passed"}
    assert aliases.version_tags("7") is None
    aliases.tag_model({"split_changed_at.local": "2026-11-29T21:00:00+00:00"})
    assert aliases.model_tags() == {"split_changed_at.local": "2026-11-29T21:00:00+00:00"}
    assert open_release("local", settings=settings).target == "local"


def test_open_release_rejects_unknown_targets(settings: Settings) -> None:
    with pytest.raises(ReleaseError, match="unknown release target"):
        open_release("moon", settings=settings)  # type: ignore[arg-type]
