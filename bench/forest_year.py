"""The random forest at the scale of a year: scikit-learn's forest against XGBoost's random-forest mode.

Run: ``.venv/bin/python -m bench.forest_year --source ../shared/data/crimes_2017.csv.gz`` (``--months``,
``--tag``). Writes ``bench/results/forest_year_<tag>.json`` and prints one line per forest.

The window's three walk-forward folds are encoded as the train step encodes them
(:func:`bench.xgboost_year.fold_matrices`); each forest is fitted on every fold with one thread (what a local
run's train task has) and scored on the fold's validation month: ROC-AUC, and the fit's CPU time. The
scikit-learn forest has the defaults it had before issue 27 (100 trees, depth 10, 10 rows a leaf, half the rows
a tree); XGBoost's has :data:`chicago_arrest.model.training.DEFAULT_PARAMS` (the same bounds in its terms).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.xgboost_year import fit_on_folds, fold_matrices, write_rows

#: scikit-learn's forest as the train step built it before issue 27.
SKLEARN_FOREST = {"n_estimators": 100, "max_depth": 10, "min_samples_leaf": 10, "max_samples": 0.5}


def forests() -> dict[str, Any]:
    """Name -> a function building the unfitted forest."""
    from sklearn.ensemble import RandomForestClassifier

    from chicago_arrest.model.training import make_classifier

    return {
        "scikit-learn RandomForestClassifier (before)": lambda: RandomForestClassifier(
            **SKLEARN_FOREST, n_jobs=1, random_state=0
        ),
        "XGBoost XGBRFRegressor (now)": lambda: make_classifier("random_forest", {}, 1, 0),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Fit both forests on every fold; print and write the fold ROC-AUCs and fit times."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", required=True, help="crime file(s), as SOURCE")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--tag", default="2017")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="forest-year-") as tmp:
        folds = fold_matrices(args.source, args.months, Path(tmp))
    rows = []
    for name, build in forests().items():
        row = {"forest": name, **fit_on_folds(folds, build)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_rows(f"forest_year_{args.tag}", args, rows)
    return rows


if __name__ == "__main__":
    main()
