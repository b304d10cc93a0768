"""The champion/challenger gate: the promotion rule, and the decision written into the registry.

The evaluate step scores the new version on the test months; :func:`gate` re-scores the champion on the same
months and applies :func:`decide` (a ROC-AUC margin on top of the bootstrap noise, calibration in every test
month and, optionally, in the worst area). :func:`record_gate` writes the decision (tags, description, run
metrics) and moves the aliases through :mod:`chicago_arrest.registry.aliases`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from chicago_arrest.core.names import CHAMPION, GATE_TAG, MODEL_NAME
from chicago_arrest.registry.aliases import MlflowAliases, make_champion, set_challenger
from chicago_arrest.registry.models import alias_version, load_arrest_model

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)


@dataclass
class GateDecision:
    """Outcome of comparing a challenger with the champion.

    Attributes:
        challenger_version: Registry version of the challenger.
        champion_version: Version of the champion compared against (``None`` for the first model).
        passed: Whether the challenger qualifies (first model, or better by the margin within the ECE bound).
        promoted: Whether the ``champion`` alias now points to the challenger.
        reason: Human-readable reason.
        challenger: Challenger metrics on the evaluation window.
        champion: Champion metrics on the same window (empty for the first model).
    """

    challenger_version: str
    champion_version: str | None
    passed: bool
    promoted: bool
    reason: str
    challenger: dict[str, float]
    champion: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)


def decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    margin: float,
    max_ece: float,
    noise: float = 1.0,
    max_area_ece: float = 0.0,
) -> tuple[bool, str]:
    """The promotion rule, on metrics alone.

    The challenger must beat the champion's ROC-AUC by ``margin`` plus ``noise`` bootstrap standard errors of
    its own test ROC-AUC (``roc_auc_se``; 0 when absent), and its ECE must be within ``max_ece`` overall and
    in every test month (``ece_worst_month`` when present). With ``max_area_ece`` > 0, its ECE in the worst
    police district or community area (``ece_worst_area``, areas with at least 30 test rows) must be within
    it too.

    Args:
        challenger: Challenger metrics (``roc_auc``, ``ece``; optionally ``roc_auc_se``, ``ece_worst_month``).
        champion: Champion metrics on the same window, or ``None`` when there is no champion yet.
        margin: ROC-AUC improvement required on top of the noise (may be negative).
        max_ece: Upper bound of the challenger's ECE, overall and per test month.
        noise: Standard errors of the challenger's ROC-AUC added to the margin.
        max_area_ece: Upper bound of the challenger's worst-area ECE; 0 = not checked (the default).

    Returns:
        ``(passed, reason)``.
    """
    worst = max(challenger["ece"], challenger.get("ece_worst_month", challenger["ece"]))
    if champion is None:
        # The very first model becomes champion: serving needs a model, and there is nothing to compare with.
        note = f" (its ECE {worst:.4f} exceeds the bound {max_ece:.4f})" if worst > max_ece else ""
        return True, "first model: no champion yet" + note
    if challenger["ece"] > max_ece:
        return False, f"challenger ECE {challenger['ece']:.4f} exceeds the bound {max_ece:.4f}"
    if worst > max_ece:
        return False, f"challenger ECE in its worst test month {worst:.4f} exceeds the bound {max_ece:.4f}"
    area = float(challenger.get("ece_worst_area", float("nan")))
    if max_area_ece > 0 and area > max_area_ece:  # NaN (no area with enough rows) never refuses
        return False, f"challenger ECE in its worst area {area:.4f} exceeds the bound {max_area_ece:.4f}"
    se = float(challenger.get("roc_auc_se", 0.0) or 0.0)
    needed = champion["roc_auc"] + margin + noise * se
    rule = f"+ margin {margin:.4f} + {noise:g} x bootstrap SE {se:.4f}"
    if challenger["roc_auc"] >= needed:
        return (
            True,
            f"challenger ROC-AUC {challenger['roc_auc']:.4f} >= champion {champion['roc_auc']:.4f} {rule}",
        )
    return (
        False,
        f"challenger ROC-AUC {challenger['roc_auc']:.4f} < champion {champion['roc_auc']:.4f} {rule}",
    )


def _headline(metrics: dict[str, float]) -> dict[str, float]:
    out = {k: float(metrics[k]) for k in ("roc_auc", "ece", "pr_auc", "brier")}
    out.update({k: float(metrics[k]) for k in ("roc_auc_se", "ece_worst_month") if k in metrics})
    area = float(metrics.get("ece_worst_area", float("nan")))
    if area == area:  # the worst-area ECE when the evaluate step found one (issue 14)
        out["ece_worst_area"] = area
    return out


def gate(
    client: MlflowClient,
    challenger_version: str,
    test: pd.DataFrame,
    *,
    margin: float = 0.0,
    max_ece: float = 0.05,
    auto_promote: bool = True,
    challenger_metrics: dict[str, float] | None = None,
    name: str = MODEL_NAME,
    noise: float = 1.0,
    max_area_ece: float = 0.0,
) -> GateDecision:
    """Compare the new version with the champion on the same evaluation window and record the decision.

    The champion is re-scored on ``test``. If there is no champion, the new version becomes champion. If it
    passes :func:`decide` and ``auto_promote`` is true, it becomes champion; with ``auto_promote`` false it
    becomes the ``challenger`` (for a canary rollout the operator promotes later). The registry is written by
    :func:`record_gate`.

    Args:
        client: MLflow client.
        challenger_version: Registry version of the new model.
        test: Raw records of the evaluation window, with labels.
        margin: ROC-AUC improvement over the champion required on top of the noise (see :func:`decide`).
        max_ece: Upper bound of the challenger's ECE, overall and in every test month.
        auto_promote: Promote a passing challenger directly (no canary).
        challenger_metrics: The challenger's ``roc_auc``, ``ece``, ``pr_auc``, ``brier`` on ``test`` if already
            computed (the evaluate step has them); otherwise the challenger is scored here.
        name: Registered model name.
        noise: Bootstrap standard errors of the challenger's test ROC-AUC added to ``margin``.
        max_area_ece: Upper bound of the challenger's worst-area ECE (see :func:`decide`); 0 = off.

    Returns:
        The :class:`GateDecision`.
    """
    from chicago_arrest.model.evaluate import evaluate_model

    if challenger_metrics is None:
        model = load_arrest_model(f"models:/{name}/{challenger_version}")
        challenger_metrics = evaluate_model(model, test).overall
    chall = _headline(challenger_metrics)
    champion_version = alias_version(client, CHAMPION, name)
    champ: dict[str, float] | None = None
    if champion_version is not None and champion_version != challenger_version:
        champion_eval = evaluate_model(
            load_arrest_model(f"models:/{name}/{champion_version}"), test, "champion"
        )
        champ = _headline(champion_eval.overall)
    passed, reason = decide(chall, champ, margin, max_ece, noise, max_area_ece)
    promoted = passed and (champ is None or auto_promote)
    decision = GateDecision(
        challenger_version, champion_version if champ else None, passed, promoted, reason, chall, champ or {}
    )
    record_gate(client, decision, name)
    return decision


def record_gate(client: MlflowClient, decision: GateDecision, name: str = MODEL_NAME) -> None:
    """Write the gate's decision into the registry and move the aliases; safe to repeat.

    The version gets the tags ``gate`` (``passed`` / ``rejected``) and ``gate_reason``, the Gate line of its
    description, and its run the metrics ``gate_*`` (both models' headline metrics). Then the aliases
    (:mod:`chicago_arrest.registry.aliases`): promoted: ``champion`` (with its history tags) and no
    ``challenger``; passed under canary: ``challenger``; rejected: no alias moves.
    """
    from mlflow.entities import Metric

    version = decision.challenger_version
    client.set_model_version_tag(name, version, GATE_TAG, "passed" if decision.passed else "rejected")
    client.set_model_version_tag(name, version, "gate_reason", decision.reason)
    verdict = (
        "promoted to champion"
        if decision.promoted
        else "passed, released as a canary (`make promote` promotes it)"
        if decision.passed
        else "rejected"
    )
    against = f" against champion {decision.champion_version}" if decision.champion_version else ""
    registered = client.get_model_version(name, version)
    description = _gate_line(registered.description or "", f"Gate: {verdict}{against}: {decision.reason}.")
    client.update_model_version(name, version, description=description)
    if registered.run_id:
        values = {"gate_passed": float(decision.passed), "gate_promoted": float(decision.promoted)}
        for role in ("challenger", "champion"):
            values.update({f"gate_{role}_{k}": float(v) for k, v in getattr(decision, role).items()})
        stamp = int(pd.Timestamp.now("UTC").timestamp() * 1000)
        client.log_batch(registered.run_id, metrics=[Metric(k, v, stamp, 0) for k, v in values.items()])
    aliases = MlflowAliases.of(client, name)
    if decision.promoted:
        make_champion(aliases, version, "gate" if decision.champion_version else "first model")
        set_challenger(aliases, None)
    elif decision.passed:
        set_challenger(aliases, version)
    log.info(
        "gate: version %s %s (%s)",
        version,
        "promoted" if decision.promoted else ("passed" if decision.passed else "rejected"),
        decision.reason,
    )


def _gate_line(description: str, line: str) -> str:
    """``description`` with its ``Gate:`` line replaced by ``line`` (appended when there is none)."""
    kept = [x for x in description.splitlines() if not x.startswith("Gate:")]
    return "\n".join([*kept, line]).strip()
