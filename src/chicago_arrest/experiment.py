"""Offline comparison of the model types on one split: the numbers behind docs/model.md.

``python -m chicago_arrest.cli model evaluate --source crimes.csv --split time`` trains every model type on the
training part (exactly as the pipeline does), scores the test part, and prints one markdown table with the
metrics on every crime type and without the types recorded only upon arrest. Nothing is registered.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from chicago_arrest.evaluate import evaluate_model
from chicago_arrest.split import split_records
from chicago_arrest.training import MODEL_TYPES, TrainConfig, train_model

log = logging.getLogger(__name__)

COLUMNS = ("roc_auc", "pr_auc", "f1", "brier", "ece")


def read_records(path: str | Path) -> pd.DataFrame:
    """A Socrata-schema CSV or Parquet file as text columns (leading zeros kept)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path).astype("string")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def compare_models(
    crimes: pd.DataFrame,
    stations: pd.DataFrame,
    *,
    split: str = "time",
    test_months: int = 1,
    models: tuple[str, ...] = MODEL_TYPES,
    seed: int = 42,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train and evaluate each model type on one split.

    Args:
        crimes: Raw records with labels.
        stations: Police stations.
        split: ``time`` (test on the latest ``test_months``) or ``random`` (stratified 80/20).
        test_months: Months held out for a time split.
        models: Model types to compare.
        seed: Seed of the random split.

    Returns:
        ``(table, window)``: one row per model (test metrics on all types, ``no_ab_*`` without the arrest-based
        types, calibration-month AUC, fit seconds, ``selected`` marks the pipeline's choice) and the data window.
    """
    train, test, window = split_records(crimes, kind=split, test_months=test_months, seed=seed)  # type: ignore[arg-type]
    rows = []
    for model_type in models:
        result = train_model(train, stations, TrainConfig(model_type=model_type), split=split)  # type: ignore[arg-type]
        ev = evaluate_model(result.model, test)
        row: dict[str, Any] = {"model": model_type}
        row.update({k: ev.overall[k] for k in COLUMNS})
        row.update({f"no_ab_{k}": ev.without_arrest_based[k] for k in COLUMNS})
        row["calibration_auc"] = result.calibration_auc
        row["fit_s"] = result.fit_seconds
        rows.append(row)
        log.info("%s: test ROC-AUC %.4f, ECE %.4f", model_type, row["roc_auc"], row["ece"])
    table = pd.DataFrame(rows)
    table["selected"] = table["calibration_auc"] == table["calibration_auc"].max()
    return table, window.as_dict()


def markdown(table: pd.DataFrame) -> str:
    """The comparison as a markdown table."""
    headers = [
        "model",
        *COLUMNS,
        *(f"no_ab_{c}" for c in ("roc_auc", "pr_auc", "ece")),
        "fit (s)",
        "selected",
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for _, r in table.iterrows():
        cells = [
            r["model"],
            *(f"{r[c]:.4f}" for c in COLUMNS),
            *(f"{r[f'no_ab_{c}']:.4f}" for c in ("roc_auc", "pr_auc", "ece")),
            f"{r['fit_s']:.1f}",
            "yes" if r["selected"] else "",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)
