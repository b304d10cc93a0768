"""``chicago-arrest model evaluate``: the model types compared on one file, through the pipeline's own steps.

:func:`evaluate_file` runs, in a throw-away working folder, the same step functions as the training pipeline
(:mod:`chicago_arrest.steps`): landing the file month by month in a local object store, the data contract,
the split, one training per model type and the evaluation. Nothing is registered or deployed. For the same
file and parameters it gives exactly the metrics of ``make pipeline-run``: the training frame goes through the
same landing (which orders the records by date and id; the tree models and the resampling depend on row order)
and the same Parquet round trips.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from chicago_arrest.core.names import WINDOW_MONTHS
from chicago_arrest.core.runtime import cpu_seconds
from chicago_arrest.core.settings import Settings
from chicago_arrest.model.training import MODEL_TYPES
from chicago_arrest.steps.data import ingest_step, split_step, validate_step
from chicago_arrest.steps.training import evaluate_step, train_step

log = logging.getLogger(__name__)

COLUMNS = ("roc_auc", "pr_auc", "f1", "brier", "ece")


@dataclass
class WindowRun:
    """What the pipeline's steps made of one training window (in a working folder).

    Attributes:
        work: The working folder (the step outputs: ``valid.parquet``, ``test.parquet``, ``<model>.joblib``).
        ingested: The ingest step's summary.
        counts: The data contract's counts.
        window: The split's data window.
        trained: Each model type's train step summary.
        evaluation: The evaluate step's output (``selected``, ``candidates``, ...).
        models: The saved models, in the order of ``trained``.
        costs: Each train step's seconds: ``wall_s`` and ``cpu_s`` (this process, every thread).
    """

    work: Path
    ingested: dict[str, Any]
    counts: dict[str, Any]
    window: dict[str, Any]
    trained: dict[str, dict[str, Any]]
    evaluation: dict[str, Any]
    models: list[Path]
    costs: dict[str, dict[str, float]]

    @property
    def selected(self) -> Path:
        """The model the evaluate step selected."""
        return self.models[int(self.evaluation["selected_index"])]


def train_window(
    work: Path,
    source: str | Path,
    *,
    stations: str | Path | None = None,
    split: str = "time",
    test_months: int = 2,
    models: Sequence[str] = MODEL_TYPES,
    months: int = WINDOW_MONTHS,
    random_state: int = 0,
) -> WindowRun:
    """The training pipeline's steps up to the evaluation (ingest, contract, split, train, evaluate) in ``work``.

    Args:
        work: A working folder (step outputs and a local object store in it).
        source: Crimes file(s) in the Socrata schema (a path, paths separated by commas, or a folder).
        stations: Police stations file; default: ``police_stations.csv`` / ``.parquet`` next to ``source``.
        split: ``time`` (test on the latest ``test_months``) or ``random`` (stratified 80/20).
        test_months: Months held out for a time split.
        models: Model types to train.
        months: Months of the window (the last ``months`` calendar months of the files).
        random_state: Seed of every random step of training (the pipeline's is 0).

    Raises:
        ValueError: On an unknown model type, or when the data contract rejects every row.
    """
    unknown = [m for m in models if m not in MODEL_TYPES]
    if unknown or not models:
        raise ValueError(f"models must be some of {', '.join(MODEL_TYPES)}; got {list(models)}")
    settings = Settings(data_dir=work / "data", store_backend="local")
    ingested = ingest_step(
        work / "raw.parquet",
        work / "stations.parquet",
        source=str(source),
        stations_source=str(stations or ""),
        months=months,
        settings=settings,
    )
    counts = validate_step(work / "raw.parquet", work / "valid.parquet", work / "quarantine.parquet")
    window = split_step(
        work / "valid.parquet",
        work / "train.parquet",
        work / "test.parquet",
        kind=split,
        test_months=test_months,
    )
    paths = [work / f"{m}.joblib" for m in models]
    trained, costs = {}, {}
    for model_type, path in zip(models, paths, strict=True):
        wall, cpu = time.perf_counter(), cpu_seconds()
        trained[model_type] = train_step(
            work / "train.parquet",
            work / "stations.parquet",
            path,
            model_type=model_type,
            split=split,
            random_state=random_state,
        )
        costs[model_type] = {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu}
    evaluation = evaluate_step(
        [str(p) for p in paths],
        work / "test.parquet",
        work / "report.html",
        work / "charts",
        ingest=ingested,
        validate=counts,
        window=window,
    )
    return WindowRun(work, ingested, counts, window, trained, evaluation, paths, costs)


def evaluate_file(
    source: str | Path,
    *,
    stations: str | Path | None = None,
    split: str = "time",
    test_months: int = 2,
    models: Sequence[str] = MODEL_TYPES,
    output: str | Path | None = None,
    months: int = WINDOW_MONTHS,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train and evaluate each model type on one file, exactly as the pipeline does.

    Args:
        source: Crimes file(s) (CSV or Parquet) in the Socrata schema: a path, paths separated by commas, or a
            folder.
        stations: Police stations file; default: ``police_stations.csv`` / ``.parquet`` next to ``source``.
        split: ``time`` (test on the latest ``test_months``) or ``random`` (stratified 80/20).
        test_months: Months held out for a time split.
        models: Model types to compare.
        output: If given, a JSON file with the window and the table.
        months: Months of the training window (the last ``months`` calendar months of the file).

    Returns:
        ``(table, window)``: one row per model (test metrics on every type, ``no_ab_*`` without the
        arrest-based types, calibration-month AUC, fit seconds, ``selected`` marks the pipeline's choice)
        and the data window.

    Raises:
        FileNotFoundError: When a file does not exist.
        IngestError: When no police stations file is found.
        ValueError: On an unknown model type, or when the data contract rejects every row.
    """
    with tempfile.TemporaryDirectory(prefix="model-evaluate-") as tmp:
        run = train_window(
            Path(tmp),
            source,
            stations=stations,
            split=split,
            test_months=test_months,
            models=models,
            months=months,
        )
    window, trained, evaluation = run.window, run.trained, run.evaluation
    rows = []
    for model_type in models:
        metrics = evaluation["candidates"][model_type]
        row: dict[str, Any] = {"model": model_type}
        row.update({k: metrics[f"test_{k}"] for k in COLUMNS})
        row.update({f"no_ab_{k}": metrics[f"test_no_ab_{k}"] for k in COLUMNS})
        row["calibration_auc"] = metrics["calibration_auc"]
        row["fit_s"] = trained[model_type]["fit_seconds"]
        row["selected"] = model_type == evaluation["selected"]
        rows.append(row)
        log.info("%s: test ROC-AUC %.4f, ECE %.4f", model_type, row["roc_auc"], row["ece"])
    table = pd.DataFrame(rows)
    if output:
        Path(output).write_text(
            json.dumps({"window": window, "models": table.to_dict(orient="records")}, indent=2, default=str),
            encoding="utf-8",
        )
    return table, window


def markdown(table: pd.DataFrame) -> str:
    """The comparison as a markdown table (numbers by :mod:`chicago_arrest.reports.format`, with a legend)."""
    from chicago_arrest.reports.format import COLUMNS as SHOWN
    from chicago_arrest.reports.format import Column, md_table

    no_ab = ("roc_auc", "pr_auc", "ece")
    view: dict[str, Column | str] = {"model": "model", **{c: SHOWN[c] for c in COLUMNS}}
    view.update(
        {
            f"no_ab_{c}": Column(
                f"{SHOWN[c].header} w/o AB", "metric", f"{SHOWN[c].header} without the arrest-based types"
            )
            for c in no_ab
        }
    )
    view.update({"fit_s": Column("fit s", "number", "seconds to fit"), "selected": "selected"})
    shown = table.assign(selected=["yes" if s else "" for s in table["selected"]])
    return md_table(shown, view)
