"""XGBoost's size at the scale of a year: parameter sets compared on a training window's walk-forward folds.

Run: ``nice -n 10 .venv/bin/python -m bench.xgboost_year --source ../shared/data/crimes_2016.csv.gz --tag 2016
--params '[{}, {"n_estimators": 400, "max_depth": 6}]'`` (``--months 24`` for two files). Writes
``bench/results/xgboost_year_<tag>.json`` and prints one line per parameter set.

The window is landed, checked and split by the training pipeline's own steps (ingest, data contract, time
split; its last two months are the test months and are not used here); its three walk-forward folds are encoded
exactly as :func:`chicago_arrest.model.training.train_model` encodes them (features and selection fitted on each
fold's training months), then each parameter set (over ``DEFAULT_PARAMS["xgboost"]``) is fitted on every fold
with one thread and scored on the fold's validation month. The defaults were chosen with this on the folds of
2015, of 2016 and of both years together: data before the 2017 test year (docs/model.md, "XGBoost at the scale
of a year").
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO_ROOT, machine
from chicago_arrest.core.runtime import cpu_seconds


def fold_matrices(source: str, months: int, work: Path) -> list[tuple[Any, ...]]:
    """The training window's three folds, encoded: ``(x_train, y_train, x_valid, y_valid, month)`` each."""
    from chicago_arrest.core.parsing import labels
    from chicago_arrest.core.schema import LABEL, MODEL_INPUT_COLUMNS
    from chicago_arrest.core.settings import Settings
    from chicago_arrest.model.backtest import walk_forward_folds
    from chicago_arrest.model.features import RawFeatures
    from chicago_arrest.model.training import TrainConfig, _encode, raw_features
    from chicago_arrest.steps import read_dataset
    from chicago_arrest.steps.data import ingest_step, split_step, validate_step

    ingest_step(
        work / "raw", work / "stations", source=source, months=months, settings=Settings(data_dir=work / "d")
    )
    validate_step(work / "raw", work / "valid", work / "quarantine")
    split_step(work / "valid", work / "train", work / "test", test_months=2)
    train = read_dataset(work / "train", (*MODEL_INPUT_COLUMNS, LABEL), text="category")
    y = np.asarray(labels(train).values)
    config = TrainConfig(model_type="xgboost")
    raw_step = RawFeatures(read_dataset(work / "stations")).fit(train)
    raw = raw_features(raw_step, train, config.features.columns())
    out = []
    for fold in walk_forward_folds(train, config.backtest_folds):
        encoded = _encode(config, raw_step, raw, y, fold.train, fold.validate)
        out.append((encoded.x_train, y[fold.train], encoded.x_valid, y[fold.validate], fold.validate_month))
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Fit every parameter set on every fold; print and write the fold ROC-AUCs and fit times."""
    from chicago_arrest.model.training import DEFAULT_PARAMS, make_classifier

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", required=True, help="crime file(s), as SOURCE")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--params", default="[{}]", help="JSON list of parameter sets over the defaults")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xgboost-year-") as tmp:
        folds = fold_matrices(args.source, args.months, Path(tmp))
    rows = []
    for params in json.loads(args.params):
        fitted = fit_on_folds(folds, functools.partial(make_classifier, "xgboost", params, 1, 0))
        row = {"params": {**DEFAULT_PARAMS["xgboost"], **params}, **fitted}
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("params", "roc_auc", "mean", "fit_cpu_s")}), flush=True)
    write_rows(f"xgboost_year_{args.tag}", args, rows)
    return rows


def fit_on_folds(folds: list[tuple[Any, ...]], build: Callable[[], Any]) -> dict[str, Any]:
    """Fit a fresh classifier from ``build`` on every fold: fold months, ROC-AUCs, their mean, fit CPU times."""
    from sklearn.metrics import roc_auc_score

    aucs, seconds = [], []
    for x_train, y_train, x_valid, y_valid, _ in folds:
        clf = build()
        start = cpu_seconds()
        clf.fit(x_train, y_train)
        seconds.append(cpu_seconds() - start)
        scores = clf.predict_proba(x_valid)[:, 1] if hasattr(clf, "predict_proba") else clf.predict(x_valid)
        aucs.append(float(roc_auc_score(y_valid, scores)))
    return {
        "folds": [f[4] for f in folds],
        "roc_auc": aucs,
        "mean": float(np.mean(aucs)),
        "fit_cpu_s": seconds,
    }


def write_rows(name: str, args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """``bench/results/<name>.json``: the machine, the source and window, and the rows."""
    output = REPO_ROOT / "bench" / "results" / f"{name}.json"
    output.write_text(
        json.dumps(
            {"machine": machine(), "source": args.source, "months": args.months, "rows": rows}, indent=1
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
