"""A year ahead: the pipeline's steps train on one window; the model they select scores every later month.

``chicago-arrest model year-ahead --train crimes_2016.csv.gz --test crimes_2017.csv.gz`` (``make year-ahead
TRAIN=... TEST=...``) is the closest thing to production this project can measure offline: the training
pipeline's own step functions (:func:`chicago_arrest.steps.experiment.train_window`: landing, the data contract,
the time split, one train step per model type, the evaluate step's selection) run on the training files, then
the selected model scores every record of the later files that is dated after the training window, landed and
checked by the same ingest and contract steps. Nothing is tuned on the later months: they are read once, after
the model is fixed.

Per later month and over all of them: ROC-AUC, PR-AUC, ECE, and ROC-AUC without the arrest-based crime types
(:data:`~chicago_arrest.core.schema.ARREST_BASED_TYPES`); the overall figures with bootstrap 95 % intervals.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from chicago_arrest.core.names import WINDOW_MONTHS
from chicago_arrest.core.parsing import arrest_based_mask, labels
from chicago_arrest.core.runtime import available_cpus
from chicago_arrest.core.schema import DATE, ID
from chicago_arrest.core.settings import Settings
from chicago_arrest.model.evaluate import bootstrap_intervals, classification_metrics
from chicago_arrest.model.training import MODEL_TYPES
from chicago_arrest.steps import read_dataset
from chicago_arrest.steps.data import ingest_step, validate_step
from chicago_arrest.steps.experiment import train_window

log = logging.getLogger(__name__)

#: Metrics of each later month and of all of them (``no_ab_roc_auc``: without the arrest-based types).
METRICS = ("roc_auc", "pr_auc", "ece", "no_ab_roc_auc")
#: Enough months to land every month of the later files (their window is "everything in them").
_ALL_MONTHS = 100 * 12


@dataclass
class YearAhead:
    """A model trained on one window, scored on the months after it.

    Attributes:
        train_source: The training files.
        later_source: The later files.
        window: The training window's split (train and test months, rows).
        selected: The model type the evaluate step selected.
        selection: Its reason.
        in_window: The selected model's metrics on the window's own test months (the pipeline's figures).
        per_month: One row per later month: rows, arrest rate, mean prediction and :data:`METRICS`.
        overall: :data:`METRICS` over every later record, with bootstrap intervals (``roc_auc_ci_low``, ...),
            the worst month's ECE (``ece_worst_month``) and the number of records (``rows``).
        costs: Per model type, the train step's seconds (``wall_s``, ``cpu_s``).
        predictions: Every later record's ``id``, ``month``, label ``y``, probability ``p`` and ``arrest_based``.
        test_predictions: The same for the window's own test months (what the pipeline's evaluate step scores).
    """

    train_source: str
    later_source: str
    window: dict[str, Any]
    selected: str
    selection: str
    in_window: dict[str, float]
    per_month: pd.DataFrame
    overall: dict[str, float]
    costs: dict[str, dict[str, float]] = field(default_factory=dict)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    test_predictions: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Everything but the predictions, JSON-ready."""
        return {
            "train_source": self.train_source,
            "later_source": self.later_source,
            "window": self.window,
            "selected": self.selected,
            "selection": self.selection,
            "in_window": self.in_window,
            "per_month": self.per_month.to_dict(orient="records"),
            "overall": self.overall,
            "costs": self.costs,
        }


def scores(y: np.ndarray, p: np.ndarray, arrest_based: np.ndarray) -> dict[str, float]:
    """:data:`METRICS` of one set of predictions, plus rows, arrest rate and mean prediction."""
    every = classification_metrics(y, p, 0.5)
    without = classification_metrics(y[~arrest_based], p[~arrest_based], 0.5)
    return {
        "rows": len(y),
        "arrest_rate": every["positive_rate"],
        "mean_predicted": every["mean_predicted"],
        "roc_auc": every["roc_auc"],
        "pr_auc": every["pr_auc"],
        "ece": every["ece"],
        "no_ab_roc_auc": without["roc_auc"],
    }


def monthly(predictions: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-month and overall :func:`scores` of ``predictions`` (``month``, ``y``, ``p``, ``arrest_based``)."""
    y, p, ab = (predictions[c].to_numpy() for c in ("y", "p", "arrest_based"))
    months = predictions["month"].to_numpy()
    rows = [
        {"month": m, **scores(y[months == m], p[months == m], ab[months == m])} for m in sorted(set(months))
    ]
    per_month = pd.DataFrame(rows)
    overall: dict[str, float] = {**scores(y, p, ab), **bootstrap_intervals(y, p)}
    overall["ece_worst_month"] = float(per_month["ece"].max()) if len(per_month) else float("nan")
    return per_month, overall


def year_ahead(
    train_source: str | Path,
    later_source: str | Path | None,
    *,
    months: int = WINDOW_MONTHS,
    stations: str | Path | None = None,
    test_months: int = 2,
    models: Sequence[str] = MODEL_TYPES,
    random_state: int = 0,
) -> YearAhead:
    """Train with the pipeline's steps on ``train_source``; score every later record of ``later_source``.

    Args:
        train_source: Training crime file(s): a path, paths separated by commas, or a folder.
        later_source: The later file(s); records dated inside or before the training window are left out.
            ``None``: only the window's own test months are scored.
        months: Months of the training window (the last ``months`` of the training files), as ``MONTHS``.
        stations: Police stations file; default: next to the first training file.
        test_months: The window's own test months (the evaluate step selects the model type before them).
        models: Model types trained (the evaluate step selects one).
        random_state: Seed of every random step of training (the pipeline's is 0).

    Returns:
        The :class:`YearAhead`.

    Raises:
        ValueError: When no later record is dated after the training window.
    """
    with tempfile.TemporaryDirectory(prefix="year-ahead-") as tmp:
        work = Path(tmp)
        run = train_window(
            work / "train",
            train_source,
            stations=stations,
            test_months=test_months,
            models=models,
            months=months,
            random_state=random_state,
        )
        model = joblib.load(run.selected).set_threads(available_cpus())
        test_predictions = _predict(model, read_dataset(run.work / "test.parquet"))
        predictions = pd.DataFrame(columns=[ID, "month", "y", "p", "arrest_based"])
        if later_source is not None:
            later_dir = work / "later"
            ingest_step(
                later_dir / "raw.parquet",
                later_dir / "stations.parquet",
                source=str(later_source),
                stations_source=str(stations or ""),
                months=_ALL_MONTHS,
                settings=Settings(data_dir=later_dir / "data", store_backend="local"),
            )
            validate_step(
                later_dir / "raw.parquet", later_dir / "valid.parquet", later_dir / "quarantine.parquet"
            )
            later = read_dataset(later_dir / "valid.parquet")
            later = later[later[DATE] >= pd.Timestamp(run.window["test_end"]) + pd.Timedelta(days=1)]
            if later.empty:
                raise ValueError(
                    f"{later_source}: no record dated after the training window ({run.window['test_end']})"
                )
            predictions = _predict(model, later)
    per_month, overall = monthly(predictions) if len(predictions) else (pd.DataFrame(), {})
    chosen = run.evaluation["candidates"][run.evaluation["selected"]]
    in_window = {k: float(chosen[f"test_{k}"]) for k in ("roc_auc", "pr_auc", "ece", "no_ab_roc_auc")}
    if overall:
        log.info(
            "year ahead: %s trained on %s..%s, %d later records: ROC-AUC %.4f, ECE %.4f (worst month %.4f)",
            run.evaluation["selected"],
            run.window["train_start"],
            run.window["train_end"],
            len(predictions),
            overall["roc_auc"],
            overall["ece"],
            overall["ece_worst_month"],
        )
    return YearAhead(
        str(train_source),
        "" if later_source is None else str(later_source),
        run.window,
        str(run.evaluation["selected"]),
        str(run.evaluation["selection"]),
        in_window,
        per_month,
        overall,
        run.costs,
        predictions,
        test_predictions,
    )


def _predict(model: Any, records: pd.DataFrame) -> pd.DataFrame:
    """Each record's ``id``, ``month``, label ``y``, probability ``p`` and ``arrest_based`` flag."""
    return pd.DataFrame(
        {
            ID: records[ID].to_numpy(),
            "month": records[DATE].dt.strftime("%Y-%m").to_numpy(),
            "y": np.asarray(labels(records).values, dtype=int),
            "p": model.predict_arrest_probability(records),
            "arrest_based": arrest_based_mask(records["primary_type"]),
        }
    )


def markdown(result: YearAhead) -> str:
    """The per-month table and the overall row, as markdown."""
    head = [
        "month",
        "rows",
        "arrest rate",
        "mean predicted",
        "ROC-AUC",
        "PR-AUC",
        "ECE",
        "ROC-AUC w/o arrest-based",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(label: str, r: dict[str, Any]) -> str:
        cells = [label, f"{int(r['rows']):,}", f"{r['arrest_rate']:.3f}", f"{r['mean_predicted']:.3f}"]
        cells += [f"{r[m]:.4f}" for m in METRICS[:3]] + [f"{r['no_ab_roc_auc']:.4f}"]
        return "| " + " | ".join(cells) + " |"

    lines += [row(str(r["month"]), r) for r in result.per_month.to_dict(orient="records")]
    o = result.overall
    lines.append(row("**all**", o))
    lines.append(
        f"\nROC-AUC {o['roc_auc']:.4f} [{o['roc_auc_ci_low']:.4f}, {o['roc_auc_ci_high']:.4f}], PR-AUC "
        f"{o['pr_auc']:.4f} [{o['pr_auc_ci_low']:.4f}, {o['pr_auc_ci_high']:.4f}], ECE {o['ece']:.4f} "
        f"[{o['ece_ci_low']:.4f}, {o['ece_ci_high']:.4f}], worst month's ECE {o['ece_worst_month']:.4f}"
    )
    return "\n".join(lines)


def write(result: YearAhead, output: str | Path | None = None, predictions: str | Path | None = None) -> None:
    """Write the result as JSON and the later records' predictions as Parquet (either optional)."""
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(result.as_dict(), indent=1, default=str), encoding="utf-8")
    if predictions:
        Path(predictions).parent.mkdir(parents=True, exist_ok=True)
        result.predictions.to_parquet(predictions, index=False)
