"""The release operations, written once for every target: deploy, canary, promote, rollback, status.

A :class:`Release` moves two things that must agree: the registry (the ``champion`` / ``challenger`` aliases and
their history, :mod:`chicago_arrest.registry.aliases`) and the traffic split in force
(:class:`~chicago_arrest.release.base.Traffic`: the local serving state or the InferenceService). Every
operation moves both here, the registry first and traffic second, and says what it did
(:meth:`Outcome.message`). When the second step fails, :class:`~chicago_arrest.core.errors.ReleaseError`
names what moved and what did not; running the same operation again finishes it, and running it after it has
finished changes nothing.

* ``promote`` makes the challenger the champion (100 %) and removes the challenger alias;
  ``promote(version=n)`` pins any version that passed the gate. It first prints how the version did against
  the champion on labelled served traffic (the comparison ``make monitor SOURCE=serving`` recorded on it,
  :mod:`chicago_arrest.monitoring.realised`) and refuses, with the numbers, a version that is measurably worse;
  ``force=True`` (``FORCE=1``) promotes it anyway and records what was overridden on the version.
* ``rollback`` stops a canary (0 % to the challenger, which stays); without a challenger it undoes the last
  promotion: the previous champion (recorded on the champion's version) serves again. ``rollback(version=n)``
  pins like ``promote(version=n)``.

``open_release("local")`` or ``open_release("cluster", context=...)`` builds one from the settings.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.core.names import CHALLENGER, CHAMPION, MODEL_NAME, SERVED_COMPARISON_TAG
from chicago_arrest.core.settings import Settings, get_settings
from chicago_arrest.registry.aliases import (
    Aliases,
    MlflowAliases,
    champion_record,
    check_pinnable,
    make_champion,
    now,
    record_split,
    registry_split,
    set_challenger,
    split_changed_at,
)
from chicago_arrest.registry.state import Split, Target, check_percent
from chicago_arrest.release.base import Traffic

__all__ = ["MlflowAliases", "Outcome", "Release", "format_status", "open_release", "registry_split"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """What an operation did.

    Attributes:
        target: ``local`` or ``cluster``.
        action: ``deploy``, ``canary``, ``promote`` or ``rollback``.
        split: The split in force afterwards.
        lines: One line per thing done (or found already done), registry first.
    """

    target: Target
    action: str
    split: Split
    lines: tuple[str, ...]

    def message(self) -> str:
        """The lines, for a terminal or a log."""
        return "\n".join(self.lines)


def _when(stamp: str | None) -> str:
    """``2026-11-29 21:03:00 UTC`` from an ISO-8601 tag (the raw text if it does not parse)."""
    if not stamp:
        return "not recorded"
    try:
        return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return stamp


class Release:
    """Release operations over one traffic backend and the registry.

    Args:
        traffic: Where requests go (local serving state or InferenceService).
        aliases: The registry: aliases and history tags.
    """

    def __init__(self, traffic: Traffic, aliases: Aliases) -> None:
        self.traffic = traffic
        self.aliases = aliases

    @property
    def target(self) -> Target:
        """``local`` or ``cluster``."""
        return self.traffic.target

    def _exclusive(self) -> contextlib.AbstractContextManager[Any]:
        """The backend's lock for a whole read-modify-write, if it has one (the local file does)."""
        exclusive = getattr(self.traffic, "exclusive", None)
        return exclusive() if callable(exclusive) else contextlib.nullcontext()

    def _served(self) -> tuple[Split | None, Split]:
        """The split in force (``None`` when nothing is served yet) and the one to start from."""
        served = self.traffic.read()
        return served, served or registry_split(self.aliases, f"nothing is served yet ({self.target})")

    def current(self) -> Split:
        """The split in force; when nothing is served yet, the one the registry aliases name."""
        return self._served()[1]

    def _rerun(self, action: str, split: Split | None = None) -> str:
        """The command that repeats ``action`` (and so finishes it)."""
        where = "" if self.target == "local" else f" TARGET={self.target}"
        if action == "deploy":
            return "the deploy step (`make pipeline-run`)"
        extra = f" PERCENT={split.canary_percent}" if action == "canary" and split else ""
        if action.endswith(")"):  # "promote (VERSION=3)"
            action, extra = action.split(" ", 1)[0], " " + action.split("(", 1)[1].rstrip(")")
        return f"`make {action}{extra}{where}`"

    def _registry(self, action: str, done: list[str], step: Callable[[], T]) -> T:
        """Run a registry step (always before traffic moves); on failure say what already moved."""
        try:
            return step()
        except Exception as exc:
            moved = f"; already done: {'; '.join(done)}" if done else ""
            raise ReleaseError(
                f"{action.split(' ', 1)[0]} stopped: the registry at {self.aliases.where()} refused a change "
                f"({type(exc).__name__}: {exc}); {self.target} serving was not changed{moved}. "
                f"Run {self._rerun(action)} again once the registry is reachable"
            ) from exc

    def _write(self, action: str, split: Split, done: list[str], served: Split | None) -> Outcome:
        """Move traffic, the last step of every operation; on failure say what already moved.

        A changed split is recorded in the registry (``split_changed_at.<target>``); a failure to record it
        is a line of the outcome, not a failure of the operation.
        """
        try:
            done.append(self.traffic.write(split))
        except Exception as exc:
            moved = f"Already done: {'; '.join(done)}. " if done else "The registry was not changed. "
            verb = action.split(" ", 1)[0]
            raise ReleaseError(
                f"{verb} did not finish: {self.target} serving was not changed to {split.describe()} "
                f"({type(exc).__name__}: {exc}). {moved}Run {self._rerun(action, split)} again to finish it."
            ) from exc
        if served != split:
            try:
                record_split(self.aliases, self.target)
            except Exception as exc:  # the split moved; only its time is not recorded
                done.append(
                    f"registry: could not record when the split changed ({type(exc).__name__}: {exc})"
                )
        outcome = Outcome(self.target, action.split(" ", 1)[0], split, tuple(done))
        log.info("%s (%s): %s", action, self.target, " | ".join(outcome.lines))
        return outcome

    def deploy(self, champion: str, challenger: str | None = None, canary_percent: int = 0) -> Outcome:
        """Serve ``champion`` and, under canary, ``challenger`` (the pipeline's deploy step).

        The registry aliases are pointed at the same versions first (after the gate they already are): the
        challenger alias names ``challenger``, or is removed when there is none.

        Raises:
            ReleaseError: On a percent out of range, a canary without a challenger, or a failed step.
        """
        split = Split(champion, challenger, canary_percent)
        with self._exclusive():
            served = self.traffic.read()
            done: list[str] = []
            before = self._registry(
                "deploy", done, lambda: make_champion(self.aliases, split.champion, "deploy")
            )
            if before != split.champion:
                done.append(
                    f"registry: {CHAMPION} alias -> version {split.champion} (was {before or 'not set'})"
                )
            before = self._registry("deploy", done, lambda: set_challenger(self.aliases, split.challenger))
            if before != split.challenger:
                done.append(self._challenger_line(before, split.challenger))
            return self._write("deploy", split, done, served)

    @staticmethod
    def _challenger_line(before: str | None, after: str | None, why: str = "") -> str:
        if after is None:
            return f"registry: {CHALLENGER} alias removed (was version {before}{why})"
        return f"registry: {CHALLENGER} alias -> version {after} (was {before or 'not set'})"

    def canary(self, percent: int) -> Outcome:
        """Send ``percent`` % of requests to the challenger (0 … 100).

        Without a challenger in serving, the registry's ``challenger`` alias becomes the challenger. The
        aliases do not move.

        Raises:
            ReleaseError: On a percent out of range, or when there is no challenger at all.
        """
        percent = check_percent(percent)
        with self._exclusive():
            served, split = self._served()
            challenger = split.challenger
            if challenger is None and percent > 0:
                challenger = self.aliases.get(CHALLENGER)
                if challenger is None or challenger == split.champion:
                    raise ReleaseError(
                        f"there is no challenger to send traffic to (the registry's {CHALLENGER!r} alias is "
                        f"{challenger or 'not set'}, champion is {split.champion}): train one with "
                        "`make pipeline-run`"
                    )
            return self._write("canary", Split(split.champion, challenger, percent), [], served)

    def promote(self, version: str | int | None = None, *, force: bool = False) -> Outcome:
        """Make the challenger under canary (or the pinned ``version``) the champion, serving 100 %.

        Registry first: the champion's history tags and alias, then the challenger alias is removed; traffic
        last. Without ``version`` the served challenger is promoted (what was tried under canary), else the
        registry's challenger. After a finished promotion it says there is nothing left to do; after a failure
        half-way, running it again finishes the job. The outcome starts with the served comparison
        (:meth:`served_comparison`).

        Args:
            version: Pin this version instead (``make promote VERSION=n``); it must have passed the gate.
            force: Promote a version that is measurably worse than the champion on labelled served traffic
                (recorded on it as ``promote_forced``).

        Raises:
            ReleaseError: When there is nothing to promote, the version cannot be pinned, it is measurably
                worse on served traffic (without ``force``), or a step failed.
        """
        with self._exclusive():
            if version is not None:
                pinned = check_pinnable(self.aliases, version)
                return self._promote(pinned, f"promote (VERSION={pinned})", force)
            served, split = self._served()
            champion = self.aliases.get(CHAMPION)
            target = split.challenger or self.aliases.get(CHALLENGER)
            if target is None:
                record = champion_record(self.aliases, champion) if champion else None
                if record is None or record.by != "promote":
                    raise ReleaseError(
                        f"nothing to promote: no challenger is served and the registry's {CHALLENGER!r} alias "
                        f"is not set (champion {champion or 'not set'}); `make promote VERSION=n` pins a "
                        "version that passed the gate"
                    )
                if served == Split(record.version):
                    line = (
                        f"nothing left to do: version {record.version} was promoted at {_when(record.since)} "
                        "and serves all requests"
                    )
                    return Outcome(self.target, "promote", Split(record.version), (line,))
                target = record.version  # promoted in the registry; traffic did not follow
            return self._promote(target, "promote", force)

    def served_comparison(self, version: str | None) -> dict[str, Any] | None:
        """How ``version`` did against the current champion on served traffic (recorded by the monitor), or None.

        Only a comparison against the champion in force counts (an older one judged another champion).
        """
        from chicago_arrest.monitoring.realised import from_tag

        champion = self.aliases.get(CHAMPION)
        if version is None or version == champion:
            return None
        comparison = from_tag((self.aliases.version_tags(version) or {}).get(SERVED_COMPARISON_TAG))
        if comparison is None or str(comparison["champion"].get("version")) != str(champion):
            return None
        return comparison

    def _promote(self, target: str, action: str, force: bool) -> Outcome:
        """Show the served comparison; refuse a measurably worse version unless forced; then promote."""
        from chicago_arrest.monitoring.realised import measurably_worse
        from chicago_arrest.reports.monitoring import comparison_lines

        champion = self.aliases.get(CHAMPION)
        if target == champion:
            return self._make_champion(target, "promote", action)
        comparison = self.served_comparison(target)
        if comparison is None:
            lines = [
                f"served traffic: no comparison of version {target} with champion {champion} recorded "
                "(`make monitor SOURCE=serving` measures both on the requests each served)"
            ]
            return self._make_champion(target, "promote", action, first_lines=lines)
        lines = [
            f"served traffic, version {target} against champion {champion}: {comparison_lines(comparison)[0]}"
        ]
        lines += comparison_lines(comparison)[1:]
        forced = None
        if measurably_worse(comparison):
            if not force:
                raise ReleaseError(
                    "promote refused: "
                    + "\n".join(lines)
                    + f"\nnothing was changed. `make promote FORCE=1` promotes version {target} anyway (recorded "
                    "on it as promote_forced); `make rollback` stops the canary"
                )
            diff = comparison["difference"]
            forced = (
                f"FORCE=1 at {now()} over the served comparison of {comparison.get('measured_at')}: ROC-AUC "
                f"{diff['roc_auc']:+.4f} ± {diff['roc_auc_se']:.4f} against champion {champion} "
                f"(monitoring run {comparison.get('monitoring_run', '-')})"
            )
            lines.append(f"forced: version {target} is promoted although measurably worse (recorded on it)")
        return self._make_champion(target, "promote", action, first_lines=lines, forced=forced)

    def rollback(self, version: str | int | None = None) -> Outcome:
        """Undo the last step: a canary (0 % to the challenger), else the last promotion.

        * A challenger under canary (the registry's, or one served next to the registry champion): every
          request goes to the champion; the challenger stays, so ``make canary`` can restart it and
          ``make promote`` can still promote it.
        * No challenger: the previous champion (recorded when the champion was promoted) becomes champion
          again, alias first, then 100 % of traffic. Once rolled back, running it again changes nothing.

        Args:
            version: Pin this version instead (``make rollback VERSION=n``); it must have passed the gate.

        Raises:
            ReleaseError: When there is nothing to roll back, the version cannot be pinned, or a step failed.
        """
        with self._exclusive():
            if version is not None:
                pinned = check_pinnable(self.aliases, version)
                return self._make_champion(pinned, "rollback", f"rollback (VERSION={pinned})")
            served, split = self._served()
            champion = self.aliases.get(CHAMPION) or split.champion
            challenger = self.aliases.get(CHALLENGER)
            if split.challenger is not None and split.champion == champion:
                challenger = split.challenger  # the served one: stopping it needs no new revision
            if challenger is not None and challenger != champion:
                stopped = Split(champion, challenger, 0)
                line = (
                    f"canary stopped: every request goes to champion {champion}; challenger {challenger} stays "
                    "at 0% (`make canary` restarts it, `make promote` promotes it)"
                )
                return self._write("rollback", stopped, [line], served)
            record = champion_record(self.aliases, champion)
            if record.by == "rollback":
                line = (
                    f"nothing left to roll back: version {champion} is champion again since "
                    f"{_when(record.since)} (rolled back from {record.previous or 'an earlier champion'})"
                )
                if served == Split(champion):
                    return Outcome(self.target, "rollback", Split(champion), (line,))
                # the registry was rolled back, traffic did not follow: finish it
                line = f"registry: version {champion} is already the champion (rolled back since {_when(record.since)})"
                return self._write("rollback", Split(champion), [line], served)
            if record.previous is None:
                raise ReleaseError(
                    f"nothing to roll back: no canary is under way and champion {champion} has no previous "
                    f"champion recorded (champion since {_when(record.since)}: {record.by or 'not recorded'}); "
                    "`make rollback VERSION=n` pins a version that passed the gate"
                )
            undone = f", undoing the {record.by or 'change'} of {champion} at {_when(record.since)}"
            return self._make_champion(record.previous, "rollback", "rollback", undone)

    def _make_champion(
        self,
        version: str,
        by: str,
        action: str,
        undone: str = "",
        *,
        first_lines: list[str] | None = None,
        forced: str | None = None,
    ) -> Outcome:
        """Registry (champion tags + alias, then the challenger alias removed), then 100 % to ``version``.

        ``first_lines`` go first in the outcome (what was checked); ``forced`` is recorded on the new champion.
        """
        served = self.traffic.read()
        done: list[str] = []
        before = self._registry(action, done, lambda: make_champion(self.aliases, version, by, forced))
        if before == version:
            done.append(f"registry: version {version} is already the champion")
        else:
            previous = f"; version {before} is recorded as the previous champion" if before else ""
            done.append(
                f"registry: {CHAMPION} alias -> version {version} (was {before or 'not set'}){undone}{previous}"
            )
        old = self._registry(action, done, lambda: set_challenger(self.aliases, None))
        if old == version:
            done.append(f"registry: {CHALLENGER} alias removed (version {version} is the champion now)")
        elif old is not None:
            done.append(f"registry: {CHALLENGER} alias removed (was version {old}; its canary ended)")
        outcome = self._write(action, Split(version), done, served)
        if not first_lines:
            return outcome
        return Outcome(outcome.target, outcome.action, outcome.split, (*first_lines, *outcome.lines))

    def status(self) -> dict[str, Any]:
        """The split in force, the backend's details, the registry aliases and their history, with notes.

        Never raises for an unreadable serving state or registry: those become notes.

        Returns:
            ``{"target", "serving": {champion, challenger, canary_percent, changed_at} | None, "backend": {...},
            "registry": {"tracking_uri", "model", "champion", "challenger", "previous_champion",
            "champion_since", "champion_by", "challenger_changed_at"}, "notes": [...]}``.
        """
        notes: list[str] = []
        split: Split | None = None
        try:
            split = self.traffic.read()
        except Exception as exc:  # a broken file or an unreachable cluster must not break `make status`
            notes.append(f"serving not readable: {exc}")
        try:
            details = dict(self.traffic.details())
        except Exception as exc:
            details = {}
            notes.append(f"{self.target} details not readable: {type(exc).__name__}: {exc}")
        notes.extend(str(note) for note in details.pop("notes", ()) if str(note) not in notes)
        registry: dict[str, Any] = {"tracking_uri": self.aliases.where(), "model": MODEL_NAME}
        registry.update(dict.fromkeys(("champion", "challenger", "previous_champion", "champion_since")))
        registry.update(champion_by=None, challenger_changed_at=None, champion_forced=None)
        split_at = None
        served_comparison = None
        try:
            champion, challenger = self.aliases.get(CHAMPION), self.aliases.get(CHALLENGER)
            tags = self.aliases.model_tags()
            record = champion_record(self.aliases, champion) if champion else None
            registry.update(champion=champion, challenger=challenger)
            registry["challenger_changed_at"] = tags.get("challenger_changed_at")
            split_at = split_changed_at(tags, self.target)
            if record is not None:
                registry.update(
                    previous_champion=record.previous,
                    champion_since=record.since,
                    champion_by=record.by,
                    champion_forced=record.forced,
                )
            served_comparison = self.served_comparison((split.challenger if split else None) or challenger)
        except Exception as exc:  # an unreachable tracking server must not break `make status`
            notes.append(f"registry not readable: {type(exc).__name__}: {exc}")
        if split is not None:
            notes.extend(_disagreements(split, registry["champion"], registry["challenger"]))
        return {
            "target": self.target,
            "serving": None
            if split is None
            else {
                "champion": split.champion,
                "challenger": split.challenger,
                "canary_percent": split.canary_percent,
                "changed_at": split_at,
            },
            "backend": details,
            "registry": registry,
            "served_comparison": served_comparison,
            "notes": notes,
        }


def _disagreements(split: Split, champion: str | None, challenger: str | None) -> list[str]:
    """Notes where the split in force and the registry aliases disagree, with the command that fixes it."""
    notes = []
    if champion is not None and split.champion != champion:
        fix = (
            "a promotion did not finish: `make promote` finishes it"
            if split.challenger == champion
            else "a change did not finish: re-run the last `make promote` or `make rollback`"
        )
        notes.append(
            f"served champion {split.champion} differs from the registry champion {champion} ({fix})"
        )
    if split.challenger is None and challenger not in (None, champion, split.champion):
        notes.append(
            f"registry challenger {challenger} is not served yet: `make canary PERCENT=10` starts it"
        )
    if split.challenger is not None and split.challenger != champion and challenger != split.challenger:
        notes.append(
            f"served challenger {split.challenger} differs from the registry challenger "
            f"{challenger or '(not set)'}: `make promote` promotes the served one, `make rollback` stops it"
        )
    return notes


def open_release(
    target: Target,
    *,
    settings: Settings | None = None,
    context: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    record: Any = None,
) -> Release:
    """The release operations of ``target`` with the registry of ``settings``.

    Args:
        target: ``local`` (the serving state of ``make serve``) or ``cluster`` (the InferenceService).
        settings: Library settings (default: from the environment).
        context: kubeconfig context (cluster only; default: the current one, or in-cluster config in a pod).
        namespace: Namespace of the InferenceService (cluster only).
        name: InferenceService name (cluster only).
        record: The :class:`~chicago_arrest.core.targets.ClusterRecord` of ``make kind-up`` (cluster only, from
            the host: MinIO's host address for publishing, the image as a fallback).

    Raises:
        ReleaseError: On an unknown target.
    """
    settings = settings or get_settings()
    aliases = MlflowAliases.from_settings(settings)
    if target == "local":
        from chicago_arrest.release.local import LocalTraffic

        return Release(LocalTraffic(settings.serving_config_path), aliases)
    if target == "cluster":
        from chicago_arrest.release.kserve import KServeTraffic

        traffic = KServeTraffic.from_settings(
            settings, context=context, namespace=namespace, name=name, record=record
        )
        return Release(traffic, aliases)
    raise ReleaseError(f"unknown release target {target!r}: use 'local' or 'cluster'")


def _render(value: Any, indent: str) -> list[str]:
    """Backend details as indented ``key: value`` lines (lists of objects one JSON line each)."""
    lines = []
    for key, item in value.items():
        if isinstance(item, dict) and item:
            lines.append(f"{indent}{key}:")
            lines.extend(_render(item, indent + "  "))
        elif isinstance(item, list) and item:
            lines.append(f"{indent}{key}:")
            lines.extend(f"{indent}  - {json.dumps(x) if isinstance(x, dict | list) else x}" for x in item)
        else:
            lines.append(f"{indent}{key}: {'-' if item in (None, {}, []) else item}")
    return lines


def format_status(report: dict[str, Any]) -> str:
    """Render :meth:`Release.status` as text for a terminal: the split, the aliases and when each changed."""
    serving = report.get("serving")
    if serving is None:
        lines = [f"Serving ({report['target']}): nothing yet"]
    else:
        split = Split(serving["champion"], serving["challenger"], serving["canary_percent"])
        lines = [
            f"Serving ({report['target']}): {split.describe()}; split changed {_when(serving.get('changed_at'))}"
        ]
    lines.extend(_render(report.get("backend") or {}, "  "))
    registry = report["registry"]
    lines.append(f"MLflow registry {registry['tracking_uri']} ({registry['model']})")
    champion, challenger = registry.get("champion"), registry.get("challenger")
    if champion:
        by = f" ({registry['champion_by']})" if registry.get("champion_by") else ""
        lines.append(f"  @{CHAMPION}:         {champion}, since {_when(registry.get('champion_since'))}{by}")
    else:
        lines.append(f"  @{CHAMPION}:         -")
    changed = registry.get("challenger_changed_at")
    if challenger:
        lines.append(f"  @{CHALLENGER}:       {challenger}, since {_when(changed)}")
    else:
        lines.append(f"  @{CHALLENGER}:       -" + (f" (removed {_when(changed)})" if changed else ""))
    previous = registry.get("previous_champion")
    if previous and registry.get("champion_by") == "rollback":
        hint = f" (rolled back from it; `make promote VERSION={previous}` serves it again)"
    elif previous:
        hint = " (`make rollback` serves it again)"
    else:
        hint = ""
    lines.append(f"  previous champion: {previous or '-'}{hint}")
    if registry.get("champion_forced"):
        lines.append(f"  champion forced:   {registry['champion_forced']}")
    comparison = report.get("served_comparison")
    if comparison:
        from chicago_arrest.reports.monitoring import comparison_lines

        first, *rest = comparison_lines(comparison)
        lines.append(f"Served traffic, challenger against champion: {first}")
        lines.extend(rest)
    lines.extend(f"Note: {note}" for note in report["notes"])
    return "\n".join(lines)
