"""The operator's verbs as an operator runs them, on a real (SQLite) MLflow registry, for both targets.

Each test runs the gate's registry writes (:func:`chicago_arrest.release.gate.record_gate`) and the real deploy step
for a few registered versions, then canary / promote / rollback / status. ``local`` is the real LocalTraffic
(the serving state file); ``cluster`` is the real KServeTraffic against a recording CustomObjectsApi that rolls
each applied InferenceService out as KServe would (a new Knative revision when the model changes).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from chicago_arrest.core import names
from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.core.names import CHALLENGER, CHAMPION, MODEL_NAME
from chicago_arrest.core.settings import Settings
from chicago_arrest.registry.aliases import MlflowAliases
from chicago_arrest.registry.models import configure_mlflow
from chicago_arrest.registry.state import Split, load_state
from chicago_arrest.release import ops as ops_module
from chicago_arrest.release.gate import GateDecision, record_gate
from chicago_arrest.release.kserve import KServeTraffic
from chicago_arrest.release.local import LocalTraffic
from chicago_arrest.release.ops import Release, format_status
from chicago_arrest.steps.release import deploy_step
from tests.code.test_kserve import Publisher, RecordingApi
from tests.conftest import REPO_ROOT

METRICS = {"roc_auc": 0.9, "ece": 0.02, "pr_auc": 0.7, "brier": 0.1}


class KServeRollout:
    """Stands in for KServe: after each apply, the status shows the revisions and their traffic."""

    def __init__(self, api: RecordingApi) -> None:
        self.api = api
        self.revisions: list[tuple[str, str]] = []  # (revision, model version), oldest first
        self.rolled_out: str | None = None

    def __call__(self) -> None:
        predictor = self.api.isvc["spec"]["predictor"]
        env = {e["name"]: e["value"] for e in predictor["containers"][0]["env"]}
        version, percent = env[names.MODEL_VERSION_ENV], predictor.get("canaryTrafficPercent")
        if not self.revisions or self.revisions[-1][1] != version:  # a new model: a new revision
            self.revisions.append((f"{names.ISVC_NAME}-predictor-{len(self.revisions) + 1:05d}", version))
        latest = self.revisions[-1][0]
        if percent is None or self.rolled_out is None:
            self.api.roll_out(latest, None, None)
            self.rolled_out = latest
        else:
            self.api.roll_out(latest, self.rolled_out, percent)


class ClusterTraffic(KServeTraffic):
    """The real KServeTraffic; every successful write is followed by KServe's roll-out."""

    def __init__(self, api: RecordingApi, publish: Publisher) -> None:
        super().__init__(api, publish, where="context test")
        self.rollout = KServeRollout(api)

    def write(self, split: Split) -> str:
        line = super().write(split)
        self.rollout()
        return line


@dataclass
class World:
    """One registry, one target, and the gate + deploy step of a pipeline run."""

    kind: str
    settings: Settings
    client: MlflowClient
    release: Release
    api: RecordingApi | None = None

    def run(self, passed: bool = True, promoted: bool = False, canary_percent: int = 10) -> str:
        """A pipeline run: register a version, the gate's registry writes, the real deploy step."""
        if not self.client.search_registered_models(f"name='{MODEL_NAME}'"):
            self.client.create_registered_model(MODEL_NAME)
        version = str(self.client.create_model_version(MODEL_NAME, source="s3://mlflow/model").version)
        self.client.set_model_version_tag(MODEL_NAME, version, "gate", "pending")
        champion = MlflowAliases.of(self.client).get(CHAMPION)
        reason = "first model: no champion yet" if champion is None else "better" if passed else "worse"
        champ = METRICS if champion else {}
        decision = GateDecision(version, champion, passed, promoted, reason, METRICS, champ)
        record_gate(self.client, decision)
        deploy_step(
            decision.as_dict(),
            {},
            {},
            canary_percent=canary_percent,
            target=self.kind,
            settings=self.settings,
        )
        return version

    def served(self) -> Split | None:
        return self.release.traffic.read()

    def aliases(self) -> tuple[str | None, str | None]:
        registry = MlflowAliases.of(self.client)
        return registry.get(CHAMPION), registry.get(CHALLENGER)

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(MODEL_NAME, version).tags)


@pytest.fixture(params=["local", "cluster"])
def world(request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> World:
    client = configure_mlflow(settings)
    aliases = MlflowAliases(settings.resolved_tracking_uri())
    api = None
    if request.param == "local":
        traffic: Any = LocalTraffic(settings.serving_config_path)
    else:
        api = RecordingApi()
        traffic = ClusterTraffic(api, Publisher())
    release = Release(traffic, aliases)
    monkeypatch.setattr(ops_module, "open_release", lambda *_, **__: release)  # the deploy step's
    return World(request.param, settings, client, release, api)


def applied_versions(world: World) -> list[tuple[str, str | None, int | None]]:
    """Every write of the cluster target: ``("apply", model version, canaryTrafficPercent)`` of an applied
    InferenceService, ``("patch", None, canaryTrafficPercent)`` of a patch of the percentage alone."""
    assert world.api is not None
    applies, patches = iter(world.api.applied), iter(world.api.patched)
    out: list[tuple[str, str | None, int | None]] = []
    for kind in world.api.writes:
        if kind == "patch":
            out.append(("patch", None, next(patches)["spec"]["predictor"]["canaryTrafficPercent"]))
            continue
        predictor = next(applies)["spec"]["predictor"]
        env = {e["name"]: e["value"] for e in predictor["containers"][0]["env"]}
        out.append(("apply", env[names.MODEL_VERSION_ENV], predictor.get("canaryTrafficPercent")))
    return out


def test_first_run_makes_a_champion_and_no_challenger(world: World) -> None:
    first = world.run(promoted=True)
    assert world.aliases() == (first, None)
    assert world.served() == Split(first)
    tags = world.tags(first)
    assert (tags["gate"], tags["champion_by"]) == ("passed", "first model")
    assert "previous_champion" not in tags
    report = world.release.status()
    assert report["registry"]["challenger"] is None
    assert report["registry"]["previous_champion"] is None
    assert report["serving"]["changed_at"] is not None
    assert report["notes"] == []
    text = format_status(report)
    assert f"  @champion:         {first}, since " in text
    assert "(first model)" in text
    assert "  @challenger:       -\n" in text
    assert "  previous champion: -" in text
    with pytest.raises(ReleaseError, match="nothing to promote"):
        world.release.promote()
    with pytest.raises(ReleaseError, match="nothing to roll back"):
        world.release.rollback()
    with pytest.raises(ReleaseError, match="no challenger"):
        world.release.canary(10)


def test_canary_promote_rollback(world: World) -> None:
    first = world.run(promoted=True)
    second = world.run(passed=True)  # passes, goes out as a canary
    assert world.aliases() == (first, second)
    assert world.served() == Split(first, second, 10)
    status = world.release.status()
    assert status["registry"]["challenger_changed_at"] is not None
    assert status["notes"] == []

    assert world.release.canary(50).split == Split(first, second, 50)
    promoted = world.release.promote()
    assert world.aliases() == (second, None)  # the challenger alias goes with the promotion
    assert world.served() == Split(second)
    assert promoted.lines[0].startswith(f"served traffic: no comparison of version {second} with champion")
    assert promoted.lines[1:3] == (
        f"registry: champion alias -> version {second} (was {first}); version {first} is recorded as the "
        "previous champion",
        f"registry: challenger alias removed (version {second} is the champion now)",
    )
    assert world.tags(second)["previous_champion"] == first
    assert world.release.promote().lines[0].startswith(f"nothing left to do: version {second} was promoted")
    assert f"  previous champion: {first} (`make rollback` serves it again)" in format_status(
        world.release.status()
    )

    undone = world.release.rollback()
    assert undone.lines[0].startswith(f"registry: champion alias -> version {first} (was {second}), undoing")
    assert world.aliases() == (first, None)
    assert world.served() == Split(first)
    again = world.release.rollback()
    assert again.lines[0].startswith(f"nothing left to roll back: version {first} is champion again")
    assert world.served() == Split(first)
    report = world.release.status()
    assert (report["registry"]["champion_by"], report["registry"]["previous_champion"]) == (
        "rollback",
        second,
    )
    assert report["notes"] == []
    if world.api is not None:
        # canary 10, widen 50, promote (same model: the percentage alone, no new revision), then a NEW revision
        # with version 1
        assert applied_versions(world) == [
            ("apply", first, None),
            ("apply", second, 10),
            ("patch", None, 50),
            ("patch", None, None),
            ("apply", first, None),
        ]
        cluster = world.release.traffic
        assert isinstance(cluster, ClusterTraffic)
        assert [version for _, version in cluster.rollout.revisions] == [first, second, first]
        assert cluster.publish.versions == [first, second, first]  # type: ignore[attr-defined]
        assert [(r["percent"], r["model_version"]) for r in cluster.details()["revisions"]] == [(100, first)]
    else:
        assert load_state(world.settings.serving_config_path).split() == Split(first)


def test_rollback_during_a_canary_stops_it_and_keeps_the_challenger(world: World) -> None:
    first = world.run(promoted=True)
    second = world.run(passed=True)
    stopped = world.release.rollback()
    assert stopped.split == Split(first, second, 0)
    assert world.aliases() == (first, second)
    assert world.release.rollback().split == Split(first, second, 0)  # idempotent
    assert world.release.canary(20).split == Split(first, second, 20)


def test_a_rejected_version_moves_no_alias_and_cannot_be_pinned(world: World) -> None:
    first = world.run(promoted=True)
    rejected = world.run(passed=False)
    assert world.aliases() == (first, None)
    assert world.served() == Split(first)
    assert world.tags(rejected)["gate"] == "rejected"
    description = world.client.get_model_version(MODEL_NAME, rejected).description
    assert description.endswith(f"Gate: rejected against champion {first}: worse.")
    for verb in (world.release.promote, world.release.rollback):
        with pytest.raises(
            ReleaseError, match=f"version {rejected} never passed the gate \\(the gate rejected"
        ):
            verb(version=rejected)
        with pytest.raises(ReleaseError, match=r"version 99 of registered model .* does not exist"):
            verb(version=99)
    assert world.aliases() == (first, None)
    assert world.served() == Split(first)


def test_version_pins_any_version_that_passed(world: World) -> None:
    first = world.run(promoted=True)
    second = world.run(passed=True, promoted=True, canary_percent=0)  # promoted directly by the gate
    third = world.run(passed=True)  # under canary
    assert world.aliases() == (second, third)
    assert world.tags(second)["champion_by"] == "gate"

    pinned = world.release.promote(version=first)
    assert pinned.split == Split(first)
    assert pinned.lines[1].startswith(f"registry: champion alias -> version {first} (was {second})")
    assert world.aliases() == (first, None)  # a pin ends the canary
    assert world.served() == Split(first)
    assert world.tags(first)["previous_champion"] == second
    assert world.release.rollback().split == Split(second)  # undoes the pin

    assert world.release.rollback(version=third).split == Split(third)
    assert world.aliases() == (third, None)
    assert world.release.rollback().lines[0].startswith("nothing left to roll back")
    assert (
        world.release.rollback(version=third).lines[0] == f"registry: version {third} is already the champion"
    )


def test_promote_shows_the_served_comparison_and_refuses_a_measurably_worse_challenger(world: World) -> None:
    """Issue 26: the comparison ``make monitor SOURCE=serving`` records on the challenger decides the promote."""
    from chicago_arrest.core.names import PROMOTE_FORCED_TAG, SERVED_COMPARISON_TAG
    from chicago_arrest.monitoring import realised
    from chicago_arrest.reports.format import metric
    from tests.code.test_served_traffic import canary

    first = world.run(promoted=True)
    second = world.run(passed=True)
    served = canary(4000, worse_by=0.8)
    served["model_version"] = served["model_version"].map({"1": first, "2": second})
    worse = realised.compare(served, first, second, min_labelled=100)
    assert worse is not None
    worse.update(measured_at="2026-12-01T10:00:00+00:00", monitoring_run="r1")
    world.client.set_model_version_tag(MODEL_NAME, second, SERVED_COMPARISON_TAG, realised.to_tag(worse))
    with pytest.raises(ReleaseError) as refused:
        world.release.promote()
    message = str(refused.value)
    assert message.startswith(f"promote refused: served traffic, version {second} against champion {first}")
    assert "verdict: the challenger is measurably worse" in message
    assert f"ROC-AUC {metric(worse['challenger']['roc_auc'])}" in message
    assert "FORCE=1" in message
    assert world.aliases() == (first, second)  # nothing moved
    assert world.served() == Split(first, second, 10)
    status = format_status(world.release.status())
    assert "Served traffic, challenger against champion:" in status
    assert "measurably worse" in status

    forced = world.release.promote(force=True)
    assert world.served() == Split(second)
    assert any(line.startswith("forced: version") for line in forced.lines)
    assert world.aliases() == (second, None)
    record = world.tags(second)[PROMOTE_FORCED_TAG]
    assert record.startswith("FORCE=1 at ")
    assert f"against champion {first}" in record
    assert "champion forced:" in format_status(world.release.status())


def test_a_promote_interrupted_half_way_is_finished_by_a_rerun(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = world.run(promoted=True)
    second = world.run(passed=True)
    from chicago_arrest.release import local

    broken = [True]
    save_state = local.save_state

    def full_disk(*args: Any) -> None:
        if broken[0]:
            raise OSError("No space left on device")
        save_state(*args)

    monkeypatch.setattr(local, "save_state", full_disk)
    if world.api is not None:
        world.api.errors["apply"] = world.api.errors["patch"] = 503
    with pytest.raises(
        ReleaseError, match=r"promote did not finish: .*Run `make promote( TARGET=cluster)?` again"
    ):
        world.release.promote()
    assert world.aliases() == (second, None)  # the registry moved first
    assert world.served() == Split(first, second, 10)  # traffic did not
    notes = world.release.status()["notes"]
    assert any("a promotion did not finish: `make promote` finishes it" in n for n in notes), notes

    broken[0] = False
    if world.api is not None:
        world.api.errors.clear()
    again = world.release.promote()
    assert again.lines[0] == f"registry: version {second} is already the champion"
    assert world.served() == Split(second)
    assert world.tags(second)["previous_champion"] == first  # the history survived the interruption
    assert world.release.status()["notes"] == []
    assert world.release.rollback().split == Split(first)


def test_make_passes_version_only_when_given() -> None:
    def dry(*args: str) -> str:
        done = subprocess.run(
            ["make", "-n", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
        )
        return done.stdout

    assert "serving promote" in dry("promote")
    assert "--version" not in dry("promote")
    assert "--version '3'" in dry("promote", "VERSION=3")
    assert "--version '2'" in dry("rollback", "VERSION=2")
    assert "--version" not in dry("canary", "VERSION=3")
