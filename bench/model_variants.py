"""Model variants on the real 2017 sample: the walk-forward backtest, the test months and what serving costs.

Run: ``nice -n 10 .venv/bin/python -m bench.model_variants`` (``--help``; ``--only NAME ...``). Writes
``bench/results/model_variants.json`` and prints the table of docs/model.md ("Resampling, forest size and
XGBoost defaults").

The window is the pipeline's: the validated sample before November (January–October, 42,118 rows) trains,
November–December (7,882 rows) tests. Each variant is one :func:`chicago_arrest.model.training.train_model` call with
the pipeline's defaults except what the variant names (three walk-forward folds, calibration on October, refit),
then scored on the test months. Costs are measured on the trained model with one thread: one record and 1,000
records through ``predict_arrest_probability``, one record through the explainer (p50 over 40 records), and
the pickled size.

Since issue 27 the forest variants are XGBoost's random-forest mode (the train step's forest; the table of
docs/model.md's "Resampling, forest size and XGBoost defaults" was measured with scikit-learn's forest), and
the ``700 x depth 4`` variants name their parameters (the defaults became 600 x depth 5).

``block`` variants add the street block (``block``, e.g. "023XX N CLARK ST") as a target-encoded feature, and
its interaction with the crime type: not features of the served model, so :func:`with_block_features` patches
them into :mod:`chicago_arrest.model.feature_spec` and :mod:`chicago_arrest.model.features` for the run
(``--only`` them, in a process of their own: the patch makes every variant compute the extra columns, which
would inflate the others' times). The ``x type`` variants add an interaction of a place (district, community
area, beat) or ``domestic`` with the crime type the same way (:data:`EXTRA_INTERACTIONS`).
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.backtest_ablation import valid_records
from bench.common import (
    REPO_ROOT,
    RF_FIRST_ROUND,
    XGB_FIRST_ROUND,
    load_sample,
    machine,
    median_ms,
)

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "model_variants.json"

TEST_METRICS = (
    "roc_auc",
    "roc_auc_ci_low",
    "roc_auc_ci_high",
    "pr_auc",
    "pr_auc_ci_low",
    "pr_auc_ci_high",
    "ece",
)

#: The XGBoost defaults of the sample's Optuna study (issue 11); since issue 27 the defaults are 600 x depth 5.
XGB_SAMPLE = {"n_estimators": 700, "max_depth": 4, "learning_rate": 0.035}
#: The first round's forest in the terms of XGBoost's random-forest mode, the train step's forest since issue 27
#: (``min_samples_leaf`` -> ``min_child_weight``, ``max_samples`` -> ``subsample``).
RF_FIRST_ROUND_XGB = {
    "n_estimators": RF_FIRST_ROUND["n_estimators"],
    "max_depth": RF_FIRST_ROUND["max_depth"],
    "min_child_weight": float(RF_FIRST_ROUND["min_samples_leaf"]),
    "subsample": RF_FIRST_ROUND["max_samples"],
}

#: name → (model type, classifier parameters over the current defaults, resample, extra features)
VARIANTS: dict[str, tuple[str, dict[str, Any], bool, tuple[str, ...]]] = {
    "logreg, resampled": ("logreg", {}, True, ()),
    "logreg": ("logreg", {}, False, ()),
    "random forest 150 x depth 14, resampled (before)": ("random_forest", RF_FIRST_ROUND_XGB, True, ()),
    "random forest 100 x depth 10, resampled": ("random_forest", {}, True, ()),
    "random forest 100 x depth 10": ("random_forest", {}, False, ()),
    "xgboost 400 x depth 6, resampled (before)": ("xgboost", XGB_FIRST_ROUND, True, ()),
    "xgboost 400 x depth 6": ("xgboost", XGB_FIRST_ROUND, False, ()),
    "xgboost 700 x depth 4": ("xgboost", XGB_SAMPLE, False, ()),
    "xgboost 600 x depth 5 (issue 27)": ("xgboost", {}, False, ()),
    "xgboost 700 x depth 4 + block": ("xgboost", XGB_SAMPLE, False, ("block",)),
    "xgboost 700 x depth 4 + block, block x type": ("xgboost", XGB_SAMPLE, False, ("block", "block_type")),
    "xgboost 700 x depth 4 + district x type": ("xgboost", XGB_SAMPLE, False, ("district_type",)),
    "xgboost 700 x depth 4 + community area x type": ("xgboost", XGB_SAMPLE, False, ("area_type",)),
    "xgboost 700 x depth 4 + beat x type": ("xgboost", XGB_SAMPLE, False, ("beat_type",)),
    "xgboost 700 x depth 4 + domestic x type": ("xgboost", XGB_SAMPLE, False, ("domestic_type",)),
}
#: Interactions of served raw columns that the variants above try (target-encoded like the served ones).
EXTRA_INTERACTIONS = {
    "block_type": ("block", "primary_type"),  # the raw ``block`` comes from :func:`with_block_features`
    "district_type": ("district", "primary_type"),
    "area_type": ("community_area", "primary_type"),
    "beat_type": ("beat", "primary_type"),
    "domestic_type": ("domestic", "primary_type"),
}


def _add_column(name: str) -> None:
    """Append ``name`` to ``ALL_COLUMNS`` where it is read: the catalogue (``FeatureSpec``) and ``RawFeatures``."""
    import chicago_arrest.model.feature_spec as feature_spec
    import chicago_arrest.model.features as features

    feature_spec.ALL_COLUMNS = features.ALL_COLUMNS = (*feature_spec.ALL_COLUMNS, name)


def with_interactions(names: set[str]) -> None:
    """Add the named :data:`EXTRA_INTERACTIONS` to the raw feature columns (for this process)."""
    import chicago_arrest.model.feature_spec as feature_spec

    for name in sorted(names & set(EXTRA_INTERACTIONS)):
        if name not in feature_spec.ALL_COLUMNS:
            feature_spec.INTERACTIONS[name] = EXTRA_INTERACTIONS[name]  # the same dict RawFeatures reads
            _add_column(name)


def with_block_features() -> None:
    """Add ``block`` (normalised text) to the raw feature columns (``block_type`` is a :data:`EXTRA_INTERACTIONS`)."""
    import chicago_arrest.model.features as features
    from chicago_arrest.core.schema import FIELD_BY_NAME
    from chicago_arrest.model.inputs import category_array

    if "block" in features.ALL_COLUMNS:
        return
    inputs = features.model_input_arrays

    def model_input_arrays(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        out = inputs(frame)
        column = frame["block"] if "block" in frame.columns else pd.Series([None] * len(frame), dtype=object)
        out["block"] = category_array(column, FIELD_BY_NAME["block"])
        return out

    features.model_input_arrays = model_input_arrays
    _add_column("block")


def run_variant(name: str, train: pd.DataFrame, test: pd.DataFrame, stations: pd.DataFrame) -> dict[str, Any]:
    """Train one variant, evaluate it on the test months and measure its serving costs."""
    from chicago_arrest.model.evaluate import evaluate_model
    from chicago_arrest.model.explain import explainer_for
    from chicago_arrest.model.feature_spec import DEFAULT_FEATURES
    from chicago_arrest.model.training import TrainConfig, train_model

    model_type, params, resample, extra = VARIANTS[name]
    features = DEFAULT_FEATURES.plus("target", *extra) if extra else DEFAULT_FEATURES
    start = time.perf_counter()
    config = TrainConfig(model_type=model_type, params=params, resample=resample, features=features)
    result = train_model(train, stations, config)
    wall = time.perf_counter() - start
    model = result.model.set_threads(1)
    ev = evaluate_model(model, test)
    explainer = explainer_for(model)
    one, thousand = test.iloc[[5]], test.iloc[:1000]
    records = iter([test.iloc[[i]] for i in range(41)])
    bt = result.backtest
    return {
        "variant": name,
        "model_type": model_type,
        "params": result.params,
        "resample": resample,
        "extra_features": list(extra),
        "backtest_folds": [f["validate_month"] for f in bt["folds"]],
        "backtest_scores": bt["scores"],
        "backtest_mean": bt["mean"],
        "test": {key: ev.overall.get(key) for key in TEST_METRICS}
        | {
            "ece_worst_month": ev.overall.get("ece_worst_month"),
            "roc_auc_without_arrest_based": ev.without_arrest_based["roc_auc"],
        },
        "ms_one_record": median_ms(lambda: model.predict_arrest_probability(one), 50),
        "ms_1000_records": median_ms(lambda: model.predict_arrest_probability(thousand), 15),
        "ms_explain_one_record": median_ms(lambda: explainer.explain(next(records)), 40),
        "size_mb": len(pickle.dumps(model)) / 1e6,
        "train_wall_s": wall,
    }


def ensemble(train: pd.DataFrame, test: pd.DataFrame, stations: pd.DataFrame) -> dict[str, Any]:
    """Test-month ROC-AUC, PR-AUC and ECE of the mean log-odds of the default models (not a served model)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from chicago_arrest.core.parsing import labels
    from chicago_arrest.model.evaluate import expected_calibration_error
    from chicago_arrest.model.training import MODEL_TYPES, TrainConfig, train_model

    y = labels(test).values
    probabilities = {
        m: train_model(
            train, stations, TrainConfig(model_type=m, backtest_folds=0)
        ).model.predict_arrest_probability(test)
        for m in MODEL_TYPES
    }
    out: dict[str, Any] = {}
    for combo in (("random_forest", "xgboost"), MODEL_TYPES, ("xgboost",)):
        clipped = [np.clip(probabilities[m], 1e-6, 1 - 1e-6) for m in combo]
        p = 1 / (1 + np.exp(-np.mean([np.log(c / (1 - c)) for c in clipped], axis=0)))
        out[" + ".join(combo)] = {
            "roc_auc": float(roc_auc_score(y, p)),
            "pr_auc": float(average_precision_score(y, p)),
            "ece": float(expected_calibration_error(y, p)),
        }
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    """The docs/model.md table."""
    lines = [
        "| variant | folds (Aug / Sep / Oct) | mean | test ROC-AUC [95 % CI] | PR-AUC | ECE (worst month) | "
        "without arrest-based | 1 / 1,000 records (ms) | explain (ms) | size (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["test"]
        lines.append(
            f"| {r['variant']} | {' / '.join(f'{s:.4f}' for s in r['backtest_scores'])} | "
            f"{r['backtest_mean']:.4f} | {t['roc_auc']:.4f} [{t['roc_auc_ci_low']:.4f}, {t['roc_auc_ci_high']:.4f}] | "
            f"{t['pr_auc']:.4f} | {t['ece']:.4f} ({t['ece_worst_month']:.4f}) | "
            f"{t['roc_auc_without_arrest_based']:.4f} | {r['ms_one_record']:.2f} / {r['ms_1000_records']:.1f} | "
            f"{r['ms_explain_one_record']:.1f} | {r['size_mb']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the variants and write the results."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", help="variant names (default: those without extra features)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--crimes", type=Path, help="a 2017 crimes file instead of the sample (the full year)"
    )
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="only: the mean log-odds of the default models on the test months",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    names = args.only or [n for n in VARIANTS if not VARIANTS[n][3]]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    extra = {f for n in names for f in VARIANTS[n][3]}
    if extra & {"block", "block_type"}:
        with_block_features()
    with_interactions(extra)
    crimes, stations, source = load_sample()
    if args.crimes:
        crimes, source = pd.read_csv(args.crimes, dtype=str, keep_default_na=False), str(args.crimes)
    valid = valid_records(crimes)
    from chicago_arrest.core.parsing import parse_timestamps

    dates = pd.Series(parse_timestamps(valid["date"]).values, index=valid.index)
    train = valid[dates < "2017-11-01"].reset_index(drop=True)
    test = valid[dates >= "2017-11-01"].reset_index(drop=True)
    if args.ensemble:
        previous = json.loads(args.output.read_text()) if args.output.is_file() else {}
        previous["ensemble"] = ensemble(train, test, stations)
        args.output.write_text(json.dumps(previous, indent=1) + "\n")
        print(json.dumps(previous["ensemble"], indent=1))
        return 0
    rows = []
    for name in names:
        rows.append(run_variant(name, train, test, stations))
        print(
            f"{name}: backtest {rows[-1]['backtest_mean']:.4f}, test {rows[-1]['test']['roc_auc']:.4f}",
            flush=True,
        )
    previous = json.loads(args.output.read_text()) if args.output.is_file() else {}
    kept = [r for r in previous.get("rows", []) if r["variant"] not in names]
    order = list(VARIANTS)
    merged = sorted([*kept, *rows], key=lambda r: order.index(r["variant"]) if r["variant"] in order else 99)
    result = {
        **({"ensemble": previous["ensemble"]} if "ensemble" in previous else {}),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "source": source,
        "train_rows": len(train),
        "test_rows": len(test),
        "rows": merged,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(merged))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
