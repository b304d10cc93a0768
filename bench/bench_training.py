"""Training-time benchmark: each model type on the 2017 sample (50k) and on a year-sized set (~270k rows).

Run: ``.venv/bin/python -m bench.bench_training`` (``--help`` for options). Writes
``bench/results/training.json`` and prints markdown tables for docs/benchmarks.md.

The year-sized set is the real sample replicated to ``--year-rows`` rows with fresh ids (the real 2017 year
has 267,792 records; only a 50k sample is at hand), so it has the real distribution at the real size. For
each model type and data size it times :func:`chicago_arrest.model.training.train_model` end to end (features,
SMOTE + undersampling, mutual-information selection, classifier, compiled encoder, calibration) and, on
the same resampled and selected matrix, the classifier's ``fit`` alone. It also times train (all three) +
evaluate + register in a throw-away local MLflow store on the 50k time split, the issue's ≤ 60 s budget.
Threads: every model uses ``available_cpus()`` threads (2 on the reference machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import REPO_ROOT, load_sample, machine, markdown_table

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "training.json"


def replicate(crimes: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The sample repeated to ``rows`` rows with fresh, unique ids (same months, same distribution)."""
    reps = -(-rows // len(crimes))
    big = pd.concat([crimes] * reps, ignore_index=True).head(rows).copy()
    big["id"] = (np.arange(rows) + 20_000_000).astype(str)
    return big


def time_model(train: pd.DataFrame, stations: pd.DataFrame, model_type: str, repeats: int) -> dict[str, Any]:
    """Time train_model and the bare classifier fit for one model type."""
    from imblearn.over_sampling import SMOTE
    from imblearn.under_sampling import RandomUnderSampler

    from chicago_arrest.core.parsing import labels
    from chicago_arrest.core.runtime import available_cpus
    from chicago_arrest.model.training import TrainConfig, make_classifier, train_model

    totals, clf_fits, phases = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        result = train_model(train, stations, TrainConfig(model_type=model_type))
        totals.append(time.perf_counter() - start)
        info = result.model.info or {}
        phases.append(info["timings"])
        # The classifier alone, on what it was trained on: resampled, selected features.
        pipe = result.model.pipeline
        steps = pipe.named_steps
        x = steps["encode"].transform(pipe.steps[0][1].transform(train))
        y = labels(train).values
        x_res, y_res = SMOTE(sampling_strategy=info["smote_ratio"], random_state=0).fit_resample(x, y)
        x_res, y_res = RandomUnderSampler(
            sampling_strategy=info["undersample_ratio"], random_state=0
        ).fit_resample(x_res, y_res)
        x_sel = x_res[:, steps["select"].support_]
        clf = make_classifier(model_type, {}, available_cpus(), 0)
        start = time.perf_counter()
        clf.fit(x_sel, y_res)
        clf_fits.append(time.perf_counter() - start)
    return {
        "model_type": model_type,
        "rows": len(train),
        "resampled_rows": len(y_res),
        "selected_features": int(x_sel.shape[1]),
        "train_model_s": statistics.median(totals),
        "classifier_fit_s": statistics.median(clf_fits),
        "phases_s": {k: statistics.median(p[k] for p in phases) for k in phases[0]},
        "runs": len(totals),
    }


def time_train_evaluate_register(crimes: pd.DataFrame, stations: pd.DataFrame) -> dict[str, Any]:
    """Train all three models, evaluate them and register the selected one (local MLflow), timed by stage."""
    import mlflow

    from chicago_arrest.core.settings import Settings
    from chicago_arrest.data.split import time_split
    from chicago_arrest.model.backtest import select_candidate
    from chicago_arrest.model.evaluate import evaluate_model
    from chicago_arrest.model.training import MODEL_TYPES, TrainConfig, train_model
    from chicago_arrest.registry.models import MODEL_NAME, configure_mlflow, log_arrest_model

    train, test, _ = time_split(crimes)
    out: dict[str, Any] = {}
    start = time.perf_counter()
    models = [train_model(train, stations, TrainConfig(model_type=t)).model for t in MODEL_TYPES]
    out["train_s"] = time.perf_counter() - start
    mark = time.perf_counter()
    evaluations = [evaluate_model(m, test) for m in models]
    out["evaluate_s"] = time.perf_counter() - mark
    from chicago_arrest.steps.training import _candidate

    best, _ = select_candidate([_candidate(str((m.info or {})["model_type"]), m.info or {}) for m in models])
    mark = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        configure_mlflow(Settings(data_dir=Path(tmp)))
        with mlflow.start_run():
            log_arrest_model(models[best], test, MODEL_NAME)
    out["register_s"] = time.perf_counter() - mark
    out["total_s"] = time.perf_counter() - start
    out["selected"] = evaluations[best].name
    out["test_roc_auc"] = evaluations[best].overall["roc_auc"]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--year-rows", type=int, default=270_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    from chicago_arrest.data.split import time_split
    from chicago_arrest.model.training import MODEL_TYPES

    crimes, stations, source = load_sample()
    rows = []
    for label, data in (("sample", crimes), ("year", replicate(crimes, args.year_rows))):
        train, _, _ = time_split(data)
        for model_type in MODEL_TYPES:
            repeats = 1 if label == "year" and model_type != "xgboost" else args.repeats
            row = time_model(train, stations, model_type, repeats)
            row["data"] = label
            rows.append(row)
            print(
                f"{label:6s} {model_type:13s} train_model {row['train_model_s']:6.1f} s   "
                f"classifier fit {row['classifier_fit_s']:6.1f} s   ({row['rows']} rows)",
                flush=True,
            )
    budget = time_train_evaluate_register(crimes, stations)
    result = {"machine": machine(), "data": source, "models": rows, "train_evaluate_register": budget}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print()
    print(
        markdown_table(
            ["data", "model", "train rows", "resampled", "train_model (s)", "classifier fit (s)", "runs"],
            [
                [
                    r["data"],
                    r["model_type"],
                    r["rows"],
                    r["resampled_rows"],
                    f"{r['train_model_s']:.1f}",
                    f"{r['classifier_fit_s']:.1f}",
                    r["runs"],
                ]
                for r in rows
            ],
        )
    )
    print()
    print(
        f"train (3 models) + evaluate + register on the 50k time split: {budget['total_s']:.1f} s "
        f"(train {budget['train_s']:.1f}, evaluate {budget['evaluate_s']:.1f}, register {budget['register_s']:.1f}; "
        f"selected {budget['selected']}, ROC-AUC {budget['test_roc_auc']:.4f})"
    )
    return result


if __name__ == "__main__":
    main()
