"""Feature ablation by walk-forward backtest, and the later-months check, on the real 2017 sample.

Run: ``nice -n 10 .venv/bin/python -m bench.backtest_ablation`` (``--help`` for options). Writes
``bench/results/backtest_ablation.json`` and prints the markdown tables of docs/model.md.

1. Ablation: the validated sample minus its last month (the pipeline's test month) is the training window;
   each feature variant trains XGBoost (default parameters) through :func:`chicago_arrest.model.training.train_model`
   and is scored on the walk-forward folds (each fold trains on every earlier month, validates on the next).
2. Later months: each model type trains on January–June with the served features and with the pre-issue-11
   features (month and season) and is scored on every month of July–December, which it never saw.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import REPO_ROOT, XGB_FIRST_ROUND, load_sample, machine, markdown_table

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "backtest_ablation.json"


def valid_records(crimes: pd.DataFrame) -> pd.DataFrame:
    """The sample through the data contract (what the pipeline trains on)."""
    from chicago_arrest.steps import read_dataset
    from chicago_arrest.steps.data import validate_step

    with tempfile.TemporaryDirectory(prefix="ablation-") as tmp:
        work = Path(tmp)
        crimes.to_parquet(work / "raw.parquet", index=False)
        validate_step(work / "raw.parquet", work / "valid.parquet", work / "quarantine.parquet")
        return read_dataset(work / "valid.parquet")


def variants() -> dict[str, Any]:
    """Feature sets compared (name → :class:`~chicago_arrest.model.feature_spec.FeatureSpec`)."""
    from chicago_arrest.model.feature_spec import DEFAULT_FEATURES as D
    from chicago_arrest.model.feature_spec import LEGACY_FEATURES

    return {
        "served (no month/season)": D,
        "+ month, season (before issue 11)": LEGACY_FEATURES,
        "+ day of month": D.plus("numeric", "day_of_month"),
        "+ hour x crime type": D.plus("target", "hour_type"),
        "- IUCR x location, type x location": D.without("type_location", "iucr_location"),
        "- frequency encodings": D.without(*D.frequency).plus("target", *D.frequency),
        "- beat, ward, community area": D.without("beat", "ward", "community_area"),
        "- FBI code": D.without("fbi_code"),
        "- domestic": D.without("domestic"),
        "- FBI code, beat, ward, community area": D.without("fbi_code", "beat", "ward", "community_area"),
    }


def ablation(train: pd.DataFrame, stations: pd.DataFrame, folds: int, only: list[str] | None) -> list[dict]:
    """Backtest every feature variant with XGBoost."""
    from chicago_arrest.model.training import TrainConfig, train_model

    rows = []
    for name, spec in variants().items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        config = TrainConfig(model_type="xgboost", features=spec, backtest_folds=folds, refit=False)
        result = train_model(train, stations, config)
        bt = result.backtest
        rows.append(
            {
                "variant": name,
                "mean": bt["mean"],
                "std": bt["std"],
                "scores": bt["scores"],
                "folds": [f["validate_month"] for f in bt["folds"]],
                "selected_features": len((result.model.info or {})["selected_features"]),
                "seconds": time.perf_counter() - start,
            }
        )
        logging.info("%s: %.4f ± %.4f %s", name, bt["mean"], bt["std"], bt["scores"])
    return rows


#: Parameter sets of the native-categorical XGBoost: the first round's served parameters, and the current
#: defaults (Optuna's best) with more and less regularisation of the categorical splits.
NATIVE_PARAMS: dict[str, dict[str, Any]] = {
    "400 x depth 6 (first round's defaults)": XGB_FIRST_ROUND,
    "700 x depth 4 (current defaults)": {},
    "700 x depth 4, max_cat_threshold 16, min_child_weight 20": {
        "max_cat_threshold": 16,
        "min_child_weight": 20,
    },
    "900 x depth 6, learning rate 0.03, max_cat_threshold 16, min_child_weight 20": {
        "n_estimators": 900,
        "max_depth": 6,
        "learning_rate": 0.03,
        "max_cat_threshold": 16,
        "min_child_weight": 20,
    },
}


def native_categorical(train: pd.DataFrame, stations: pd.DataFrame, folds: int) -> list[dict[str, Any]]:
    """XGBoost on the raw categoricals (``enable_categorical``, no encoders, no resampling) on the same folds.

    Not a served model: a measurement of what native categorical handling would bring, for each of
    :data:`NATIVE_PARAMS` (over the current XGBoost defaults).
    """
    from sklearn.metrics import roc_auc_score
    from xgboost import XGBClassifier

    from chicago_arrest.core.parsing import labels
    from chicago_arrest.core.runtime import available_cpus
    from chicago_arrest.model.backtest import walk_forward_folds
    from chicago_arrest.model.feature_spec import DEFAULT_FEATURES
    from chicago_arrest.model.features import RawFeatures
    from chicago_arrest.model.training import DEFAULT_PARAMS

    raw = RawFeatures(stations).fit(train).transform(train)
    spec = DEFAULT_FEATURES
    categorical = [*spec.one_hot, *spec.target]
    frame = raw[[*spec.skewed, *spec.numeric, *categorical]].copy()
    for column in categorical:
        frame[column] = frame[column].astype("category")
    y = labels(train).values
    splits = []
    for fold in walk_forward_folds(train, folds):
        x_tr, x_va = frame.iloc[fold.train].copy(), frame.iloc[fold.validate].copy()
        for column in categorical:  # categories known at training time only
            cats = x_tr[column].cat.remove_unused_categories().cat.categories
            x_tr[column] = pd.Categorical(x_tr[column], categories=cats)
            x_va[column] = pd.Categorical(x_va[column], categories=cats)
        splits.append((fold, x_tr, x_va))
    rows = []
    for name, params in NATIVE_PARAMS.items():
        scores = []
        for fold, x_tr, x_va in splits:
            model = XGBClassifier(
                **{**DEFAULT_PARAMS["xgboost"], **params},
                tree_method="hist",
                enable_categorical=True,
                max_cat_to_onehot=8,
                n_jobs=available_cpus(),
                random_state=0,
            ).fit(x_tr, y[fold.train])
            scores.append(float(roc_auc_score(y[fold.validate], model.predict_proba(x_va)[:, 1])))
        logging.info("native categorical XGBoost, %s: %s", name, scores)
        rows.append(
            {
                "variant": f"XGBoost native categoricals, {name} (not served)",
                "scores": scores,
                "mean": float(np.mean(scores)),
                "std": float(np.std(scores, ddof=1)),
            }
        )
    return rows


def later_months(valid: pd.DataFrame, stations: pd.DataFrame, models: list[str]) -> list[dict]:
    """Train on January–June, score every month of July–December, with and without month features."""
    from chicago_arrest.core.parsing import labels, parse_timestamps
    from chicago_arrest.model.evaluate import classification_metrics
    from chicago_arrest.model.feature_spec import DEFAULT_FEATURES, LEGACY_FEATURES
    from chicago_arrest.model.training import TrainConfig, train_model

    month = pd.DatetimeIndex(parse_timestamps(valid["date"]).values).month.to_numpy()
    train, later = valid[month <= 6], valid[month >= 7]
    later_month = month[month >= 7]
    y = labels(later).values
    rows = []
    for features_name, spec in (("served", DEFAULT_FEATURES), ("with month/season", LEGACY_FEATURES)):
        for model_type in models:
            # One fold (the calibration month): the backtest is not what this check measures.
            config = TrainConfig(model_type=model_type, features=spec, backtest_folds=1)
            model = train_model(train, stations, config).model
            p = model.predict_arrest_probability(later)
            for m in np.unique(later_month):
                sel = later_month == m
                metrics = classification_metrics(y[sel], p[sel], model.threshold)
                rows.append(
                    {
                        "features": features_name,
                        "model": model_type,
                        "month": int(m),
                        "roc_auc": metrics["roc_auc"],
                        "ece": metrics["ece"],
                        "mean_predicted": metrics["mean_predicted"],
                        "positive_rate": metrics["positive_rate"],
                    }
                )
            logging.info("later months %s %s done", features_name, model_type)
    return rows


def main() -> None:
    """Run the ablation and the later-months check; write JSON and print markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    parser.add_argument("--skip-later", action="store_true", help="skip the later-months check")
    parser.add_argument("--native", action="store_true", help="only the native-categorical XGBoost folds")
    parser.add_argument("--later-only", action="store_true", help="only the later-months check")
    parser.add_argument("--models", default="logreg,random_forest,xgboost")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("chicago_arrest.model.artifact").setLevel(logging.WARNING)

    crimes, stations, source = load_sample()
    valid = valid_records(crimes)
    from chicago_arrest.core.parsing import parse_timestamps

    months = pd.Series(parse_timestamps(valid["date"]).values, index=valid.index).dt.to_period("M")
    window = valid[months < months.max()]
    out: dict[str, Any] = {"source": source, "machine": machine(), "rows": len(valid)}
    if args.native:
        out["native_categorical"] = native_categorical(window, stations, args.folds)
        for row in out["native_categorical"]:
            print(f"{row['variant']}: {[round(v, 4) for v in row['scores']]} mean {row['mean']:.4f}")
        args.output.with_name("backtest_native.json").write_text(json.dumps(out, indent=1, default=str))
        return
    out["ablation"] = [] if args.later_only else ablation(window, stations, args.folds, args.only)
    print(
        markdown_table(
            ["features (XGBoost)", "mean fold ROC-AUC", "spread (sd)", "folds", "selected"],
            [
                (
                    r["variant"],
                    f"{r['mean']:.4f}",
                    f"{r['std']:.4f}",
                    " / ".join(f"{s:.4f}" for s in r["scores"]),
                    r["selected_features"],
                )
                for r in out["ablation"]
            ],
        )
    )
    if not args.skip_later:
        out["later_months"] = later_months(valid, stations, args.models.split(","))
        frame = pd.DataFrame(out["later_months"])
        summary = frame.groupby(["features", "model"]).agg(
            roc_auc_min=("roc_auc", "min"),
            roc_auc_mean=("roc_auc", "mean"),
            ece_max=("ece", "max"),
            gap_max=("mean_predicted", "max"),
            rate_max=("positive_rate", "max"),
        )
        print(summary.round(4).to_markdown())
    out["load_average_at_end"] = list(__import__("os").getloadavg())
    output = args.output.with_name("backtest_later_months.json") if args.later_only else args.output
    output.write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
